"""How pages reach the store: opened per request through ``analysis``, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import analysis
from dashboard.context import DashboardContext

__all__ = ["NoData", "open_data", "simulated_note"]


class NoData(Exception):
    """There is nothing to show, and the message says why (and what to do)."""


@contextmanager
def open_data(context: DashboardContext) -> Iterator[analysis.Store]:
    """The store with the context's clinical calendar; ``NoData`` when it cannot be opened."""
    try:
        store = analysis.open_store(context.data_dir, calendar=context.calendar())
    except analysis.StoreError as exc:
        raise NoData(str(exc)) from exc
    with store:
        yield store


def simulated_note(store: analysis.Store, start, end) -> str:
    """A label for pages whose window holds simulated history (it must never pass as measured)."""
    found = store.sql(
        "SELECT count(*) FILTER (WHERE simulated) AS simulated, count(*) AS runs FROM runs WHERE start >= ? AND start < ?",
        [start, end],
    )
    simulated = int(found["simulated"].iloc[0])
    if not simulated:
        return ""
    runs = int(found["runs"].iloc[0])
    return (
        f"Simulated data: {simulated} of the {runs} runs in this window were simulated from the testbed's "
        "latency model, not measured."
    )
