"""What every figure is computed from: the runs and the steps as weighted rows.

A *source* has one shape whatever it is made of. Each row stands for ``n`` runs (or steps) with
the same keys and the same value ``value_s``, and carries their exact sums:

- runs: ``moment`` (when: the run's start, or its 15-minute bucket), ``workflow, site, status,
  simulated``, ``zone`` (Apdex against the workflow's T: 0 satisfied, 1 tolerating, 2
  frustrated; a run that is not ok is frustrated), ``value_s`` (waiting time), ``n``, ``sum_s``,
  ``last_ok`` (latest start of an ok run among them);
- steps: ``moment, workflow, site, step, step_index, slow`` (its run waited longer than the
  workflow's T), ``value_s`` (duration), ``n, sum_s``, ``phase_n`` (steps with a time to first
  byte) and one ``<phase>_sum`` per request phase over those.

The *exact* source has one row per run or step (``n = 1``, the value itself): :func:`exact_runs`,
:func:`exact_steps`. The *pre-aggregate* is the same rows grouped per closed 15-minute bucket,
each value replaced by its histogram bucket's representative (:func:`materialize`): counts and
sums stay exact, percentiles move by at most :data:`~analysis.query.dialect.RELATIVE_ERROR`.
A closed day is also kept at coarser levels (:data:`LEVELS_S`: hour and day rows), the same
rows grouped again (the histogram's buckets and the counts add), so a month reads about 30 rows
per key and value instead of 2,880.
The figures (:mod:`analysis.query.figures`) read either, or both at once (pre-aggregated
buckets and exact rows for the rest of a window), with the same SQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from analysis.query import dialect as d
from store import schema
from store.layout import PARTITION_KEY

__all__ = [
    "BUCKET_S",
    "DAY_S",
    "HOUR_S",
    "LEVELS_S",
    "PHASES",
    "RUN_LOOKBACK",
    "RUN_COLUMNS",
    "RUN_LIST",
    "SLOWEST_ORDER",
    "TOP_RANKS",
    "TOP_RUNS",
    "STEP_COLUMNS",
    "Definitions",
    "exact_runs",
    "exact_steps",
    "kept_slowest",
    "listed_steps",
    "materialize",
    "missed_slot_spans",
]

BUCKET_S = 900  # the pre-aggregate's bucket: 15 minutes, on which clinical periods are aligned
HOUR_S, DAY_S = 3_600, 86_400
# The pre-aggregate's levels, finest first: each a whole number of the one before, summed from it
# (materialize(histogram=False)); which level may answer a figure is figures.level_for's rule.
LEVELS_S = (BUCKET_S, HOUR_S, DAY_S)
PHASES = ("dns_s", "connect_s", "tls_s", "ttfb_s", "transfer_s")
# A step is judged by its run (slow or not) when the run started at most this long before the
# step's window: longer runs are not timed by any workflow this project runs (timeouts are seconds).
RUN_LOOKBACK = dt.timedelta(hours=6)
FORMAT = 1  # raise when a source's columns or the histogram change

RUN_COLUMNS = ("moment", "workflow", "site", "status", "simulated", "zone", "value_s", "n", "sum_s", "last_ok")
# A listed run (the runs page), and the order of "slowest first" (the last keys break ties, so a
# kept list and a scan agree on which runs make the top).
RUN_LIST = ("trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s", "simulated")
SLOWEST_ORDER = "waiting_s DESC NULLS LAST, start DESC, trace_id"
# A closed day keeps its TOP_RUNS slowest runs overall, of each workflow, of each site and of each
# workflow at each site, with their rank in each: the slowest N <= TOP_RUNS of any window of whole
# days, for any workflows and sites, are among the kept runs of those days ranked <= N in the
# narrowest group holding the filter (each of them is in the top N of its own group).
TOP_RUNS = 200
TOP_RANKS = {(False, False): "rank_all", (True, False): "rank_workflow", (False, True): "rank_site",
             (True, True): "rank_pair"}  # (workflows filtered, sites filtered) -> the rank to read
STEP_COLUMNS = ("moment", "workflow", "site", "step", "step_index", "slow", "value_s", "n", "sum_s", "phase_n",
                *(f"{p}_sum" for p in PHASES))


@dataclass(frozen=True)
class Definitions:
    """What the figures judge by: each workflow's threshold T (also its Apdex T; 4T is F).

    The pre-aggregate holds Apdex zones, so it is made for one set of definitions and kept under
    their :attr:`digest`."""

    thresholds_s: tuple[tuple[str, float], ...] = ()
    default_threshold_s: float = 3.0

    @classmethod
    def of(cls, thresholds_s: Mapping[str, float], default_threshold_s: float = 3.0) -> Definitions:
        return cls(tuple(sorted((str(w), float(t)) for w, t in thresholds_s.items())), float(default_threshold_s))

    def threshold(self, workflow: object) -> float:
        return dict(self.thresholds_s).get(workflow, self.default_threshold_s)  # type: ignore[arg-type]

    @property
    def digest(self) -> str:
        text = json.dumps({"format": FORMAT, "bucket_s": BUCKET_S, "relative_error": d.RELATIVE_ERROR,
                           "lookback_s": RUN_LOOKBACK.total_seconds(), "thresholds": self.thresholds_s,
                           "default": self.default_threshold_s}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def table(self) -> pd.DataFrame:
        """The thresholds as a table the SQL joins (``workflow, threshold_s``)."""
        return pd.DataFrame({"workflow": pd.Series([w for w, _ in self.thresholds_s], dtype=object),
                             "threshold_s": pd.Series([t for _, t in self.thresholds_s], dtype=float)})


THRESHOLDS = "thresholds"  # the name the definitions' table is registered under


def _time(column: str, intervals: list[tuple[dt.datetime, dt.datetime]]) -> tuple[str, list]:
    if not intervals:
        return "FALSE", []
    return ("(" + " OR ".join(f"({column} >= ? AND {column} < ?)" for _ in intervals) + ")",
            [bound for interval in intervals for bound in interval])


def exact_runs(defs: Definitions, intervals: list[tuple[dt.datetime, dt.datetime]]) -> tuple[str, list]:
    """One row per run starting in any of ``intervals`` (the runs view), and its parameters."""
    when, params = _time("r.start", intervals)
    t = f"coalesce(t.threshold_s, {defs.default_threshold_s!r})"
    return f"""
        SELECT r.start AS moment, r.workflow, r.site, r.status, coalesce(r.simulated, false) AS simulated,
               CASE WHEN r.status = 'ok' AND r.waiting_s <= {t} THEN 0
                    WHEN r.status = 'ok' AND r.waiting_s <= 4 * {t} THEN 1 ELSE 2 END AS zone,
               r.waiting_s AS value_s, 1 AS n, r.waiting_s AS sum_s,
               CASE WHEN r.status = 'ok' THEN r.start END AS last_ok
        FROM runs AS r LEFT JOIN {THRESHOLDS} AS t ON t.workflow = r.workflow
        WHERE {when}""", params


def exact_steps(defs: Definitions, intervals: list[tuple[dt.datetime, dt.datetime]]) -> tuple[str, list]:
    """One row per step starting in any of ``intervals`` (chosen by its own start), judged by
    its run (looked up from :data:`RUN_LOOKBACK` before), and its parameters."""
    when, params = _time("st.start", intervals)
    runs_when, runs_params = _time("start", [(lo - RUN_LOOKBACK, hi) for lo, hi in intervals])
    phases = ", ".join(f"CASE WHEN st.ttfb_s IS NOT NULL THEN coalesce(st.{p}, 0) ELSE 0 END AS {p}_sum"
                       for p in PHASES)
    return f"""
        SELECT st.start AS moment, coalesce(st.workflow, r.workflow) AS workflow, st.site, st.step, st.step_index,
               coalesce(r.waiting_s > coalesce(t.threshold_s, {defs.default_threshold_s!r}), false) AS slow,
               st.duration_s AS value_s, 1 AS n, st.duration_s AS sum_s,
               CASE WHEN st.ttfb_s IS NOT NULL THEN 1 ELSE 0 END AS phase_n, {phases}
        FROM steps AS st
        LEFT JOIN (SELECT trace_id, max(workflow) AS workflow, max(waiting_s) AS waiting_s
                   FROM runs WHERE {runs_when} GROUP BY trace_id) AS r ON r.trace_id = st.trace_id
        LEFT JOIN {THRESHOLDS} AS t ON t.workflow = coalesce(st.workflow, r.workflow)
        WHERE {when}""", [*runs_params, *params]


def kept_slowest(lo: dt.datetime, hi: dt.datetime, per_s: int | None = None) -> tuple[str, list]:
    """The kept slowest runs starting in ``[lo, hi)`` (a closed day): :data:`RUN_LIST` and the
    four ranks of :data:`TOP_RANKS`, the runs ranked <= :data:`TOP_RUNS` in any of them.

    With ``per_s`` (:data:`HOUR_S`), ranked within each UTC bucket of that length instead of the
    whole range: the slowest of any whole hours of the day, for a window that holds only part
    of it."""
    bucket = f"{d.bucket_start('start', per_s)}, " if per_s else ""
    ranks = {"rank_all": "", "rank_workflow": "workflow", "rank_site": "site", "rank_pair": "workflow, site"}
    over = ", ".join(f"row_number() OVER ({'PARTITION BY ' + (bucket + part).strip(', ') if bucket or part else ''} "
                     f"ORDER BY {SLOWEST_ORDER}) AS {name}" for name, part in ranks.items())
    return f"""
        SELECT * FROM (SELECT {', '.join(RUN_LIST)}, {over} FROM runs WHERE start >= ? AND start < ?)
        WHERE least({', '.join(ranks)}) <= {TOP_RUNS}""", [lo, hi]


MISSED_LIST = ("trace_id", "slot", "workflow", "site", "reason")  # a missed slot, as the missed_slots view


def missed_slot_spans(times: int) -> str:
    """The missed slots (:data:`MISSED_LIST`) whose spans start in any of ``times`` intervals
    (``2 * times`` parameters, ``lo, hi`` each): the ``missed_slots`` view's rows read with the
    span's start bounded (a missed slot's span starts at its slot), so DuckDB skips the row
    groups of other times. A closed day keeps its own (``preagg``), read instead of its spans."""
    s = schema
    when = " OR ".join(f'("{s.TIMESTAMP}" >= ? AND "{s.TIMESTAMP}" < ?)' for _ in range(times))
    return f"""
        SELECT "{s.TRACE_ID}" AS trace_id, coalesce("{s.SLOT}", "{s.TIMESTAMP}") AS slot, "{s.WORKFLOW}" AS workflow,
               "{s.SITE}" AS site, "{s.MISSED_REASON}" AS reason
        FROM spans WHERE "{s.SPAN_TYPE}" = '{s.SPAN_TYPE_MISSED_SLOT}' AND ({when})"""


STEP_LIST = ("trace_id", "start", "site", "step", "step_index", "duration_s")  # a listed run's steps


def listed_steps(days: list[dt.date], traces: str) -> tuple[str, list]:
    """The steps (:data:`STEP_LIST`) of the runs whose trace ids satisfy ``traces`` (a condition
    on ``trace_id``), read from the step spans themselves (their run is known: no lookup of each
    step's run, as the ``steps`` view makes) of the date partitions ``days`` only."""
    s = schema
    return f"""
        SELECT * FROM (
            SELECT "{s.TRACE_ID}" AS trace_id, "{s.TIMESTAMP}" AS start, "{s.SITE}" AS site, "{s.STEP}" AS step,
                   "{s.STEP_INDEX}"::INTEGER AS step_index, "{s.DURATION}" / 1e9 AS duration_s
            FROM spans WHERE {PARTITION_KEY} IN ({', '.join('?' for _ in days)}) AND "{s.SPAN_TYPE}" = '{s.SPAN_TYPE_STEP}')
        WHERE {traces}""", list(days)


def materialize(kind: str, rows_sql: str, bucket_s: int = BUCKET_S, *, histogram: bool = True) -> str:
    """The pre-aggregate of a source's rows (``kind`` ``runs`` or ``steps``): grouped per bucket of
    ``bucket_s`` seconds and histogram value. The same rows, so the same figures read it.

    With ``histogram`` (rows of the exact source) each value is replaced by its histogram bucket's
    representative first; without it the rows are already a pre-aggregate's (a finer level's),
    whose values are representatives, and every column is a sum, a min or a max of its rows: so a
    coarser level summed from the finer one equals the coarser level built from the exact rows."""
    at = d.bucket_start("moment", bucket_s)
    value = d.log_bucket_value("value_s") if histogram else "value_s"
    if kind == "runs":
        return f"""
            SELECT {at} AS moment, workflow, site, status, simulated, zone, {value} AS value_s,
                   CAST(sum(n) AS BIGINT) AS n, sum(sum_s) AS sum_s, max(last_ok) AS last_ok
            FROM ({rows_sql}) GROUP BY ALL"""
    sums = ", ".join(f"sum({p}_sum) AS {p}_sum" for p in PHASES)
    return f"""
        SELECT {at} AS moment, workflow, site, step, min(step_index) AS step_index, slow, {value} AS value_s,
               CAST(sum(n) AS BIGINT) AS n, sum(sum_s) AS sum_s, CAST(sum(phase_n) AS BIGINT) AS phase_n, {sums}
        FROM ({rows_sql}) GROUP BY ALL"""
