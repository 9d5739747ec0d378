"""Dashboard server time: every page's layout (called as Dash calls it when a page is requested,
inside a Flask request context of the app), every live-mode refresh callback, the status page's
refresh and the runs page with a run's waterfall, against a large store.

The pages read the query layer's pre-aggregates (``analysis.query``), which the store's
maintenance keeps as buckets close; the benchmark builds them first (as ``wardwatch upgrade-store``
does) and reports how long that took, then times the calls. Two "nows": the
end of the generated data less an hour (on the 15-minute grid), and the same less 7 min 31 s, as a
real clock almost always is (a rolling window then ends at the next quarter hour, so its edges
still fall on the pre-aggregates' grid). Reported per
call: median and p95 over repeated calls (interleaved). Target (issue 5): p95 <= 300 ms at 10M
spans. The month's report and the overview's findings are built off the request, as jobs
(``analysis.build_report``/``find_stories``), and are not timed here (see ``report``); the
overview's layout only starts or finds its findings job.
"""

from __future__ import annotations

import datetime as dt
import gc
import shutil
import sys
from dataclasses import replace
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash

import analysis

from analysis.query import preagg
from analysis.query.rows import slowest
from benchmarks import report as bench_report
from benchmarks.results import Figure, Progress, median, percentile, time_calls
from benchmarks.synth import SITES, WORKFLOWS
from dashboard import DashboardContext, create_app
from dashboard.context import SiteInfo, WorkflowInfo
from dashboard.data import definitions
from dashboard.filters import Filters
from dashboard.jobs import jobs_of

__all__ = ["bench_context", "run"]

NAME = "dashboard"
TARGET_P95_MS = 300.0
OFF_GRID = dt.timedelta(minutes=7, seconds=31)
_LIVE_PAGES = ("Overview", "Time of day", "Workflow", "Sites", "Runs")


def bench_context(path: Path, now: dt.datetime) -> DashboardContext:
    """The dashboard's context over a generated store: its sites and workflows, T = 3 s, a fixed now."""
    return DashboardContext(
        data_dir=path, timezone="Europe/London",
        sites=tuple(SiteInfo(name, name.replace("-", " ").title(), "Europe/London") for name in SITES),
        workflows=tuple(WorkflowInfo(name, threshold_s=3.0, threshold_source="benchmark") for name in WORKFLOWS),
        now=lambda: now,
    )


def run(path: Path, *, now: dt.datetime, month: str, spans: int, repeats: int = 20,
        warm_up: bool = True, progress: Progress = lambda _m: None) -> list[Figure]:
    """Time every page's layout for the calendar ``month`` and for the default window (7 days
    before ``now``), every live refresh, the status refresh and a run's waterfall.

    Args:
        path: the store.
        now: the dashboard's "now" (the end of the generated month, so the windows hold data).
        month: ``YYYY-MM``, the month window to ask every page for.
        spans: how many spans the store holds (for labels).
        repeats: calls per page.
        warm_up: make one untimed call of each page first.
        progress: called with a short message as the benchmark goes.
    """
    size = f"{spans / 1e6:g}M spans"
    figures = _pre_aggregate_figures(path, now, size, progress)
    app = create_app(bench_context(path, now))
    off_grid = create_app(bench_context(path, now - OFF_GRID))

    calls: dict[str, Callable[[], Any]] = {}
    for page in dash.page_registry.values():
        layout = page["layout"]
        if not callable(layout):
            continue
        name = str(page["name"])
        module = sys.modules[str(page["module"])]
        if name == "Status":
            calls["Status: layout + refresh callback"] = _in(app, _status_call(layout, module))
            continue
        calls[f"{name} layout (month {month})"] = _in(app, _bind(layout, {"window": month}))
        calls[f"{name} layout (last 7 days)"] = _in(app, _bind(layout, {}))
        calls[f"{name} layout (last 7 days, now off the 15-minute grid)"] = _in(off_grid, _bind(layout, {}))
        if name in _LIVE_PAGES:
            refresh = _unwrapped(module.refresh)
            calls[f"{name} live refresh callback (month {month})"] = _in(
                app, lambda refresh=refresh: refresh(1, f"?window={month}&live=on"))
        if name == "Runs":
            month_runs = Filters(window=month).run_filter(now, "Europe/London")
            with analysis.open_store(path) as store:
                trace = str(slowest(store, month_runs, limit=1)["trace_id"].iloc[0])
            calls[f"Runs layout with a run's waterfall (month {month})"] = _in(
                app, _bind(layout, {"window": month, "trace": trace}))

    figures += _month_jobs(path, now=now, month=month, size=size, repeats=repeats, progress=progress)
    progress(f"dashboard: {repeats} interleaved rounds of {len(calls)} calls at {size}")
    times, _ = time_calls(list(calls.values()), repeats, warm_up=warm_up)
    for name, samples in zip(calls, times, strict=True):
        ms = [t * 1000 for t in samples]
        p95 = percentile(ms, 0.95)
        figures.append(Figure(NAME, f"{name} @ {size}: median", median(ms), "ms", len(ms)))
        figures.append(Figure(NAME, f"{name} @ {size}: p95", p95, "ms", len(ms),
                              target=f"<= {TARGET_P95_MS:g} ms (at 10M)", met=p95 <= TARGET_P95_MS))
    return figures


