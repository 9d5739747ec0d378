"""Experience objectives' figures as SQL over the store's ``runs`` view, returning small frames.

The figures are those :mod:`analysis.objectives` defines (good runs, windows, the budgeting
method's value, pooled percentiles with their sample count, Apdex), computed without loading the
runs: counts per site x period and per window come from one grouped query, and each percentile
from the two order statistics that numpy's linear interpolation reads (and the two that bound its
confidence interval), found by rank in a second query. The interpolation between them is numpy's
own, so the numbers are those of :func:`analysis.percentiles.percentile` over the pooled samples,
to the last bit. Memory is bounded by the sites, periods and windows, not by the runs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.apdex import Apdex
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig
from analysis.percentiles import DEFAULT_CONFIDENCE, Percentile, rank_interval
from store.schema import RUN_INTERRUPTED

__all__ = ["ObjectiveFigures", "apdex_from_counts", "judged_runs_sql", "objective_figures"]

ALL_HOURS = "all hours"
_OVERALL = ""  # the key (as site and period) of the runs in scope counted once: no period is named ""


class ObjectiveFigures:
    """What one query pass gives for an objective over ``[start, end)``.

    Attributes:
        scopes: one row per site x period with runs: ``site, period, runs, good, waits``
            (runs with a waiting time), ``satisfied, tolerating, failed`` (Apdex counts).
        windows: one row per site x period x window with runs: ``site, period, window_index``
            (the window's start in microseconds since the epoch // its length), ``good, total``.
        labelled: rows judged (a run in two periods counted in each), ``labelled_good``.
        unique: the runs in scope counted once: ``runs, waits, satisfied, tolerating, failed``.
        percentiles: per scope key and quantile, :class:`Percentile` (keys ``(site, period)``
            and ``None`` for the unique runs).
    """

    def __init__(self) -> None:
        self.scopes = pd.DataFrame()
        self.windows = pd.DataFrame()
        self.labelled = 0
        self.labelled_good = 0
        self.unique: dict[str, int] = {}
        self.percentiles: dict[tuple[Any, float], Percentile] = {}


def _labelled_sql(objective: ObjectiveConfig, calendar: ClinicalCalendar | None,
                  sites: Sequence[str], start: dt.datetime, end: dt.datetime,
                  materialized: bool = False) -> tuple[str, list[Any]]:
    """``WITH judged AS (...), labelled AS (...)``: the objective's runs, one row per run and
    period it falls in (``all hours`` without periods), each with its ``good`` flag."""
    where = ["start >= ?", "start < ?", "workflow = ?", "status IS DISTINCT FROM ?"]
    params: list[Any] = [start, end, objective.workflow, RUN_INTERRUPTED]
    if objective.sites:
        where.append("list_contains(?, site)")
        params.append(list(objective.sites))
    # good as judge_runs has it: ok, and a waiting time within the threshold (none: not good)
    sql = (f"WITH judged AS (SELECT trace_id, start, site, status, waiting_s, "
           f"coalesce(status = 'ok' AND waiting_s <= ?, false) AS good FROM runs "
           f"WHERE {' AND '.join(where)})")
    params = [float(objective.threshold_s), *params]
    # dialect: AS MATERIALIZED (DuckDB, PostgreSQL): computed once for a query that reads it twice
    labelled = "labelled AS MATERIALIZED" if materialized else "labelled AS"
    if not objective.periods:
        return sql + f", {labelled} (SELECT *, '{ALL_HOURS}' AS period FROM judged)", params
    if calendar is None:
        raise ValueError(f"objective {objective.name!r} names periods: a calendar is needed")
    arms = []
    for name in objective.periods:
        cases = []
        arm_params: list[Any] = [name]
        for site in sites:  # a period is a condition on the site's local time: one per site
            condition, condition_params = calendar.sql_condition(name, site)
            cases.append(f"WHEN site = ? THEN {condition}")
            arm_params += [site, *condition_params]
        test = f"CASE {' '.join(cases)} ELSE false END" if cases else "false"
        arms.append(f"SELECT *, ? AS period FROM judged WHERE {test}")
        params += arm_params
    return sql + f", {labelled} (" + " UNION ALL ".join(arms) + ")", params


def judged_runs_sql(store: Any, objective: ObjectiveConfig, calendar: ClinicalCalendar | None,
                    start: dt.datetime, end: dt.datetime, materialized: bool = False) -> tuple[str, list[Any]]:
    """``WITH judged AS (...), labelled AS (...)`` over the store's ``runs``: the runs the
    objective judges in ``[start, end)``, one row per run and period it falls in (columns
    ``trace_id, start, site, status, waiting_s, good, period``), and the query's parameters:
    the SQL twin of :func:`analysis.objectives.objective_runs`.

    Raises:
        ValueError: the objective names periods and there is no calendar.
    """
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    sites: list[str] = []
    if objective.periods:  # the sites present, for the period's condition at each
        where, params = "start >= ? AND start < ? AND workflow = ? AND site IS NOT NULL", [start, end, objective.workflow]
        sites = sorted(str(s) for s in store.sql(f"SELECT DISTINCT site FROM runs WHERE {where}", params)["site"])
    return _labelled_sql(objective, calendar, sites, start, end, materialized)


def _apdex_counts(t_s: float) -> tuple[str, list[Any]]:
    """Apdex's counts as :func:`analysis.apdex.apdex` makes them of waiting times (a failed run
    frustrated, a run without a waiting time frustrated)."""
    return ("count(*) FILTER (WHERE status = 'ok' AND waiting_s <= ?) AS satisfied, "
            "count(*) FILTER (WHERE status = 'ok' AND waiting_s > ? AND waiting_s <= ?) AS tolerating, "
            "count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS failed"), [t_s, t_s, 4 * t_s]


def apdex_from_counts(t_s: float, samples: int, satisfied: int, tolerating: int, failed: int) -> Apdex:
    """The :class:`Apdex` of :func:`analysis.apdex.apdex` from its counts."""
    score = (satisfied + tolerating / 2) / samples if samples else float("nan")
    return Apdex(score, float(t_s), samples, satisfied, tolerating, samples - satisfied - tolerating, failed)


def _ranks(n: int, q: float, confidence: float) -> tuple[int, int, int | None, int | None]:
    """0-based ranks numpy's linear interpolation reads for the q-quantile of n sorted samples,
    and the 1-based ranks of its confidence interval."""
    virtual = (n - 1) * q
    below = math.floor(virtual)
    low, high, _ = rank_interval(n, q, confidence)
    return below, min(below + 1, n - 1), low, high


def _percentile(n: int, q: float, values: dict[int, float], confidence: float) -> Percentile:
    """:func:`analysis.percentiles.percentile` from the order statistics (0-based ranks)."""
    if n == 0:
        return Percentile(math.nan, q, 0, None, None, confidence, math.nan, True)
    below, above, low, high = _ranks(n, q, confidence)
    virtual = (n - 1) * q
    gamma = virtual - math.floor(virtual)
    # numpy's own interpolation (its _lerp) of the two order statistics, as np.quantile does it
    value = float(np.quantile(np.array([values[below], values[above]]), gamma)) if above > below \
        else float(values[below])
    _, _, coverage = rank_interval(n, q, confidence)
    expected_beyond = n * min(q, 1.0 - q)
    small = low is None or high is None or expected_beyond < 1.0
    return Percentile(value, q, n, None if low is None else float(values[low - 1]),
                      None if high is None else float(values[high - 1]), confidence, coverage, small)


def objective_figures(store: Any, objective: ObjectiveConfig, calendar: ClinicalCalendar | None,
                      start: dt.datetime, end: dt.datetime, qs: Sequence[float] = (0.5, 0.9),
                      confidence: float = DEFAULT_CONFIDENCE) -> ObjectiveFigures:
    """The objective's counts, windows and percentiles over ``[start, end)`` from the store's
    ``runs`` view (``store``: an :class:`analysis.store.Store` or a cache over it).

    Raises:
        ValueError: the objective names periods and there is no calendar.
    """
    base, params = judged_runs_sql(store, objective, calendar, start, end, materialized=True)
    apdex_sql, apdex_params = _apdex_counts(float(objective.apdex_t))
    step_us = objective.window_minutes * 60 * 1_000_000
    out = ObjectiveFigures()
    # One pass: per site x period x window (level 0), per site x period (1), every row judged (7),
    # and the runs counted once (-1). A null site is in no scope (as pandas' groupby drops it) but
    # counts overall. dialect: epoch_us (microseconds since the epoch; ClickHouse
    # toUnixTimestamp64Micro), GROUPING SETS and GROUPING() are standard SQL.
    counts = store.sql(f"""{base}
