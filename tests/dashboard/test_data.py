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
