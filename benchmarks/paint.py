"""The overview's first meaningful paint, in headless Chromium, over a large store.

"Meaningful" means the watermelon board is on screen with its figures: the overview's table
(``#watermelon-board``) has rendered a row whose "share within T" cell shows a percentage and whose
rating is there. The page shell (header, filters) does not count, nor do the findings above the
board, which are looked for off the request and fill in by themselves (see ``callbacks``).

The dashboard runs as ``wardwatch dashboard`` runs it (``DashboardServer``); the query layer's
pre-aggregates, which the store's maintenance keeps, are brought up to date before the first
visit and that time is reported apart. Each visit is a fresh browser context (no cache, no cookies), so every visit
downloads Dash's scripts as a first visit does. The figure is ``performance.now()`` (milliseconds
since the navigation started) at the first animation frame where the board is complete; the
browser's own first contentful paint is reported beside it. Target (issue 5): <= 2 s at 10M
spans (on the median; the p95 is reported too).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

from benchmarks.callbacks import bench_context
from benchmarks.results import Figure, Progress, median, percentile
from dashboard import DashboardServer, create_app
from analysis.query import preagg
from dashboard.data import definitions

__all__ = ["CHROMIUM_ARGS", "MEANINGFUL_JS", "run"]

NAME = "paint"
TARGET_MS = 2000.0
# As the browser tests launch it (tests/conftest.py).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
# True (and the moment recorded) once the board shows figures.
MEANINGFUL_JS = """() => {
    const cell = document.querySelector('#watermelon-board tbody tr td.share_under');
    const rating = document.querySelector('#watermelon-board tbody tr td.rating');
    if (cell && /%/.test(cell.textContent) && rating && rating.textContent) {
        if (window.__wardwatchMeaningful === undefined) window.__wardwatchMeaningful = performance.now();
        return true;
    }
    return false;
}"""


def _chromium() -> str | None:
    return os.environ.get("WARDWATCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def run(path: Path, *, now: dt.datetime, month: str, spans: int, repeats: int = 10,
        progress: Progress = lambda _m: None) -> list[Figure]:
    """Visit the overview ``repeats`` times for the default window and for ``month``.

    Args:
        path: the store.
        now: the dashboard's "now".
        month: ``YYYY-MM``, the month window of the second variant.
        spans: how many spans the store holds (for labels).
        repeats: visits per variant (interleaved).
        progress: called with a short message as the benchmark goes.
    """
    size = f"{spans / 1e6:g}M spans"
    executable = _chromium()
    if executable is None:
        return [Figure(NAME, f"overview first meaningful paint @ {size}", float("nan"), "ms", 0,
                       note="not measured: Chromium is not installed (apt-get install chromium)")]
    from playwright.sync_api import sync_playwright

    app = create_app(bench_context(path, now))
    began = time.perf_counter()
    preagg.refresh(path, definitions(bench_context(path, now)))  # as the maintenance keeps them
    build_ms = (time.perf_counter() - began) * 1000
    progress(f"paint: pre-aggregates up to date in {build_ms / 1000:.1f} s")
    variants = {"last 7 days (the default view)": "/", f"month {month}": f"/?window={month}"}
    paints: dict[str, list[float]] = {v: [] for v in variants}
    firsts: dict[str, list[float]] = {v: [] for v in variants}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    with DashboardServer(app, port=0) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for round_ in range(repeats + 1):  # the first round warms the server's imports, untimed
                for variant, target in variants.items():
                    context = browser.new_context(viewport={"width": 1280, "height": 1000})
                    page = context.new_page()
                    page.goto(server.url.rstrip("/") + target, wait_until="commit")
                    page.wait_for_function(MEANINGFUL_JS, polling="raf", timeout=120_000)
                    meaningful = page.evaluate("() => window.__wardwatchMeaningful")
                    first = page.evaluate(
                        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null")
                    context.close()
                    if round_:
                        paints[variant].append(float(meaningful))
                        if first is not None:
                            firsts[variant].append(float(first))
                progress(f"paint: round {round_}/{repeats}")
        finally:
            browser.close()
    figures = [Figure(NAME, f"pre-aggregates brought up to date before the first visit @ {size}",
                      build_ms, "ms", 1, note="kept by the store's maintenance as buckets close; a dashboard "
                           "start builds only what no one built")]
    for variant in variants:
        ms = paints[variant]
        figures.append(Figure(NAME, f"overview first meaningful paint, {variant} @ {size}: median", median(ms), "ms",
                              len(ms), target=f"<= {TARGET_MS:g} ms (at 10M)", met=median(ms) <= TARGET_MS,
                              note="the board's table with its figures and ratings, from navigation start; "
                                   "a fresh browser context per visit"))
        figures.append(Figure(NAME, f"overview first meaningful paint, {variant} @ {size}: p95",
                              percentile(ms, 0.95), "ms", len(ms)))
        figures.append(Figure(NAME, f"first contentful paint (the shell), {variant} @ {size}: median",
                              median(firsts[variant]), "ms", len(firsts[variant])))
    return figures