SELECT site, period, window_index, GROUPING(site, period, window_index) AS level, count(*) AS runs,
       count(*) FILTER (WHERE good) AS good, count(waiting_s) AS waits, {apdex_sql}
FROM (SELECT *, epoch_us(start) // {step_us} AS window_index FROM labelled)
GROUP BY GROUPING SETS ((site, period, window_index), (site, period), ())
UNION ALL
SELECT NULL, NULL, NULL, -1, count(*), 0, count(waiting_s), {apdex_sql}
FROM (SELECT trace_id, any_value(status) AS status, any_value(waiting_s) AS waiting_s
      FROM labelled GROUP BY trace_id)""", [*params, *apdex_params, *apdex_params])
    level = counts["level"]
    windows = counts[(level == 0) & counts["site"].notna()]
    out.windows = windows.rename(columns={"runs": "total"})[["site", "period", "window_index", "good", "total"]]
    totals = counts[level == 7]
    unique = counts[level == -1]
    out.labelled = int(totals["runs"].sum())
    out.labelled_good = int(totals["good"].sum())
    out.scopes = counts[(level == 1) & counts["site"].notna()].reset_index(drop=True)
    out.unique = {k: int(unique[k].iloc[0]) for k in ("runs", "waits", "satisfied", "tolerating", "failed")}

    # The order statistics each percentile reads: scope keys and 1-based ranks, found in one pass.
    wanted: dict[tuple[str, str, int], None] = {}
    keys: list[tuple[Any, int]] = [((str(r.site), str(r.period)), int(r.waits)) for r in out.scopes.itertuples()]
    keys.append((None, out.unique["waits"]))
    for key, n in keys:
        for q in qs if key is not None else (0.9,):
            if n == 0:
                continue
            below, above, low, high = _ranks(n, q, confidence)
            site, period = key if key is not None else (_OVERALL, _OVERALL)
            for rank in {below + 1, above + 1, *(r for r in (low, high) if r is not None)}:
                wanted[(site, period, rank)] = None
    values: dict[tuple[str, str], dict[int, float]] = {}
    if wanted:
        table = pa.table({"site": [k[0] for k in wanted], "period": [k[1] for k in wanted],
                          "rank": pa.array([k[2] for k in wanted], pa.int64())})
        # dialect: none (row_number over a partition is standard SQL); the sort spills to disk.
        found = store.sql(f"""{base}, samples AS (
    SELECT site, period, waiting_s FROM labelled WHERE waiting_s IS NOT NULL AND site IS NOT NULL
    UNION ALL
    SELECT '{_OVERALL}', '{_OVERALL}', any_value(waiting_s) FROM labelled WHERE waiting_s IS NOT NULL GROUP BY trace_id),
ranked AS (SELECT site, period, waiting_s,
                  row_number() OVER (PARTITION BY site, period ORDER BY waiting_s) AS rank FROM samples)
SELECT r.site, r.period, r.rank, r.waiting_s FROM ranked AS r
JOIN wanted AS w ON r.site = w.site AND r.period = w.period AND r.rank = w.rank""", params,
                          tables={"wanted": table})
        for row in found.itertuples():
            values.setdefault((str(row.site), str(row.period)), {})[int(row.rank) - 1] = float(row.waiting_s)
    for key, n in keys:
        site, period = key if key is not None else (_OVERALL, _OVERALL)
        stats = values.get((site, period), {})
        for q in qs if key is not None else (0.9,):
            out.percentiles[(key, q)] = _percentile(n, q, stats, confidence)
    return out
