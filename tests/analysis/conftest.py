"""Span rows written straight into a store (no SDK), for hand-computed analysis tests.

The SDK-made probe runs (``make_probe``) live in ``tests/conftest.py``, shared with the store's tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from store import schema, write_spans

NS = 1_000_000_000


# -- Rows written straight into a store (no SDK), for hand-computed analysis tests -------------

_ids = iter(range(1, 10**9))


def run_rows(
    start: dt.datetime,
    workflow: str,
    site: str,
    steps: Sequence[tuple[str, float] | tuple[str, float, int]],
    status: str = "ok",
    timezone: str = "Europe/London",
    think_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Span rows of one run: a root ``run`` span and one ``step`` span per ``(name, seconds[, http])``.

    A step with an HTTP status of 500 or more is recorded as failed.
    """
    trace = f"{next(_ids):032x}"
    root_id = f"{next(_ids):016x}"
    resource = {schema.ATTR_SITE: site, schema.ATTR_SITE_TIMEZONE: timezone,
                schema.SERVICE_NAME_ATTR: "wardwatch-probe"}
    waiting = sum(s[1] for s in steps)
    rows: list[dict[str, Any]] = []
    t = start
    for index, step in enumerate(steps):
        name, seconds = step[0], step[1]
        http = step[2] if len(step) > 2 else 200  # type: ignore[misc]
        attrs: dict[str, Any] = {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, schema.ATTR_STEP: name,
            schema.ATTR_STEP_INDEX: index, schema.ATTR_WORKFLOW: workflow,
            schema.HTTP_REQUEST_METHOD: "GET", schema.URL_TEMPLATE: f"/fhir/{name}",
            schema.HTTP_RESPONSE_STATUS_CODE: http,
        }
        if http >= 500:
            attrs[schema.ERROR_TYPE] = "http_5xx"
        rows.append({
            schema.TIMESTAMP: t, schema.TRACE_ID: trace, schema.SPAN_ID: f"{next(_ids):016x}",
            schema.PARENT_SPAN_ID: root_id, schema.SPAN_NAME: name, schema.SPAN_KIND: "Client",
            schema.RESOURCE_ATTRIBUTES: resource, schema.SPAN_ATTRIBUTES: attrs,
            schema.DURATION: int(round(seconds * NS)),
            schema.STATUS_CODE: "Error" if http >= 500 else "Unset",
        })
        t += dt.timedelta(seconds=seconds + think_s)
    root_attrs: dict[str, Any] = {
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: workflow,
        schema.ATTR_RUN_STATUS: status, schema.ATTR_RUN_WAITING_S: waiting,
        schema.ATTR_SLOT: start.astimezone(dt.UTC).isoformat(),
    }
    if status != "ok":
        root_attrs[schema.ERROR_TYPE] = "http_5xx"
    rows.append({
        schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: root_id,
        schema.SPAN_NAME: workflow, schema.RESOURCE_ATTRIBUTES: resource,
        schema.SPAN_ATTRIBUTES: root_attrs,
        schema.DURATION: int(round((t - start).total_seconds() * NS)),
    })
    return rows


@pytest.fixture
def rows_store(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    """Write span rows into a fresh store under ``tmp_path`` and return its path."""

    def write(rows: list[dict[str, Any]]) -> Path:
        path = tmp_path / "rows-store"
        write_spans(path, rows)
        return path

    return write


@pytest.fixture
def make_rows() -> Callable[..., list[dict[str, Any]]]:
    """:func:`run_rows`, for tests."""
    return run_rows