def _in(app: dash.Dash, function: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with app.server.test_request_context("/"):
            return function()
    return call


def _bind(layout: Callable[..., Any], query: dict[str, str]) -> Callable[[], Any]:
    return lambda: layout(**query)


def _unwrapped(callback: Callable[..., Any]) -> Callable[..., Any]:
    # Dash wraps callbacks; the undecorated function is kept as __wrapped__.
    return getattr(callback, "__wrapped__", callback)


def _status_call(layout: Callable[..., Any], module: Any) -> Callable[[], Any]:
    refresh = _unwrapped(module.refresh)

    def call() -> Any:
        layout()
        return refresh(None)

    return call


def _month_jobs(path: Path, *, now: dt.datetime, month: str, size: str, repeats: int,
                progress: Progress) -> list[Figure]:
    """The two computations that read a whole month start a job and answer at once (the report's
    button; the overview's findings as the page is asked for); a poll shows the result. Timed: the
    callback or layout that starts the job, the job's wall time, and the poll once the job is
    done, with SLAs and objectives as the report benchmark configures them."""
    slas, objectives, _ = bench_report.report_inputs()
    context = replace(bench_context(path, now), slas=tuple(slas), objectives=tuple(objectives),
                      periods=tuple(bench_report.report_periods()))
    app = create_app(context)
    pages = {str(p["name"]): sys.modules[str(p["module"])] for p in dash.page_registry.values()}
    report, overview = pages["SLA report"], pages["Overview"]
    build, poll_report = _unwrapped(report.build), _unwrapped(report.poll)
    show_findings = _unwrapped(overview.show_findings)
    figures: list[Figure] = []
    for label, kind, what_starts, start, poll in (
            ("SLA report", "report", "button callback", lambda: build(1, month), lambda: poll_report(1, month)),
            ("Overview findings", "findings", "page layout", lambda: overview.layout(window=month),
             lambda: show_findings(1, f"?window={month}"))):
        starts, polls = [], []
        with app.server.test_request_context("/"):
            began = time.perf_counter()
            start()
            starts.append((time.perf_counter() - began) * 1000)
            job = jobs_of(app.server).get((kind, month))
            if job is None or not job.done.wait(3600) or job.error is not None:
                raise RuntimeError(f"{label}: the job did not finish: {job and job.error}")
            progress(f"dashboard: {label} built in the background in {job.elapsed_s():.1f} s")
            built_ms = job.elapsed_s() * 1000
            for _ in range(repeats):
                began = time.perf_counter()
                start()  # asked again: the job already done is found
                starts.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                poll()
                polls.append((time.perf_counter() - began) * 1000)
        figures.append(Figure(NAME, f"{label} (month {month}) computed off the request @ {size}", built_ms, "ms", 1,
                              note="a job on a thread of its own; the page polls every second"))
        for what, ms in ((f"{what_starts} (starts the job or finds it done)", starts),
                         ("poll callback once done (shows the result)", polls)):
            figures.append(Figure(NAME, f"{label} {what} @ {size}: median", median(ms), "ms", len(ms)))
            p95 = percentile(ms, 0.95)
            figures.append(Figure(NAME, f"{label} {what} @ {size}: p95", p95, "ms", len(ms),
                                  target=f"<= {TARGET_P95_MS:g} ms (at 10M)", met=p95 <= TARGET_P95_MS))
    return figures


def _pre_aggregate_figures(path: Path, now: dt.datetime, size: str, progress: Progress) -> list[Figure]:
    """The pre-aggregates a dashboard reads: built once for the whole store (what `wardwatch
    upgrade-store` does to a store of the previous version; the maintenance then adds each closed
    bucket), and a refresh with nothing new (what a dashboard start costs). The benchmark's own
    store: its pre-aggregates are removed first."""
    shutil.rmtree(path / preagg.DIRECTORY, ignore_errors=True)
    defs = definitions(bench_context(path, now))
    timings = {}
    for label in ("built for the whole store (once, by the upgrade)", "brought up to date with nothing new (a start)"):
        began = time.perf_counter()
        preagg.refresh(path, defs)
        timings[label] = time.perf_counter() - began
        progress(f"dashboard: pre-aggregates {label}: {timings[label]:.1f} s")
    saved_mb = sum(f.stat().st_size for f in (path / preagg.DIRECTORY).rglob("*") if f.is_file()) / 1e6
    return [Figure(NAME, f"pre-aggregates of the store, {label} @ {size}", seconds * 1000, "ms", 1,
                   note=f"pre-aggregates on disk: {saved_mb:.0f} MB")
            for label, seconds in timings.items()]
