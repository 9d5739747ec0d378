"""How pages reach the data: one store reader per app, the definitions its figures judge by, and
questions of the query layer (pre-aggregated buckets where a window holds them whole, exact rows
elsewhere)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import flask

import analysis
from analysis.query import preagg
from analysis.query.figures import Question, ask
from analysis.query.sources import Definitions
from dashboard.context import DEFAULT_THRESHOLD_S, DashboardContext, current_context
from dashboard.figures import count_text

__all__ = ["NoData", "current_store", "definitions", "open_data", "question", "simulated_text", "store_version"]

_STORE_KEY = "WARDWATCH_STORE"
_opening = threading.Lock()
CHART_RUNS = 30  # runs whose steps the runs page charts


class NoData(Exception):
    """There is nothing to show, and the message says why (and what to do)."""


def definitions(context: DashboardContext) -> Definitions:
    """Each workflow's T, as the pre-aggregates are made for it (the composition root makes the
    store's maintenance keep them with the same call)."""
    return Definitions.of({w.name: w.threshold_s for w in context.workflows}, DEFAULT_THRESHOLD_S)


def current_store() -> analysis.Store:
    """The store of the app serving this request, opened on first use and kept (a reader is
    thread-safe and sees the segments live when each query starts); ``NoData`` when it cannot be
    opened."""
    app = flask.current_app
    store = app.config.get(_STORE_KEY)
    if store is not None:
        return store
    with _opening:
        store = app.config.get(_STORE_KEY)
        if store is None:
            context = current_context()
            try:
                store = analysis.open_store(context.data_dir, calendar=context.calendar())
            except analysis.StoreError as exc:
                raise NoData(str(exc)) from exc
            app.config[_STORE_KEY] = store
    return store


def question(runs: analysis.RunFilter, *, exact: bool = False) -> Question:
    """A question of the query layer about ``runs``' window, workflows and sites: one per request
    (a page's parts asking of the same window share its plan and what its figures already
    counted, such as the simulated share)."""
    asked: dict = flask.g.setdefault("wardwatch_questions", {})
    key = (runs.start, runs.end, None if runs.workflows is None else tuple(runs.workflows),
           None if runs.sites is None else tuple(runs.sites), exact)  # the filter's lists are not hashable
    if key not in asked:
        asked[key] = ask(current_store(), runs, definitions(current_context()), exact=exact)
    return asked[key]


def store_version() -> tuple[Path, ...] | None:
    """The live segments now (None when the store cannot be read): what a month's report or
    findings were computed from, so they are computed again once new spans land."""
    try:
        return tuple(preagg.live_segments(current_context().data_dir))
    except (analysis.StoreError, OSError):
        return None


@contextmanager
def open_data(context: DashboardContext) -> Iterator[analysis.Store]:
    """A store of its own with the context's clinical calendar (for a job off the request);
    ``NoData`` when it cannot be opened."""
    try:
        store = analysis.open_store(context.data_dir, calendar=context.calendar())
    except analysis.StoreError as exc:
        raise NoData(str(exc)) from exc
    with store:
        yield store


def simulated_text(simulated: int, runs: int) -> str:
    """A label for pages whose window holds simulated history (it must never pass as measured)."""
    if not simulated:
        return ""
    return (
        f"Simulated data: {count_text(simulated)} of the {count_text(runs)} runs in this window were simulated "
        "from the testbed's "
        "latency model, not measured."
    )
