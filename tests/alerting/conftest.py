"""Stores of hand-made runs for the alerting tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from store import write_spans
from tests.analysis.conftest import run_rows

UTC = dt.UTC


@pytest.fixture
def add_runs(tmp_path: Path) -> Callable[..., Path]:
    """``add_runs([(start, workflow, site, status, waiting_s), ...])`` appends runs to one store."""
    path = tmp_path / "data"

    def add(runs: list[tuple[dt.datetime, str, str, str, float]]) -> Path:
        rows: list[dict[str, Any]] = []
        for start, workflow, site, status, waiting_s in runs:
            rows += run_rows(start, workflow, site, [("read", waiting_s, 200 if status == "ok" else 503)],
                             status=status)
        write_spans(path, rows)
        return path

    return add
