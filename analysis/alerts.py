"""Burn-rate alerts for both kinds of objective, as the SRE workbook defines them.

An experience objective burns on its runs (a run is bad when it failed or waited longer than the
threshold; only runs inside the objective's periods and sites count); an SLA burns on the requests
it counts (service hours, exclusions, data source as configured; bad as its metric defines). Each
alert of :func:`analysis.budget.alert_windows` fires when both its long and its short window
(ending at ``at``) burn faster than its threshold. The period the thresholds are computed for is
the objective's compliance window when it has a fixed length (``28d``), else 30 days (calendar
months, as the workbook's table assumes).

The events are counted by DuckDB, each window's events and bad ones in one query: nothing of the
long window (three days of requests, for the ticket) is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.budget import AlertWindow, alert_windows, burn_rate_alerts_from_counts, parse_duration
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, SLAConfig
from analysis.query.objectives import judged_runs_sql
from analysis.sla import _base_query
from analysis.store import FrameCache, Store

__all__ = ["objective_alerts", "objective_event_counts", "sla_alerts", "sla_event_counts"]

_MONTH_PERIOD = dt.timedelta(days=30)


def _period(window: str) -> dt.timedelta:
    duration = parse_duration(window)
    return _MONTH_PERIOD if duration.is_calendar else duration.to_timedelta()


def _lookback(windows: Sequence[AlertWindow]) -> dt.timedelta:
    return max(w.long_window for w in windows)


def objective_alerts(
    store: Store | FrameCache,
    objective: ObjectiveConfig,
    calendar: ClinicalCalendar | None,
    at: dt.datetime,
    windows: Sequence[AlertWindow] | None = None,
) -> pd.DataFrame:
    """The multi-window burn-rate alerts of an experience objective at moment ``at``.

    Args:
        store: the store.
        objective: the objective (its target is the SLO; its runs are the events).
        calendar: the clinical calendar (for objectives with periods).
        at: the moment judged (timezone-aware); each window ends there.
        windows: the alerts (default: the workbook's for the objective's period).

    Returns:
        As :func:`analysis.budget.burn_rate_alerts`, one row per alert.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    chosen = list(windows) if windows is not None else alert_windows(
        _period(objective.compliance_window))
    base, params = judged_runs_sql(store, objective, calendar, at - _lookback(chosen),
                                   at + dt.timedelta(microseconds=1))
    # A run in two of the objective's periods is one event.
    events = f"{base}, events AS (SELECT any_value(start) AS start, bool_or(good) AS good FROM labelled GROUP BY trace_id)"
    return burn_rate_alerts_from_counts(_window_counts(store, events, params, at, chosen),
                                        objective.target, chosen)


def _window_counts(store: Store | FrameCache, events: str, params: list[Any], at: dt.datetime,
                   windows: Sequence[AlertWindow]) -> Callable[[dt.timedelta], tuple[int, int]]:
    """Events and bad ones in ``(at - w, at]`` for every window of ``windows``, in one query over
    ``events`` (a ``WITH`` defining ``events(start, good)``)."""
    lengths = sorted({w.long_window for w in windows} | {w.short_window for w in windows})
    columns, bounds = [], []
    for i, length in enumerate(lengths):
        inside = "start > ? AND start <= ?"
        columns.append(f"count(*) FILTER (WHERE {inside}) AS n_{i}, "
                       f"count(*) FILTER (WHERE {inside} AND NOT good) AS bad_{i}")
        bounds += [at - length, at, at - length, at]
    row = store.sql(f"{events} SELECT {', '.join(columns)} FROM events", [*params, *bounds]).iloc[0]
    found = {length: (int(row[f"n_{i}"]), int(row[f"bad_{i}"])) for i, length in enumerate(lengths)}
    return found.__getitem__


def sla_alerts(
    store: Store | FrameCache,
    sla: SLAConfig,
    at: dt.datetime,
    windows: Sequence[AlertWindow] | None = None,
    base_dir: Path | None = None,
) -> pd.DataFrame:
    """The multi-window burn-rate alerts of an SLA at moment ``at`` (its requests are the events).

    A ``percentile`` SLA burns as the share "within the target" against the percentile's q.

    Raises:
        ValueError: a ``mean`` SLA (a mean has no error budget), or a naive ``at``.
    """
    if sla.metric == "mean":
        raise ValueError(f"SLA {sla.name!r} is a mean: it has no error budget to burn")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    period = (dt.timedelta(days=sla.rolling_days) if sla.window == "rolling" and sla.rolling_days
              else _MONTH_PERIOD)
    chosen = list(windows) if windows is not None else alert_windows(period)
    base, params = _base_query(sla, at - _lookback(chosen), at + dt.timedelta(microseconds=1), base_dir,
                               columns="start, duration_s, status")
    events = f"{base}, events AS (SELECT start, good FROM base WHERE in_hours AND NOT excluded)"
    return burn_rate_alerts_from_counts(_window_counts(store, events, params, at, chosen),
                                        sla.ratio_target, chosen)


def objective_event_counts(store: Store | FrameCache, objective: ObjectiveConfig,
                           calendar: ClinicalCalendar | None, start: dt.datetime, end: dt.datetime
                           ) -> tuple[int, int]:
    """The objective's events in ``[start, end)`` and the good ones (a run in two of its periods
    once), counted by DuckDB: what a compliance window's budget is judged on, without its runs."""
    base, params = judged_runs_sql(store, objective, calendar, start, end)
    row = store.sql(f"{base} SELECT count(*) AS n, count(*) FILTER (WHERE good) AS good FROM "
                    "(SELECT bool_or(good) AS good FROM labelled GROUP BY trace_id)", params).iloc[0]
    return int(row["n"]), int(row["good"])


def sla_event_counts(store: Store | FrameCache, sla: SLAConfig, start: dt.datetime, end: dt.datetime,
                     base_dir: Path | None = None) -> tuple[int, int]:
    """The requests the SLA counts in ``[start, end)`` and the good ones, counted by DuckDB."""
    base, params = _base_query(sla, start, end, base_dir)
    row = store.sql(f"{base} SELECT count(*) AS n, count(*) FILTER (WHERE good) AS good FROM base "
                    "WHERE in_hours AND NOT excluded", params).iloc[0]
    return int(row["n"]), int(row["good"])
