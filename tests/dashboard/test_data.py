"""How pages reach the data: one store reader per app, opened on first use; no store is a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import DashboardContext, create_app
from dashboard.data import NoData, current_store, question
from analysis import RunFilter
from store import write_spans

_SECOND_NS = 10**9


def _span(second: int, trace: str) -> dict[str, object]:
    return {"Timestamp": (1_795_000_000 + second) * _SECOND_NS, "TraceId": trace * 32, "SpanId": "2" * 16}


def test_one_reader_per_app_sees_new_segments(tmp_path: Path) -> None:
    app = create_app(DashboardContext(data_dir=tmp_path / "data", timezone="UTC"))
    with app.server.test_request_context("/"):
        with pytest.raises(NoData):
            current_store()  # no store yet: the page says so, and opens it once one appears
        write_spans(tmp_path / "data", [_span(0, "1")])
        first = current_store()
        assert current_store() is first
        write_spans(tmp_path / "data", [_span(60, "3")])
        assert len(first.sql("SELECT * FROM spans")) == 2
        assert question(RunFilter()).exact is False


def test_a_request_asks_one_question_per_window(tmp_path: Path) -> None:
    """A page's parts share the question of their window (its plan and what its figures counted);
    another window, another request or an exact question is a question of its own."""
    import datetime as dt

    write_spans(tmp_path / "data", [_span(0, "1")])
    app = create_app(DashboardContext(data_dir=tmp_path / "data", timezone="UTC"))
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    window = RunFilter(start, start + dt.timedelta(days=7), ["open"], ["ward-7"])  # lists, as the filters make
    with app.server.test_request_context("/"):
        first = question(window)
        assert question(RunFilter(start, start + dt.timedelta(days=7), ["open"], ["ward-7"])) is first
        assert question(RunFilter(start, start + dt.timedelta(days=1), ["open"], ["ward-7"])) is not first
        assert question(window, exact=True) is not first
    with app.server.test_request_context("/"):
        assert question(window) is not first


def test_the_simulated_banner_writes_its_counts_as_every_page_does() -> None:
    from dashboard.data import simulated_text

    assert simulated_text(16464, 16491).startswith("Simulated data: 16,464 of the 16,491 runs in this window")
    assert simulated_text(0, 16491) == ""
