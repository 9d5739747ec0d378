"""The month's report (``analysis.report.build_report``) beside a hand-written DuckDB query over
the same Parquet files computing its headline figures.

The report is configured with one SLA as contracts write them ("95% of requests within 2 s",
calendar month, around the clock), one experience objective ("90% of patient-record opens within
3 s on ward rounds", per site, 15-minute windows) and the ward-rounds period at two sites. The
hand-written query computes the figures the report states: the SLA's value and sample count,
the objective's share of good runs and p90 per site in ward rounds, its Apdex, and the lenses of
the watermelon (all-hours p90 per site, per-request p95, the dominant step's share of the excess
waiting). The report does more than that query (it words its findings, windows the objective,
compares changes), so the ratio is an upper bound on what its machinery costs.
Target (issue 4): the report within 3x of the hand-written query, at 10M spans.

A second hand-written query computes the same figures from the store's views (``requests``,
``runs``, ``steps``) instead of the files: the views' definitions hold on any store (a step that
made several requests counts as those requests), where the query over the files relies on this
data having no such steps. Its figure shows what the report's machinery costs beyond the views
both read; the target stays on the query over the files.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pandas as pd

import analysis
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, PeriodConfig, SLAConfig
from analysis.report import build_report
from benchmarks.results import Figure, Progress, median, time_calls
from benchmarks.synth import SITES
from store import connect
from store import schema as s

__all__ = ["hand_written_over_views", "hand_written_report", "report_inputs", "report_periods", "run"]

NAME = "report"
TIMEZONE = "Europe/London"
_ROUNDS_SITES = ("ward-7", "community-hospital")


def report_inputs() -> tuple[list[SLAConfig], list[ObjectiveConfig], ClinicalCalendar]:
    """The SLA, objective and calendar (of :func:`report_periods`) the benchmark's report is built with."""
    sla = SLAConfig(name="95% of requests within 2 s", metric="share_under", threshold_s=2.0, target=0.95,
                    timezone=TIMEZONE)
    objective = ObjectiveConfig(name="patient record opens within 3 s on ward rounds",
                                workflow="open-patient-record", threshold_s=3.0, target=0.9,
                                periods=["ward rounds"], window_minutes=15)
    calendar = ClinicalCalendar(report_periods(), {site: TIMEZONE for site in SITES}, default_timezone=TIMEZONE)
    return [sla], [objective], calendar


def report_periods() -> list[PeriodConfig]:
    """The clinical periods of the benchmark's calendar."""
    return [PeriodConfig(name="ward rounds", weekdays=["mon", "tue", "wed", "thu", "fri"],
                         start=dt.time(8, 0), end=dt.time(10, 30), sites=list(_ROUNDS_SITES))]


# The figures both hand-written queries end with, from their CTEs ``req`` (requests: duration_s,
# answered), ``judged`` (runs: site, status, waiting_s, good, rounds) and ``st`` (steps of runs in
# ward rounds: step, duration_s, waiting_s).
_FIGURES_SQL = """typical AS (SELECT step, median(duration_s) AS median_s FROM st GROUP BY step),
    excess AS (
        SELECT step, sum(greatest(duration_s - median_s, 0)) AS excess_s
        FROM st JOIN typical USING (step) WHERE waiting_s > 3.0 GROUP BY step)
    SELECT 'sla share within 2 s' AS figure, 'all' AS scope,
           avg(CASE WHEN answered AND duration_s <= 2.0 THEN 1.0 ELSE 0.0 END) AS value,
           count(*) AS samples FROM req
    UNION ALL SELECT 'per-request p95', 'all', quantile_cont(duration_s, 0.95), count(*) FROM req
    UNION ALL SELECT 'objective share good', 'all', avg(good::INT), count(*) FROM judged WHERE rounds
    UNION ALL SELECT 'objective share good', site, avg(good::INT), count(*) FROM judged WHERE rounds GROUP BY site
    UNION ALL SELECT 'ward rounds p90', site, quantile_cont(waiting_s, 0.9), count(*) FROM judged WHERE rounds GROUP BY site
    UNION ALL SELECT 'all hours p90', site, quantile_cont(waiting_s, 0.9), count(*) FROM judged GROUP BY site
    UNION ALL SELECT 'apdex', 'all',
           (count(*) FILTER (WHERE status = 'ok' AND waiting_s <= 3.0)
            + count(*) FILTER (WHERE status = 'ok' AND waiting_s > 3.0 AND waiting_s <= 12.0) / 2) / count(*),
           count(*) FROM judged WHERE rounds
    UNION ALL SELECT 'excess share', step, excess_s / sum(excess_s) OVER (), NULL FROM excess"""


def hand_written_report(path: Path) -> str:
    """One query: the report's figures as rows ``figure, scope, value, samples``.

    It reads the typed columns (run status, waiting time, error type) as an analyst would, not
    the attribute maps they were promoted from."""
    glob = str(path / "spans" / "*" / "*.parquet").replace("'", "''")
    sites = ", ".join(f"'{x}'" for x in _ROUNDS_SITES)
    return f"""
    WITH spans AS (SELECT * FROM read_parquet('{glob}') WHERE "{s.TIMESTAMP}" >= $start AND "{s.TIMESTAMP}" < $end),
    req AS (
        SELECT "{s.DURATION}" / 1e9 AS duration_s, coalesce("{s.ERROR_TYPE_COLUMN}", '') <> 'timeout' AS answered
        FROM spans WHERE "{s.SPAN_TYPE}" = 'step'),
    runs AS (
        SELECT "{s.TRACE_ID}" AS trace_id, "{s.SITE}" AS site, "{s.RUN_STATUS}" AS status,
               "{s.WAITING_S}" AS waiting_s,
               timezone('{TIMEZONE}', "{s.TIMESTAMP}") AS local_start
        FROM spans WHERE "{s.SPAN_TYPE}" = 'run' AND "{s.WORKFLOW}" = 'open-patient-record'),
    judged AS (
        SELECT *, status = 'ok' AND waiting_s <= 3.0 AS good,
               site IN ({sites}) AND isodow(local_start) <= 5
               AND CAST(local_start AS TIME) >= TIME '08:00' AND CAST(local_start AS TIME) < TIME '10:30' AS rounds
        FROM runs),
    st AS (
        SELECT sp."{s.STEP}" AS step, sp."{s.DURATION}" / 1e9 AS duration_s, j.waiting_s
        FROM spans AS sp JOIN judged AS j ON j.trace_id = sp."{s.TRACE_ID}"
        WHERE sp."{s.SPAN_TYPE}" = 'step' AND j.rounds),
    {_FIGURES_SQL}    """


