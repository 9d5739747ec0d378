"""Aggregates computed inside DuckDB, so pages stay fast as the store grows.

Each function returns a small DataFrame (one row per cell, step, site or bucket), never the runs
themselves. Percentiles use DuckDB's ``quantile_cont`` (linear interpolation, the project's one
definition) over the pooled samples of each group; every row carries its sample count.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.apdex import Apdex
from analysis.store import RunFilter, Store
from store import schema as s

__all__ = [
    "phase_summary",
    "site_summary",
    "slowest_runs",
    "step_summary",
    "time_of_day",
    "waiting_timeline",
    "workflow_site_summary",
]

_PHASES = ("dns_s", "connect_s", "tls_s", "ttfb_s", "transfer_s")
# Runs the probe stopped itself (Ctrl-C) are facts about the probe, not the EPR: listed, never judged.
_JUDGED = f"status <> '{s.RUN_INTERRUPTED}'"


def time_of_day(store: Store, runs: RunFilter, *, timezone: str, threshold_s: float) -> pd.DataFrame:
    """Runs by weekday (0 = Monday) and hour in ``timezone``.

    Columns: ``weekday, hour, samples, share_under`` (share of runs that were ok and waited at most
    ``threshold_s``; failed runs count as not under), ``p90_s`` (of ok runs' waiting time).
    """
    where, params = runs.where()
    query = f"""
        WITH local AS (
            SELECT timezone(?, start) AS local_start, status, waiting_s FROM runs
            WHERE {where} AND {_JUDGED}
        )
        SELECT isodow(local_start) - 1 AS weekday, hour(local_start) AS hour, count(*) AS samples,
               avg(CASE WHEN status = 'ok' AND waiting_s <= ? THEN 1.0 ELSE 0.0 END) AS share_under,
               quantile_cont(waiting_s, 0.9) FILTER (WHERE status = 'ok') AS p90_s
        FROM local GROUP BY ALL ORDER BY weekday, hour
    """
    return store.sql(query, [timezone, *params, threshold_s])


def step_summary(store: Store, runs: RunFilter, *, threshold_s: float | None = None) -> pd.DataFrame:
    """Per step: ``samples, median_s, p90_s, mean_s`` and ``excess_share``.

    Steps are chosen by their own start, workflow and site (a step of a run that straddles the
    window's edge counts on the side where the step started), as the dashboard's rollup does.

    ``excess_share`` answers "which step made runs slow": over the runs that waited longer than
    ``threshold_s``, each step's time above its own median across all runs, as a share of that
    excess summed over steps. ``None`` without a threshold or when no run exceeded it.
    """
    where, params = runs.where("st")
    threshold = threshold_s if threshold_s is not None else float("inf")
    query = f"""
        WITH s AS (
            SELECT st.step, st.step_index, st.duration_s, r.waiting_s
            FROM steps AS st LEFT JOIN runs AS r USING (trace_id) WHERE {where}
        ),
        typical AS (
            SELECT step, median(duration_s) AS median_s FROM s GROUP BY step
        ),
        excess AS (
            SELECT s.step, sum(greatest(s.duration_s - t.median_s, 0)) AS excess_s
            FROM s JOIN typical AS t USING (step) WHERE s.waiting_s > ? GROUP BY s.step
        )
        SELECT s.step, min(s.step_index) AS step_index, count(*) AS samples,
               quantile_cont(s.duration_s, 0.5) AS median_s, quantile_cont(s.duration_s, 0.9) AS p90_s,
               avg(s.duration_s) AS mean_s, any_value(e.excess_s) AS excess_s
        FROM s LEFT JOIN excess AS e USING (step) GROUP BY s.step ORDER BY step_index, s.step
    """
    frame = store.sql(query, [*params, threshold])
    total = frame["excess_s"].sum(min_count=1)
    if pd.isna(total) or total <= 0:
        frame["excess_share"] = None
    else:
        frame["excess_share"] = frame["excess_s"].fillna(0.0) / total
    return frame.drop(columns=["excess_s"])


def waiting_timeline(store: Store, runs: RunFilter, *, bucket: str = "1 hour") -> pd.DataFrame:
    """Median and p90 of ok runs' waiting time per time bucket (UTC): ``bucket, samples, p50_s, p90_s``.

    ``bucket`` is a DuckDB interval such as ``'15 minutes'``, ``'1 hour'`` or ``'1 day'``.
    """
    where, params = runs.where()
    query = f"""
        SELECT time_bucket(CAST(? AS INTERVAL), start) AS bucket, count(*) AS samples,
               quantile_cont(waiting_s, 0.5) AS p50_s, quantile_cont(waiting_s, 0.9) AS p90_s
        FROM runs WHERE {where} AND status = 'ok' GROUP BY ALL ORDER BY bucket
    """
    return store.sql(query, [bucket, *params])


def site_summary(store: Store, runs: RunFilter, *, threshold_s: float) -> pd.DataFrame:
    """Per site: ``samples, not_ok, share_under, p50_s, p90_s`` of whole runs."""
    where, params = runs.where()
    query = f"""
        SELECT site, count(*) AS samples, count(*) FILTER (WHERE status <> 'ok') AS not_ok,
               avg(CASE WHEN status = 'ok' AND waiting_s <= ? THEN 1.0 ELSE 0.0 END) AS share_under,
               quantile_cont(waiting_s, 0.5) FILTER (WHERE status = 'ok') AS p50_s,
               quantile_cont(waiting_s, 0.9) FILTER (WHERE status = 'ok') AS p90_s
        FROM runs WHERE {where} AND {_JUDGED} GROUP BY site ORDER BY site
    """
    return store.sql(query, [threshold_s, *params])


def phase_summary(store: Store, runs: RunFilter) -> pd.DataFrame:
    """Mean request phases per site (s): ``site, samples`` and one column per phase.

    A phase that did not occur (a reused connection has no connect or TLS) counts as 0 s. Steps
    are chosen by their own start, workflow and site.
    """
    where, params = runs.where("st")
    means = ", ".join(f"avg(coalesce(st.{p}, 0)) AS {p}" for p in _PHASES)
    query = f"""
        SELECT st.site, count(*) AS samples, {means}
        FROM steps AS st
        WHERE {where} AND st.ttfb_s IS NOT NULL GROUP BY st.site ORDER BY st.site
    """
    return store.sql(query, params)


def slowest_runs(
    store: Store, runs: RunFilter, *, limit: int = 200, status: str | None = None, newest_first: bool = False
) -> pd.DataFrame:
    """The slowest runs first (or the newest): ``trace_id, start, workflow, site, status, error_type,
    waiting_s, wall_s, simulated``."""
    where, params = runs.where()
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    query = f"""
        SELECT trace_id, start, workflow, site, status, error_type, waiting_s, wall_s, simulated
        FROM runs WHERE {where} ORDER BY {"start DESC" if newest_first else "waiting_s DESC NULLS LAST, start DESC"}
        LIMIT ?
    """
    return store.sql(query, [*params, int(limit)])


def workflow_site_summary(store: Store, runs: RunFilter, *, thresholds_s: Mapping[str, float],
                          default_threshold_s: float) -> pd.DataFrame:
    """Per workflow x site, judged against each workflow's threshold T (also its Apdex T).

    Columns: ``workflow, site, threshold_s, samples, not_ok, share_under, p50_s, p90_s`` (ok runs'
    waiting time) and ``apdex`` (an :class:`Apdex`; failed runs count as frustrated).
    """
    where, params = runs.where("r")
    pairs = list(thresholds_s.items()) or [("", default_threshold_s)]
    query = f"""
        WITH t(workflow, threshold_s) AS (VALUES {", ".join("(?, ?)" for _ in pairs)})
        SELECT r.workflow, r.site, coalesce(any_value(t.threshold_s), ?) AS threshold_s,
               count(*) AS samples,
               count(*) FILTER (WHERE r.status <> 'ok') AS not_ok,
               count(*) FILTER (WHERE r.status = 'ok' AND r.waiting_s <= coalesce(t.threshold_s, ?)) AS satisfied,
               count(*) FILTER (WHERE r.status = 'ok' AND r.waiting_s > coalesce(t.threshold_s, ?)
                                AND r.waiting_s <= 4 * coalesce(t.threshold_s, ?)) AS tolerating,
               quantile_cont(r.waiting_s, 0.5) FILTER (WHERE r.status = 'ok') AS p50_s,
               quantile_cont(r.waiting_s, 0.9) FILTER (WHERE r.status = 'ok') AS p90_s
        FROM runs AS r LEFT JOIN t USING (workflow)
        WHERE {where} AND r.{_JUDGED}
        GROUP BY r.workflow, r.site ORDER BY r.workflow, r.site
    """
    flat = [value for pair in pairs for value in pair]
    d = default_threshold_s
    frame = store.sql(query, [*flat, d, d, d, d, *params])
    frame["share_under"] = frame["satisfied"] / frame["samples"]
    frame["apdex"] = [
        Apdex(
            score=(row.satisfied + row.tolerating / 2) / row.samples,
            t_s=float(row.threshold_s),
            samples=int(row.samples),
            satisfied=int(row.satisfied),
            tolerating=int(row.tolerating),
            frustrated=int(row.samples - row.satisfied - row.tolerating),
            failed=int(row.not_ok),
        )
        for row in frame.itertuples()
    ]
    return frame.drop(columns=["satisfied", "tolerating"])
