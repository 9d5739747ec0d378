"""Dashboard server time: each page's layout, called as Dash calls it when a page is requested
(inside a Flask request context of the app), and the status page's refresh callback, against a
large store. Every call opens the store, as the pages do. Reported per page: median and p95 over
repeated calls (interleaved across pages). Target (issue 5): p95 <= 300 ms at 10M spans.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash

from benchmarks.results import Figure, Progress, median, percentile, time_calls
from benchmarks.synth import SITES, WORKFLOWS
from dashboard import DashboardContext, create_app
from dashboard.context import SiteInfo, WorkflowInfo

__all__ = ["run"]

NAME = "dashboard"
TARGET_P95_MS = 300.0


def _context(path: Path, now: dt.datetime) -> DashboardContext:
    return DashboardContext(
        data_dir=path, timezone="Europe/London",
        sites=tuple(SiteInfo(name, name.replace("-", " ").title(), "Europe/London") for name in SITES),
        workflows=tuple(WorkflowInfo(name, threshold_s=3.0, threshold_source="benchmark") for name in WORKFLOWS),
        now=lambda: now,
    )


def run(path: Path, *, now: dt.datetime, month: str, spans: int, repeats: int = 20,
        warm_up: bool = True, progress: Progress = lambda _m: None) -> list[Figure]:
    """Time every page's layout for the calendar ``month`` and for the default window (7 days
    before ``now``), and the status refresh.

    Args:
        path: the store.
        now: the dashboard's "now" (the end of the generated month, so the windows hold data).
        month: ``YYYY-MM``, the month window to ask every page for.
        spans: how many spans the store holds (for labels).
        repeats: calls per page.
        warm_up: make one untimed call of each page first.
        progress: called with a short message as the benchmark goes.
    """
    app = create_app(_context(path, now))
    calls: dict[str, Callable[[], Any]] = {}
    for page in dash.page_registry.values():
        layout = page["layout"]
        if not callable(layout):
            continue
        name = str(page["name"])
        if name == "Status":
            calls["Status: layout + refresh callback"] = _status_call(page, layout)
            continue
        calls[f"{name} (month {month})"] = _bind(layout, {"window": month})
        calls[f"{name} (last 7 days)"] = _bind(layout, {})

    def in_request(function: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with app.server.test_request_context("/"):
                return function()
        return call

    functions = [in_request(f) for f in calls.values()]
    progress(f"dashboard: {repeats} interleaved rounds of {len(functions)} page calls at {spans / 1e6:g}M spans")
    times, _ = time_calls(functions, repeats, warm_up=warm_up)
    figures = []
    size = f"{spans / 1e6:g}M spans"
    for name, samples in zip(calls, times, strict=True):
        ms = [t * 1000 for t in samples]
        p95 = percentile(ms, 0.95)
        figures.append(Figure(NAME, f"{name} @ {size}: median", median(ms), "ms", len(ms)))
        figures.append(Figure(NAME, f"{name} @ {size}: p95", p95, "ms", len(ms),
                              target=f"<= {TARGET_P95_MS:g} ms (at 10M)", met=p95 <= TARGET_P95_MS))
    return figures


def _bind(layout: Callable[..., Any], query: dict[str, str]) -> Callable[[], Any]:
    return lambda: layout(**query)


def _status_call(page: dict[str, Any], layout: Callable[..., Any]) -> Callable[[], Any]:
    module = sys.modules[str(page["module"])]
    refresh = module.refresh

    def call() -> Any:
        layout()
        # Dash wraps callbacks; the undecorated function is kept as __wrapped__.
        return getattr(refresh, "__wrapped__", refresh)(None)

    return call
