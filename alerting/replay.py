"""A replay of the alerts over a stretch of history: the same evaluator, its clock stepped through.

Each evaluation asks the store for the runs of the days before its moment; stepping a quarter hour
at a time through a day asks for nearly the same runs a hundred times. :class:`RunsWindow` reads
the runs of the stretch (and the days the rules look back) once and answers each of those
questions from memory; any other question (a month's budget, the findings' week, SQL) goes to the
store itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from analysis.store import Store

__all__ = ["RunsWindow"]


class RunsWindow:
    """``store``, with the runs starting in [``start``, ``end``) read once."""

    def __init__(self, store: Store, start: dt.datetime, end: dt.datetime) -> None:
        self._store = store
        self.start, self.end = start, end
        self._runs = store.runs(start, end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def runs(self, start: Any = None, end: Any = None, workflow: Any = None, site: Any = None,
             period: str | None = None) -> pd.DataFrame:
        """As :meth:`analysis.store.Store.runs`; from memory when the window holds the question."""
        if period is not None or start is None or end is None or start < self.start or end > self.end:
            return self._store.runs(start, end, workflow=workflow, site=site, period=period)
        runs = self._runs
        keep = (runs["start"] >= pd.Timestamp(start)) & (runs["start"] < pd.Timestamp(end))
        for column, names in (("workflow", workflow), ("site", site)):
            if names is not None:
                keep &= runs[column].isin([names] if isinstance(names, str) else list(names))
        return runs[keep].reset_index(drop=True)
