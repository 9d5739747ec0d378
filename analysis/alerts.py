"""Burn-rate alerts for both kinds of objective, as the SRE workbook defines them.

An experience objective burns on its runs (a run is bad when it failed or waited longer than the
threshold; only runs inside the objective's periods and sites count); an SLA burns on the requests
it counts (service hours, exclusions, data source as configured; bad as its metric defines). Each
alert of :func:`analysis.budget.alert_windows` fires when both its long and its short window
(ending at ``at``) burn faster than its threshold. The period the thresholds are computed for is
the objective's compliance window when it has a fixed length (``28d``), else 30 days (calendar
months, as the workbook's table assumes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.budget import AlertWindow, alert_windows, burn_rate_alerts, parse_duration
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, SLAConfig
from analysis.objectives import objective_runs
from analysis.sla import sla_requests
from analysis.store import FrameCache, Store

__all__ = ["objective_alerts", "sla_alerts"]

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
    start = at - _lookback(chosen)
    runs = objective_runs(store, objective, calendar, start, at + dt.timedelta(microseconds=1))
    runs = runs.drop_duplicates("trace_id")
    return burn_rate_alerts(runs["start"], runs["good"].to_numpy(dtype=bool), objective.target,
                            at, chosen)


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
    frame, _, _ = sla_requests(store, sla, at - _lookback(chosen),
                               at + dt.timedelta(microseconds=1), base_dir)
    return burn_rate_alerts(frame["start"], frame["good"].to_numpy(dtype=bool), sla.ratio_target,
                            at, chosen)
