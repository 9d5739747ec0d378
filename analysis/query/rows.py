"""Rows, not aggregates: the runs a page lists, their steps, missed slots, a status's recent runs.

Read exactly from the store's views; a window's bounds let DuckDB skip the row groups of other
times (segments are sorted by start). The status's baseline is a figure and comes from
:mod:`analysis.query.figures`' sources.
"""

from __future__ import annotations

import datetime as dt
import pandas as pd

from analysis.query.figures import FRUSTRATED_SHARE, ask, level_for
from analysis.query.sources import Definitions
from analysis.status import RECENT_RUNS_QUERY, StatusRules, against_thresholds, judge_status
from analysis.store import RunFilter, Store

__all__ = ["RUN_LIST", "chart_steps", "current_status", "missed_slots", "slowest"]

RUN_LIST = ["trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s", "simulated"]


def slowest(store: Store, runs: RunFilter, *, limit: int = 200, status: str | None = None,
            newest_first: bool = False) -> pd.DataFrame:
    """The slowest runs first (or the newest): ``trace_id, start, workflow, site, status,
    error_type, waiting_s, wall_s, simulated``."""
    where, params = runs.where()
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    order = "start DESC" if newest_first else "waiting_s DESC NULLS LAST, start DESC"
    return store.sql(f"SELECT {', '.join(RUN_LIST)} FROM runs WHERE {where} ORDER BY {order} LIMIT ?",
                     [*params, int(limit)])


def chart_steps(store: Store, listed: pd.DataFrame) -> pd.DataFrame:
    """The steps of the listed runs (``trace_id, start, site, step, step_index, duration_s``),
    read between the first run's start and the last run's end."""
    columns = ["trace_id", "start", "site", "step", "step_index", "duration_s"]
    if listed.empty:
        return pd.DataFrame(columns=columns)
    starts = pd.to_datetime(listed["start"], utc=True)
    ends = starts + pd.to_timedelta(listed["wall_s"].astype(float).fillna(0.0), unit="s")
    lo, hi = starts.min().floor("us").to_pydatetime(), ends.max().ceil("us").to_pydatetime() + dt.timedelta(seconds=1)
    return store.sql(f"SELECT {', '.join(columns)} FROM steps WHERE start >= ? AND start < ? "
                     "AND list_contains(?, trace_id) ORDER BY start, trace_id",
                     [lo, hi, list(listed["trace_id"])])


def missed_slots(store: Store, runs: RunFilter) -> pd.DataFrame:
    """Missed slots in the window: ``trace_id, slot, workflow, site, reason``."""
    where, params = runs.where(time_column="slot")
    return store.sql(f"SELECT trace_id, slot, workflow, site, reason FROM missed_slots WHERE {where} "
                     "ORDER BY slot", params)


def current_status(store: Store, defs: Definitions, now: dt.datetime, rules: StatusRules = StatusRules(), *,
                   thresholds: bool = False, exact: bool = False) -> pd.DataFrame:
    """As ``analysis.status.current_status``: the baseline (ok runs' median per workflow and site
    over the week before the recent window) from the sources, pre-aggregated where whole buckets
    were (within their bound), the recent runs read exactly. With ``thresholds``, the columns of
    :func:`analysis.status.against_thresholds` too; with ``exact``, every row read exactly."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    recent_start = now - rules.recent
    q = ask(store, RunFilter(recent_start - rules.baseline, recent_start), defs, exact=exact)
    baseline = q.sql(f"""
        SELECT b.workflow, b.site, b.baseline_s, l.last_seen
        FROM ({q.quantiles('runs_src', ['workflow', 'site'], {'baseline_s': 0.5}, "status = 'ok'")}) AS b
        JOIN (SELECT workflow, site, max(last_ok) AS last_seen FROM runs_src WHERE status = 'ok' GROUP BY ALL) AS l
          ON b.workflow IS NOT DISTINCT FROM l.workflow AND b.site IS NOT DISTINCT FROM l.site""", level_s=level_for(q))
    recent = store.sql(RECENT_RUNS_QUERY, [recent_start, now])
    status = judge_status(baseline, recent, rules)
    if not thresholds:
        return status
    judged = against_thresholds(recent, dict(defs.thresholds_s), defs.default_threshold_s, FRUSTRATED_SHARE)
    return status.merge(judged, on=["workflow", "site"], how="left")