def hand_written_over_views() -> str:
    """The same figures as :func:`hand_written_report`, read from the store's views
    (``requests``, ``runs``, ``steps``) as an analyst querying a store with
    ``store.connect(path)`` would: the views' definitions (a step that made several requests
    counts as those requests; spans without workflow or site take their run's) hold on any
    store, where the query over the files relies on this data having no such spans."""
    sites = ", ".join(f"'{x}'" for x in _ROUNDS_SITES)
    return f"""
    WITH req AS (
        SELECT duration_s, status <> 'timed_out' AS answered FROM requests
        WHERE source = 'probe' AND start >= $start AND start < $end),
    judged AS (
        SELECT trace_id, site, status, waiting_s, status = 'ok' AND waiting_s <= 3.0 AS good,
               site IN ({sites}) AND isodow(local_start) <= 5
               AND CAST(local_start AS TIME) >= TIME '08:00' AND CAST(local_start AS TIME) < TIME '10:30' AS rounds
        FROM (SELECT *, timezone('{TIMEZONE}', start) AS local_start FROM runs
              WHERE workflow = 'open-patient-record' AND start >= $start AND start < $end)),
    st AS (
        SELECT s.step, s.duration_s, j.waiting_s
        FROM steps AS s JOIN judged AS j USING (trace_id)
        WHERE j.rounds AND s.start >= $start AND s.start < $end),
    {_FIGURES_SQL}    """


def _over_views(path: Path, query: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    con = connect(path)
    try:
        con.execute("SET enable_progress_bar = false")
        return con.execute(query, {"start": start, "end": end}).df()
    finally:
        con.close()


def _hand(query: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con.execute(query, {"start": start, "end": end}).df()
    finally:
        con.close()


def run(path: Path, *, month: str, start: dt.datetime, end: dt.datetime, spans: int, repeats: int = 3,
        warm_up: bool = True, progress: Progress = lambda _m: None) -> list[Figure]:
    """Time ``build_report`` for ``month`` and the hand-written query over ``[start, end)``
    (the month in the report's zone), interleaved (after one untimed call of each when
    ``warm_up``); check that their figures agree."""
    slas, objectives, calendar = report_inputs()
    query = hand_written_report(path)
    views_query = hand_written_over_views()

    def ours() -> analysis.report.Report:
        with analysis.open_store(path, calendar=calendar) as store:
            return build_report(store, slas, objectives, calendar, month, timezone=TIMEZONE)

    def hand() -> pd.DataFrame:
        return _hand(query, start, end)

    def hand_views() -> pd.DataFrame:
        return _over_views(path, views_query, start, end)

    size = f"{spans / 1e6:g}M spans"
    progress(f"report: build_report and its hand-written queries (files, views) at {size}, {repeats} rounds")
    times, (report, figures_frame, views_frame) = time_calls([ours, hand, hand_views], repeats,
                                                             warm_up=warm_up)
    ours_s, hand_s, views_s = median(times[0]), median(times[1]), median(times[2])
    note = _agreement(report, figures_frame)
    ratio = ours_s / hand_s
    return [
        Figure(NAME, f"build_report (month {month}) @ {size}: ours", ours_s * 1000, "ms", repeats, note=note),
        Figure(NAME, f"build_report (month {month}) @ {size}: hand-written DuckDB", hand_s * 1000, "ms", repeats),
        Figure(NAME, f"build_report (month {month}) @ {size}: ours / hand-written", ratio, "x", repeats,
               target="<= 3x (at 10M)", met=ratio <= 3.0),
        Figure(NAME, f"build_report (month {month}) @ {size}: hand-written over the store's views",
               views_s * 1000, "ms", repeats, note=_agreement(report, views_frame)),
        Figure(NAME, f"build_report (month {month}) @ {size}: ours / hand-written over the views",
               ours_s / views_s, "x", repeats),
    ]


def _agreement(report: analysis.report.Report, hand: pd.DataFrame) -> str:
    """How far the report's SLA value and per-site objective shares are from the query's."""
    def figure(name: str, scope: str) -> float:
        rows = hand[(hand["figure"] == name) & (hand["scope"] == scope)]
        return float(rows["value"].iloc[0]) if len(rows) else math.nan

    diffs = [abs(report.slas[0].value - figure("sla share within 2 s", "all"))]
    scopes = report.objectives[0].scopes
    for row in scopes.itertuples():
        diffs.append(abs(float(row.share_good) - figure("objective share good", str(row.site))))
        diffs.append(abs(float(row.p90_s) - figure("ward rounds p90", str(row.site))))
    findings = len(report.stories)
    return (f"max |report - hand-written| over SLA value, per-site share good and p90: {max(diffs):.3g}; "
            f"{findings} finding(s) in the report")
