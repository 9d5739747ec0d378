"""How pages reach the data: each new rollup snapshot is settled (garbage collected, then every
live object frozen out of the cyclic collector's reach) once, so full collections stop walking it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import DashboardContext, create_app
from dashboard.data import current_snapshot
from store import write_spans

_SECOND_NS = 10**9


def _span(second: int, trace: str) -> dict[str, object]:
    return {"Timestamp": (1_795_000_000 + second) * _SECOND_NS, "TraceId": trace * 32, "SpanId": "2" * 16}


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_each_new_snapshot_is_settled_once(tmp_path: Path, unfrozen: None) -> None:
    write_spans(tmp_path, [_span(0, "1")])
    app = create_app(DashboardContext(data_dir=tmp_path, timezone="UTC"))
    with app.server.test_request_context("/"):
        first = current_snapshot()
        assert gc.get_freeze_count() > 0

        gc.unfreeze()
        assert current_snapshot() is first
        assert gc.get_freeze_count() == 0, "the same snapshot was settled twice"

        write_spans(tmp_path, [_span(60, "3")])
        second = current_snapshot()
        assert second is not first
        assert gc.get_freeze_count() > 0
