"""The dashboard over HTTP: each page's first load after the server starts, and every callback
through the real endpoint, against a large store.

The server is the real one (``DashboardServer``, as ``wardwatch dashboard`` serves it), in a
process of its own (``benchmarks.dashboard_http_child``) on 127.0.0.1 and a free port; this
process is the browser. A page is loaded as Dash's pages routing loads it: the page's HTML
(``GET /runs?window=...``), ``GET /_dash-layout`` and ``GET /_dash-dependencies``, then the
routing callback (``POST /_dash-update-component`` with the location's pathname and search, which
calls the page's layout). A callback is the same POST with the payload the browser sends: its
output, its inputs with their values, its state, the property that changed, built from the
server's own ``/_dash-dependencies``.

Figures:

- each page's **first load**: a server started afresh for each page (the query layer's
  pre-aggregates already kept, as the store's maintenance keeps them), its first page the one
  timed, for the default window (last 7 days) and for the month; and the start itself (process
  start to serving). Target (issue 15): <= 3 s at 100M spans.
- every **callback**, warm, in interleaved rounds (every call once per round): each page's
  layout (the routing callback) for the month and the last 7 days, each live refresh, the status
  page's refresh, the runs page with a run's waterfall, the filter bar's callback, the report's
  button and its poll, the findings' poll; median and p95 with n. Target (issue 15): p95 <= 300 ms
  at 100M spans.

The month-long jobs (the findings the overview starts, the month's report) are started and
polled but not run (``--without-jobs``): at 100M they would take the machine from the timed calls,
and their time is the ``report`` and ``memory`` benchmarks' figure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.results import Figure, Progress, median, percentile

__all__ = ["run"]

NAME = "dashboard-http"
TARGET_P95_MS = 300.0
TARGET_FIRST_MS = 3000.0
ROUTER = ("_pages_location.pathname", "_pages_content.children")
_ROOT = Path(__file__).resolve().parents[1]


class Server:
    """The dashboard server in a child process (see ``benchmarks.dashboard_http_child``)."""

    def __init__(self, path: Path, now: dt.datetime) -> None:
        began = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.dashboard_http_child", str(path), now.isoformat(), "--without-jobs"],
            cwd=_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if len(line) != 3 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the dashboard server did not start (it said {line!r})")
        self.started_ms = (time.perf_counter() - began) * 1000  # process start to serving
        self.url = f"http://127.0.0.1:{line[1]}"
        self.client = httpx.Client(base_url=self.url, timeout=600)
        self._dependencies: list[dict[str, Any]] | None = None

    def get(self, url: str) -> httpx.Response:
        response = self.client.get(url)
        response.raise_for_status()
        return response

    def dependencies(self) -> list[dict[str, Any]]:
        if self._dependencies is None:
            self._dependencies = self.get("/_dash-dependencies").json()
        return self._dependencies

    def callback(self, trigger: str, output: str, inputs: list[Any], state: list[Any] = ()) -> httpx.Response:
        """``POST /_dash-update-component`` for the callback that ``trigger`` (its first input,
        ``id.property``) fires and whose output names ``output``, as the browser sends it: each
        input and state with its value, the first input as the changed one."""
        dep = next(d for d in self.dependencies() if output in d["output"]
                   and f"{d['inputs'][0]['id']}.{d['inputs'][0]['property']}" == trigger)
        response = self.client.post("/_dash-update-component", json=_body(dep, inputs, list(state)))
        if response.status_code not in (200, 204):  # 204: the callback left its output as it was
            raise RuntimeError(f"{output}: HTTP {response.status_code}: {response.text[:500]}")
        return response

    def load(self, pathname: str, search: str) -> None:
        """A page as the browser loads it: its HTML, the app's layout and callbacks, the routing
        callback, which calls the page's layout, then the callbacks the new layout fires at once
        (its inputs are in it and the callback does not prevent its initial call: the status
        page's refresh)."""
        self.get(pathname + search)
        self.get("/_dash-layout")
        layout = self.callback(*ROUTER, [pathname, search]).text
        for dep in self.dependencies():
            first = dep["inputs"][0]
            if dep.get("prevent_initial_call") or dep.get("clientside_function") or first["id"].startswith("_pages"):
                continue
            if all(json.dumps(spec["id"]) in layout for spec in dep["inputs"]):
                self.callback(f"{first['id']}.{first['property']}", dep["output"], [None] * len(dep["inputs"]),
                              [None] * len(dep.get("state", [])))

    def stop(self) -> None:
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _component_id(text: str) -> Any:
    return json.loads(text) if text.startswith("{") else text


def _outputs(output: str) -> list[dict[str, Any]]:
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    out = []
    for part in parts:
        component, prop = part.rsplit(".", 1)
        out.append({"id": _component_id(component), "property": prop.split("@")[0]})
    return out


def _body(dep: dict[str, Any], inputs: list[Any], state: list[Any]) -> dict[str, Any]:
    outputs = _outputs(dep["output"])

    def bound(spec: dict[str, Any], value: Any) -> Any:
        component = _component_id(spec["id"])
        if isinstance(component, dict) and any(isinstance(v, list) for v in component.values()):  # ALL
            return value  # the caller gives the list of matched components
        return {"id": component, "property": spec["property"], "value": value}

    first = dep["inputs"][0]
    return {
        "output": dep["output"],
        "outputs": outputs if dep["output"].startswith("..") else outputs[0],
        "inputs": [bound(spec, value) for spec, value in zip(dep["inputs"], inputs, strict=True)],
        "state": [bound(spec, value) for spec, value in zip(dep.get("state", []), state, strict=True)],
        "changedPropIds": [f"{first['id']}.{first['property']}"] if not first["id"].startswith('{"name":["ALL"]')
        else [json.dumps({"name": "window", "type": "filter"}, separators=(",", ":")) + ".value"],
    }


def _pages() -> list[tuple[str, str]]:
    """The dashboard's pages, ``(name, path)``, in their order."""
    import dash

    from dashboard import DashboardContext, create_app

    if not dash.page_registry:
        create_app(DashboardContext(data_dir=Path("/nonexistent")))  # registers the pages; reads nothing
    return [(str(p["name"]), str(p["path"])) for p in sorted(dash.page_registry.values(), key=lambda p: p["order"])]


def _calls(server: Server, pages: list[tuple[str, str]], month: str, trace: str | None
           ) -> dict[str, Callable[[], Any]]:
    calls: dict[str, Callable[[], Any]] = {}
    live = {"Overview": "overview", "Time of day": "time-of-day", "Workflow": "workflow", "Sites": "sites",
            "Runs": "runs"}
    for name, path in pages:
        for label, search in ((f"month {month}", f"?window={month}"), ("last 7 days", "")):
            calls[f"{name} layout ({label})"] = lambda path=path, search=search: server.callback(*ROUTER, [path, search])
        if name in live:
            tick = json.dumps({"page": live[name], "type": "live-tick"}, separators=(",", ":"))
            calls[f"{name} live refresh ({month})"] = lambda tick=tick: server.callback(
                f"{tick}.n_intervals", "live-body", [1], [f"?window={month}&live=on"])
    calls["Status refresh"] = lambda: server.callback("refresh-interval.n_intervals", "status-list.children", [1])
    calls["Status notices refresh"] = lambda: server.callback("refresh-interval.n_intervals",
                                                              "status-notices.children", [1])
    if trace is not None:
        calls[f"Runs layout with a run's waterfall ({month})"] = lambda: server.callback(
            *ROUTER, ["/runs", f"?window={month}&trace={trace}"])
    calls["Filter bar: a window chosen, into the URL"] = lambda: server.callback(
        '{"name":["ALL"],"type":"filter"}.value', "_pages_location.search", [[{"id": {"name": "window", "type": "filter"}, "property": "value", "value": month}]],
        [""])
    calls[f"SLA report button ({month}; starts the job)"] = lambda: server.callback(
        "report-build.n_clicks", "report-view.children", [1], [month])
    calls[f"SLA report poll ({month})"] = lambda: server.callback("report-poll.n_intervals", "report-data.data", [1], [month])
    calls[f"Overview findings poll ({month})"] = lambda: server.callback(
        "findings-poll.n_intervals", "findings.children", [1], [f"?window={month}"])
    return calls


def run(path: Path, *, now: dt.datetime, month: str, spans: int, repeats: int = 10,
        first_loads: bool = True, progress: Progress = lambda _m: None) -> list[Figure]:
    """Time each page's first load after a start and every callback over HTTP.

    Args:
        path: the store (its pre-aggregates kept: the benchmark builds any that are missing first).
        now: the dashboard's "now".
        month: ``YYYY-MM``, the month window every page is asked for beside the last 7 days.
        spans: how many spans the store holds (for labels).
        repeats: interleaved rounds of every callback.
        first_loads: also start a server per page and window to time its first load.
        progress: called with a short message as the benchmark goes.
    """
    from analysis.query import preagg
    from benchmarks.callbacks import bench_context
    from dashboard.data import definitions

    size = f"{spans / 1e6:g}M spans"
    began = time.perf_counter()
    preagg.refresh(path, definitions(bench_context(path, now)))  # as the store's maintenance keeps them
    progress(f"{NAME}: pre-aggregates up to date in {time.perf_counter() - began:.1f} s")
    pages = _pages()
    figures: list[Figure] = []
    load = _load_average()
    if first_loads:
        starts = []
        for name, page_path in pages:
            for label, search in (("last 7 days", ""), (f"month {month}", f"?window={month}")):
                server = Server(path, now)
                try:
                    starts.append(server.started_ms)
                    t0 = time.perf_counter()
                    server.load(page_path, search)
                    ms = (time.perf_counter() - t0) * 1000
                finally:
                    server.stop()
                progress(f"{NAME}: {name} ({label}) first load {ms:,.0f} ms after a start of {server.started_ms:,.0f} ms")
                figures.append(Figure(NAME, f"{name} first load after a start ({label}) @ {size}", ms, "ms", 1,
                                      target=f"<= {TARGET_FIRST_MS:g} ms (at 100M)", met=ms <= TARGET_FIRST_MS,
                                      note="the page's HTML, /_dash-layout, /_dash-dependencies and the routing "
                                           "callback, on a server started for it"))
        figures.append(Figure(NAME, f"server start, process to serving, median @ {size}", median(starts), "ms",
                              len(starts), note="imports, create_app, DashboardServer.start"))
    server = Server(path, now)
    try:
        trace = _slowest_trace(path, month, now)
        calls = _calls(server, pages, month, trace)
        server.load("/", "")
        for call in calls.values():  # each once, untimed: the server's first calls, its caches
            call()
        progress(f"{NAME}: {repeats} interleaved rounds of {len(calls)} callbacks over HTTP at {size}")
        times: dict[str, list[float]] = {label: [] for label in calls}
        for _ in range(repeats):
            for label, call in calls.items():
                t0 = time.perf_counter()
                call()
                times[label].append((time.perf_counter() - t0) * 1000)
    finally:
        server.stop()
    load = f"load average {load} at the start, {_load_average()} at the end"
    for label, ms in times.items():
        p95 = percentile(ms, 0.95)
        figures.append(Figure(NAME, f"{label} over HTTP @ {size}: median", median(ms), "ms", len(ms), note=load))
        figures.append(Figure(NAME, f"{label} over HTTP @ {size}: p95", p95, "ms", len(ms),
                              target=f"<= {TARGET_P95_MS:g} ms (at 100M)", met=p95 <= TARGET_P95_MS, note=load))
    return figures


def _slowest_trace(path: Path, month: str, now: dt.datetime) -> str | None:
    """The month's slowest run (the one a user opens first), for the waterfall."""
    import analysis
    from analysis.query.rows import slowest
    from benchmarks.callbacks import bench_context
    from dashboard.data import definitions
    from dashboard.filters import Filters

    runs = Filters(window=month).run_filter(now, "Europe/London")
    with analysis.open_store(path) as store:
        listed = slowest(store, runs, limit=1, defs=definitions(bench_context(path, now)))
    return None if listed.empty else str(listed["trace_id"].iloc[0])


def _load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
