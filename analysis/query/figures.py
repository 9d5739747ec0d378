"""Every grouped figure the dashboard shows, each defined once as SQL over a source.

:func:`ask` makes a :class:`Question`: a window ``[start, end)``, workflows and sites, read from
the pre-aggregated buckets the window holds whole (:mod:`analysis.query.preagg`) and from the
exact rows everywhere else (its edges off the 15-minute grid, buckets not built yet), or only
from the exact rows (``exact=True``; also a window without both bounds). The rows have one shape
(:mod:`analysis.query.sources`), so each figure's SQL is the same whatever the source:

- counts, shares and means are exact on any source (sums of ``n`` and ``sum_s``);
- percentiles are ``quantile_cont``'s definition (linear interpolation between order statistics,
  rank ``q (n - 1)``) computed over weighted values by :func:`_quantiles`: on exact rows that is
  ``quantile_cont`` itself; where buckets were pre-aggregated, each value is its histogram
  bucket's, within :data:`RELATIVE_ERROR` of it, so the percentile is within that bound too.
  Frames with percentiles state the bound that applied in ``p_relative_error`` (0 when exact).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analysis.apdex import Apdex
from analysis.calendar import ClinicalCalendar
from analysis.names import hour_ranges
from analysis.query import dialect as d
from analysis.query import preagg
from analysis.query.sources import (
    BUCKET_S,
    DAY_S,
    HOUR_S,
    LEVELS_S,
    PHASES,
    RUN_COLUMNS,
    STEP_COLUMNS,
    THRESHOLDS,
    Definitions,
    exact_runs,
    exact_steps,
)
from analysis.store import RunFilter, Store
from store import StoreError

__all__ = [
    "FRUSTRATED_SHARE",
    "HOUR_MIN_FRUSTRATED",
    "HOUR_MIN_RUNS",
    "RELATIVE_ERROR",
    "Distribution",
    "Question",
    "ask",
    "board",
    "board_scopes",
    "level_for",
    "period_aligned",
    "period_split",
    "phases",
    "simulated_share",
    "site_phases",
    "sites",
    "steps",
    "time_of_day",
    "timeline",
    "waiting_distribution",
]

RELATIVE_ERROR = d.RELATIVE_ERROR
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
_JUDGED = "status <> 'interrupted'"  # runs the probe stopped itself: listed, never judged


def _edge(moment: dt.datetime, up: bool) -> dt.datetime:
    s = (moment - _EPOCH).total_seconds()
    b = (math.ceil(s / BUCKET_S) if up else math.floor(s / BUCKET_S)) * BUCKET_S
    return _EPOCH + dt.timedelta(seconds=b)


def _minus(lo: dt.datetime, hi: dt.datetime, cut: Sequence[tuple[dt.datetime, dt.datetime]]
           ) -> list[tuple[dt.datetime, dt.datetime]]:
    out, at = [], lo
    for a, b in sorted(cut):
        if a > at:
            out.append((at, min(a, hi)))
        at = max(at, b)
        if at >= hi:
            break
    if at < hi:
        out.append((at, hi))
    return [(a, b) for a, b in out if a < b]


@dataclass
class Question:
    """One window's rows (use :func:`ask`). Figures run on ``store``'s connection."""

    store: Store
    runs: RunFilter
    defs: Definitions
    exact: bool = False
    _sources: dict[tuple[str, int], tuple[str, list[Any]]] = field(default_factory=dict)
    _covered: list[tuple[dt.datetime, dt.datetime]] | None = None
    _planned: tuple[list[tuple[dt.datetime, dt.datetime]], preagg.Coverage | None] | None = None
    # What one figure's query also answered, so a page asking again asks no query: the window's
    # "simulated" (simulated runs, runs) judged and its "sites".
    _known: dict[str, Any] = field(default_factory=dict)

    def _plan(self) -> tuple[list[tuple[dt.datetime, dt.datetime]], preagg.Coverage | None]:
        start, end = self.runs.start or _EPOCH, self.runs.end or _FAR
        if self.exact or self.runs.start is None or self.runs.end is None:
            return [], None
        coverage = preagg.coverage(self.store.path, self.defs)
        lo, hi = _edge(start, up=True), _edge(end, up=False)
        covered: list[tuple[dt.datetime, dt.datetime]] = []
        for a, b in coverage.ranges:
            a_, b_ = max(_EPOCH + dt.timedelta(seconds=a), lo), min(_EPOCH + dt.timedelta(seconds=b), hi)
            if a_ >= b_:
                continue
            if covered and covered[-1][1] == a_:  # one condition for adjacent ranges
                covered[-1] = (covered[-1][0], b_)
            else:
                covered.append((a_, b_))
        return covered, coverage

    def quantiles(self, source: str, keys: Sequence[str], qs: dict[str, float], where: str = "TRUE") -> str:
        """:func:`_quantiles` of ``source``, weighted when some rows were pre-aggregated."""
        self._ensure_plan()
        return _quantiles(source, keys, qs, where, weighted=bool(self._covered))

    @property
    def relative_error(self) -> float:
        """The bound on this question's percentiles (0 when every row was read exactly)."""
        self._ensure_plan()
        return RELATIVE_ERROR if self._covered else 0.0

    def _ensure_plan(self) -> tuple[list[tuple[dt.datetime, dt.datetime]], preagg.Coverage | None]:
        if self._planned is None:
            self._planned = self._plan()
            self._covered = self._planned[0]
        return self._planned

    def _source(self, kind: str, level_s: int = BUCKET_S) -> tuple[str, list[Any]]:
        """The rows of ``kind``: pre-aggregated ones at levels up to ``level_s`` (the coarsest the
        figure may read, :func:`level_for`) where built, exact ones elsewhere."""
        if (kind, level_s) not in self._sources:
            covered, coverage = self._ensure_plan()
            start, end = self.runs.start or _EPOCH, self.runs.end or _FAR
            columns = ", ".join(RUN_COLUMNS if kind == "runs" else STEP_COLUMNS)
            exact = exact_runs if kind == "runs" else exact_steps
            rest = _minus(start, end, covered)
            if coverage is not None and coverage.data is not None:  # only where some segment has spans
                rest = _within(rest, coverage.data)
            arms, arm_params = [], []
            pieces = _pieces(coverage, kind, covered, level_s) if coverage is not None else {}
            for level in sorted(pieces, reverse=True):  # one arm per level: its files, its times
                files, times = pieces[level]
                when = " OR ".join("(moment >= ? AND moment < ?)" for _ in times)
                arms.append(f"SELECT {columns} FROM {d.read_files(files)} WHERE {when}")
                arm_params += [b for c in times for b in c]
            if rest or not arms:  # the store's views only where rows are read exactly
                sql, params = exact(self.defs, rest)
                arms.insert(0, f"SELECT {columns} FROM ({sql})")
                arm_params = [*params, *arm_params]
            where, where_params = ["TRUE"], []
            if self.runs.workflows is not None:
                where.append(d.in_list("?", "workflow"))
                where_params.append(list(self.runs.workflows))
            if self.runs.sites is not None:
                where.append(d.in_list("?", "site"))
                where_params.append(list(self.runs.sites))
            union = " UNION ALL ".join(arms)
            self._sources[(kind, level_s)] = (f"SELECT * FROM ({union}) WHERE {' AND '.join(where)}",
                                              [*arm_params, *where_params])
        return self._sources[(kind, level_s)]

    def sql(self, query: str, params: Sequence[Any] = (), *, runs: bool = True, steps: bool = False,
            level_s: int = BUCKET_S) -> pd.DataFrame:
        """``query`` with the sources as ``runs_src`` and ``steps_src`` (CTEs placed first), read
        at levels up to ``level_s`` (what the query does with ``moment`` decides it:
        :func:`level_for`; the 15-minute rows unless said)."""
        for attempt in range(2):
            ctes, cte_params = [], []
            for name, wanted in (("runs", runs), ("steps", steps)):
                if wanted:
                    sql, p = self._source(name, level_s)
                    ctes.append(f"{name}_src AS ({sql})")
                    cte_params += p
            try:
                return self.store.sql(f"WITH {', '.join(ctes)} {query}", [*cte_params, *params],
                                      tables={THRESHOLDS: self.defs.table()})
            except StoreError:
                if attempt:
                    raise
                self._sources.clear()  # a pre-aggregate file was merged meanwhile: plan again
                self._planned = None
        raise AssertionError("unreachable")


def _within(intervals: list[tuple[dt.datetime, dt.datetime]], ranges: Sequence[tuple[int, int]]
            ) -> list[tuple[dt.datetime, dt.datetime]]:
    """``intervals`` cut to ``ranges`` (epoch seconds, sorted and disjoint)."""
    out = []
    for a, b in intervals:
        for lo, hi in ranges:
            lo_t, hi_t = max(a, _EPOCH + dt.timedelta(seconds=lo)), min(b, _EPOCH + dt.timedelta(seconds=hi))
            if lo_t < hi_t:
                out.append((lo_t, hi_t))
    return out


def _split(a: int, b: int, levels: Sequence[int]) -> list[tuple[int, int, int]]:
    """``[a, b)`` (on the 15-minute grid) as ``(level, lo, hi)`` pieces: the coarsest of
    ``levels`` (descending) where it fits whole, the next finer one at its edges."""
    if a >= b:
        return []
    level, finer = levels[0], levels[1:]
    lo, hi = -(-a // level) * level, b // level * level
    if not finer:
        return [(level, a, b)]
    if lo >= hi:
        return _split(a, b, finer)
    return [*_split(a, lo, finer), (level, lo, hi), *_split(hi, b, finer)]


def _pieces(coverage: preagg.Coverage, kind: str, covered: list[tuple[dt.datetime, dt.datetime]],
            level_s: int) -> dict[int, tuple[list[str], list[tuple[dt.datetime, dt.datetime]]]]:
    """Per level (up to ``level_s``): the files of ``kind`` to read and the times to read from
    them, so that each covered instant is read at exactly one level."""
    out: dict[int, tuple[list[str], list[tuple[dt.datetime, dt.datetime]]]] = {}
    spans = [(int((a - _EPOCH).total_seconds()), int((b - _EPOCH).total_seconds())) for a, b in covered]
    for built in coverage.built:
        levels = [lv for lv in LEVELS_S[::-1] if lv <= level_s and (kind, lv) in built.files]
        if (kind, BUCKET_S) not in built.files:
            continue  # no rows of this kind in the range
        for a, b in spans:
            for level, lo, hi in _split(max(a, built.lo), min(b, built.hi), levels):
                files, times = out.setdefault(level, ([], []))
                if built.files[(kind, level)] not in files:
                    files.append(built.files[(kind, level)])
                lo_t, hi_t = _EPOCH + dt.timedelta(seconds=lo), _EPOCH + dt.timedelta(seconds=hi)
                if times and times[-1][1] == lo_t:  # one condition for adjacent times
                    times[-1] = (times[-1][0], hi_t)
                else:
                    times.append((lo_t, hi_t))
    return out


def ask(store: Store, runs: RunFilter, defs: Definitions, *, exact: bool = False) -> Question:
    """The question of ``runs``' window, workflows and sites (see the module's docstring)."""
    return Question(store, runs, defs, exact)


# -- Which level of the pre-aggregate may answer a figure (the one rule) ----------------------------

def level_for(q: Question, *, bucket_s: int | None = None, zones: Sequence[str] = (),
              periods: Sequence[tuple[dt.time, dt.time]] = ()) -> int:
    """The coarsest level (:data:`~analysis.query.sources.LEVELS_S`) whose rows a figure may read.

    A row of level L stands for runs anywhere in ``[moment, moment + L)`` and the figure sees only
    ``moment``: it may read the row when all it does with time gives every instant of that span
    the same answer. So:

    - a figure that uses no time reads day rows;
    - UTC buckets of ``bucket_s`` (a timeline) read the coarsest level that divides ``bucket_s``;
    - local time in ``zones`` (hours of the day, weekdays) reads hour rows when every zone's UTC
      offset is a whole number of hours over the question's window and changes only on a UTC
      hour (every zone in use but India's, Nepal's, parts of Australia's ...), otherwise 15-minute
      rows, which hold in every zone whose offsets are whole quarter hours;
    - clinical ``periods`` (local ``(start, end)`` times, at sites in ``zones``) read hour rows when
      each starts and ends on the hour in such zones, so an hour is wholly in or out of a period;
      otherwise 15-minute rows (a period off the quarter hour is asked of an exact question).

    Day rows never answer a local-time question: a UTC day is a local day only at offset 0.
    """
    level = DAY_S
    if bucket_s is not None:
        level = max(lv for lv in LEVELS_S if bucket_s % lv == 0) if bucket_s % BUCKET_S == 0 else BUCKET_S
    if zones or periods:
        start, end = q.runs.start, q.runs.end
        hourly = (start is not None and end is not None
                  and all(_on_the_hour(z, start, end) for z in zones)
                  and all(t.minute == 0 and t.second == 0 and t.microsecond == 0 for p in periods for t in p))
        level = min(level, HOUR_S if hourly else BUCKET_S)
    return level


@functools.lru_cache(maxsize=1024)
def _on_the_hour(zone: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether ``zone``'s UTC offset is a whole number of hours throughout ``[start, end)`` and
    changes (daylight saving) only at a whole UTC hour. Checked day by day; a day whose offset
    differs at its two ends is searched for its change to the second."""
    tz = ZoneInfo(zone)

    def offset(at: dt.datetime) -> dt.timedelta:
        return at.astimezone(tz).utcoffset() or dt.timedelta(0)

    hour = dt.timedelta(hours=1)
    at, before = start, offset(start)
    if before % hour:
        return False
    while at < end:
        step = min(at + dt.timedelta(days=1), end)
        after = offset(step)
        if after != before:
            if after % hour:
                return False
            # offset(lo) == before != offset(hi): the change is at a second in (lo, hi]
            lo, hi = math.floor(at.timestamp()), math.ceil(step.timestamp())
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(_EPOCH + dt.timedelta(seconds=mid)) == before else (lo, mid)
            if hi % 3600:
                return False
        at, before = step, after
    return True


# -- Percentiles over weighted values ---------------------------------------------------------------

def _quantiles(source: str, keys: Sequence[str], qs: dict[str, float], where: str = "TRUE",
               weighted: bool = True) -> str:
    """A query of ``keys`` and each quantile of ``qs`` (name -> q) of ``value_s`` over the rows of
    ``source`` where ``where``, each row counting ``n`` times: ``quantile_cont``'s definition.

    Without ``weighted`` (every row is one sample: an exact question), ``quantile_cont`` itself,
    to the last bit (the weighted form may differ from it in the last place: the engine's
    interpolation may fuse its multiply and add)."""
    k = ", ".join(keys)
    if not weighted:
        group = f" GROUP BY {k}" if keys else ""
        cols = ", ".join(f"{d.exact_quantile('value_s', q)} AS {name}" for name, q in qs.items())
        return f"SELECT {k + ', ' if keys else ''}{cols} FROM {source} WHERE ({where}) AND value_s IS NOT NULL{group}"
    lead = f"{k}, " if keys else ""
    part = f"PARTITION BY {k}" if keys else ""
    # The rank in double precision, as quantile_cont computes it ((n - 1) q; a literal would be a DECIMAL).
    rank = {name: f"(CAST(total - 1 AS DOUBLE) * CAST({q!r} AS DOUBLE))" for name, q in qs.items()}
    bounds = ", ".join(
        f"min(value_s) FILTER (WHERE cum > floor({rank[name]})) AS {name}_lo, "
        f"min(value_s) FILTER (WHERE cum > ceil({rank[name]})) AS {name}_hi" for name in qs)
    values = ", ".join(
        f"{name}_lo + ({name}_hi - {name}_lo) * ({rank[name]} - floor({rank[name]})) AS {name}" for name in qs)
    group = f"GROUP BY {k}" if keys else ""
    return f"""
        SELECT {lead}{values} FROM (
            SELECT {lead}max(total) AS total, {bounds} FROM (
                SELECT *, sum(w) OVER ({part} ORDER BY value_s ROWS UNBOUNDED PRECEDING) AS cum,
                       sum(w) OVER ({part}) AS total
                FROM (SELECT {lead}value_s, sum(n) AS w FROM {source}
                      WHERE ({where}) AND value_s IS NOT NULL GROUP BY {lead}value_s)
            ) {group}
        )"""


def _join_on(keys: Sequence[str]) -> str:
    return " AND ".join(f"c.{k} IS NOT DISTINCT FROM q.{k}" for k in keys) or "TRUE"


def _with_quantiles(q: Question, counts: str, keys: Sequence[str], qs: dict[str, float], where: str) -> str:
    """``counts`` (a query grouped by ``keys``) joined with the quantiles of ok runs."""
    names = ", ".join(f"q.{n}" for n in qs)
    return f"""
        SELECT c.*, {names} FROM ({counts}) AS c
        LEFT JOIN ({q.quantiles('runs_src', keys, qs, where)}) AS q ON {_join_on(keys)}"""


_COUNTS = f"""CAST(sum(n) FILTER (WHERE {_JUDGED}) AS BIGINT) AS samples,
    CAST(coalesce(sum(n) FILTER (WHERE status = 'ok'), 0) AS BIGINT) AS ok,
    CAST(coalesce(sum(n) FILTER (WHERE zone = 0 AND {_JUDGED}), 0) AS BIGINT) AS satisfied,
    CAST(coalesce(sum(n) FILTER (WHERE zone = 1 AND {_JUDGED}), 0) AS BIGINT) AS tolerating,
    CAST(coalesce(sum(n) FILTER (WHERE simulated AND {_JUDGED}), 0) AS BIGINT) AS simulated"""


def _learn(q: Question, counts: pd.DataFrame) -> None:
    """Keep what ``_COUNTS`` of the whole window (grouped any way) also say: :func:`simulated_share`."""
    q._known["simulated"] = (int(counts["simulated"].fillna(0).sum()), int(counts["samples"].fillna(0).sum()))


def _apdex(row: Any, t: float) -> Apdex:
    samples, satisfied, tolerating = int(row.samples), int(row.satisfied), int(row.tolerating)
    return Apdex(score=(satisfied + tolerating / 2) / samples, t_s=float(t), samples=samples, satisfied=satisfied,
                 tolerating=tolerating, frustrated=samples - satisfied - tolerating,
                 failed=samples - int(row.ok))


# -- The figures ----------------------------------------------------------------------------------

def board(q: Question) -> pd.DataFrame:
    """Per workflow x site, judged against each workflow's T (also its Apdex T): ``workflow, site,
    threshold_s, samples, not_ok, share_under`` (ok and within T), ``p50_s, p90_s`` (ok runs'
    waiting time), ``apdex`` (an :class:`Apdex`; failed runs frustrated), ``p_relative_error``."""
    frame = q.sql(_with_quantiles(
        q, f"SELECT workflow, site, {_COUNTS} FROM runs_src WHERE {_JUDGED} GROUP BY workflow, site",
        ["workflow", "site"], {"p50_s": 0.5, "p90_s": 0.9}, "status = 'ok'") + " ORDER BY workflow, site",
        level_s=level_for(q))
    columns = ["workflow", "site", "threshold_s", "samples", "not_ok", "share_under", "p50_s", "p90_s", "apdex",
               "p_relative_error"]
    _learn(q, frame)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["threshold_s"] = [q.defs.threshold(w) for w in frame["workflow"]]
    frame["not_ok"] = frame["samples"] - frame["ok"]
    frame["share_under"] = frame["satisfied"] / frame["samples"]
    frame["apdex"] = [_apdex(row, t) for row, t in zip(frame.itertuples(), frame["threshold_s"], strict=True)]
    frame["p_relative_error"] = q.relative_error
    return frame[columns]


def sites(q: Question) -> pd.DataFrame:
    """Per site: ``site, samples, not_ok, share_under`` (each run within its own workflow's T),
    ``p50_s, p90_s`` (ok runs), ``p_relative_error``."""
    frame = q.sql(_with_quantiles(q, f"SELECT site, {_COUNTS} FROM runs_src WHERE {_JUDGED} GROUP BY site",
                                  ["site"], {"p50_s": 0.5, "p90_s": 0.9}, "status = 'ok'") + " ORDER BY site",
                  level_s=level_for(q))
    _learn(q, frame)
    frame["not_ok"] = frame["samples"] - frame["ok"]
    frame["share_under"] = frame["satisfied"] / frame["samples"]
    frame["p_relative_error"] = q.relative_error
    return frame[["site", "samples", "not_ok", "share_under", "p50_s", "p90_s", "p_relative_error"]]


def time_of_day(q: Question, *, timezone: str) -> pd.DataFrame:
    """Runs by local weekday (0 = Monday) and hour in ``timezone``: ``weekday, hour, samples,
    share_under`` (ok and within the workflow's T), ``p90_s`` (ok runs), ``p_relative_error``.

    Read at hour rows where ``timezone``'s offsets are whole hours, else 15-minute rows
    (:func:`level_for`)."""
    cells = f"{d.weekday_of('local_moment')} AS weekday, {d.hour_of('local_moment')} AS hour"
    body = f"""
        , cells AS (SELECT {cells}, * FROM (SELECT {d.local_time('?', 'moment')} AS local_moment, * FROM runs_src)
                    WHERE {_JUDGED})
        SELECT c.weekday, c.hour, c.samples, c.satisfied / c.samples AS share_under, q.p90_s, c.simulated
        FROM (SELECT weekday, hour, CAST(sum(n) AS BIGINT) AS samples,
                     coalesce(sum(n) FILTER (WHERE zone = 0), 0) AS satisfied,
                     CAST(coalesce(sum(n) FILTER (WHERE simulated), 0) AS BIGINT) AS simulated
              FROM cells GROUP BY ALL) AS c
        LEFT JOIN ({q.quantiles('cells', ['weekday', 'hour'], {'p90_s': 0.9}, "status = 'ok'")}) AS q
            ON c.weekday = q.weekday AND c.hour = q.hour
        ORDER BY c.weekday, c.hour"""
    frame = q.sql(body, [timezone], level_s=level_for(q, zones=[timezone]))
    _learn(q, frame)
    frame = frame.drop(columns=["simulated"])
    frame["p_relative_error"] = q.relative_error
    return frame.astype({"weekday": "int64", "hour": "int64", "samples": "int64"})


def timeline(q: Question, *, bucket_s: int) -> pd.DataFrame:
    """Ok runs' ``bucket, samples, p50_s, p90_s`` per UTC bucket of ``bucket_s`` seconds (a
    multiple of 15 minutes, buckets counted from 1970-01-01 00:00 UTC)."""
    if bucket_s % BUCKET_S:
        raise ValueError("timeline buckets are whole multiples of 15 minutes")
    body = f"""
        , slots AS (SELECT {d.bucket_start('moment', bucket_s)} AS bucket, * FROM runs_src WHERE status = 'ok')
        SELECT c.bucket, c.samples, q.p50_s, q.p90_s
        FROM (SELECT bucket, CAST(sum(n) AS BIGINT) AS samples FROM slots GROUP BY bucket) AS c
        JOIN ({q.quantiles('slots', ['bucket'], {'p50_s': 0.5, 'p90_s': 0.9})}) AS q ON c.bucket = q.bucket
        ORDER BY c.bucket"""
    frame = q.sql(body, level_s=level_for(q, bucket_s=bucket_s))
    frame["p_relative_error"] = q.relative_error
    return frame


def steps(q: Question) -> pd.DataFrame:
    """Per step: ``step, step_index, samples, median_s, p90_s, mean_s`` and ``excess_share``, each
    step chosen by its own start, workflow and site.

    ``excess_share`` answers "which step made runs slow": over the steps of runs that waited
    longer than their workflow's T, each step's time above its own median, as a share of that
    excess summed over steps (None when no run exceeded T)."""
    body = f"""
        , med AS ({q.quantiles('steps_src', ['step'], {'median_s': 0.5, 'p90_s': 0.9})}),
        c AS (SELECT step, min(step_index) AS step_index, CAST(sum(n) AS BIGINT) AS samples, sum(sum_s) AS sum_s
              FROM steps_src GROUP BY step),
        ex AS (SELECT s.step, sum(s.n * greatest(s.value_s - m.median_s, 0)) AS excess_s
               FROM steps_src AS s JOIN med AS m ON s.step IS NOT DISTINCT FROM m.step WHERE s.slow GROUP BY s.step)
        SELECT c.step, c.step_index, c.samples, m.median_s, m.p90_s, c.sum_s / c.samples AS mean_s, ex.excess_s
        FROM c LEFT JOIN med AS m ON c.step IS NOT DISTINCT FROM m.step
        LEFT JOIN ex ON c.step IS NOT DISTINCT FROM ex.step
        ORDER BY c.step_index, c.step"""
    frame = q.sql(body, runs=False, steps=True, level_s=level_for(q))
    total = frame["excess_s"].sum(min_count=1)
    if pd.isna(total) or total <= 0:
        frame["excess_share"] = None
    else:
        frame["excess_share"] = frame["excess_s"].fillna(0.0) / total
    frame["p_relative_error"] = q.relative_error
    return frame.drop(columns=["excess_s"])


def _phase_sums(q: Question, keys: Sequence[str]) -> pd.DataFrame:
    k = ", ".join(keys)
    sums = ", ".join(f"sum({p}_sum) AS {p}_sum" for p in PHASES)
    return q.sql(f"SELECT {k}, CAST(sum(phase_n) AS BIGINT) AS phase_n, {sums} FROM steps_src "
                 f"GROUP BY {k} HAVING sum(phase_n) > 0 ORDER BY {k}", runs=False, steps=True, level_s=level_for(q))


def phases(q: Question) -> pd.DataFrame:
    """Mean request phases per site over steps with a time to first byte (s): ``site, samples``
    and one column per phase; a phase that did not occur (a reused connection) counts as 0 s."""
    sums = _phase_sums(q, ["site"])
    out = pd.DataFrame({"site": sums["site"], "samples": sums["phase_n"]})
    for p in PHASES:
        out[p] = sums[f"{p}_sum"] / sums["phase_n"]
    return out.reset_index(drop=True)


def site_phases(q: Question) -> pd.DataFrame:
    """Request phases per site, like for like: each site's mean time per request in each phase over
    the steps (workflow x step) that other sites make too, and how much more (or less) it spends per
    request than the other sites on those same steps (weighted by its own requests per step).

    A constant extra on every request, whichever the step, is the site's link: a slow WAN adds its
    round trips to connect and TLS on new connections and to the first byte of every request.

    Returns: ``site, samples`` (its requests on shared steps), ``<phase>`` (mean per request) and
    ``<phase>_extra`` (against the other sites) for each phase, and ``extra_s`` (their sum).
    """
    sums = _phase_sums(q, ["site", "workflow", "step"])
    extras = [f"{p}_extra" for p in PHASES]
    columns = ["site", "samples", *PHASES, *extras, "extra_s"]
    rows = []
    sum_columns = ["phase_n", *(f"{p}_sum" for p in PHASES)]
    for site in sorted(sums["site"].unique()):
        mine = sums[sums["site"] == site].set_index(["workflow", "step"])
        others = sums[sums["site"] != site].groupby(["workflow", "step"])[sum_columns].sum()
        shared = mine.index.intersection(others.index)
        if shared.empty:
            continue
        mine, others = mine.loc[shared], others.loc[shared]
        n = mine["phase_n"].to_numpy(dtype=float)
        row: dict[str, object] = {"site": site, "samples": int(n.sum())}
        for p in PHASES:
            own_mean = mine[f"{p}_sum"].to_numpy(dtype=float) / n
            other_mean = others[f"{p}_sum"].to_numpy(dtype=float) / others["phase_n"].to_numpy(dtype=float)
            row[p] = float((own_mean * n).sum() / n.sum())
            row[f"{p}_extra"] = float(((own_mean - other_mean) * n).sum() / n.sum())
        row["extra_s"] = sum(row[e] for e in extras)  # type: ignore[misc]
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def simulated_share(q: Question) -> tuple[int, int]:
    """``(simulated runs, runs)`` judged in the window (known already when another figure of the
    question counted the whole window)."""
    if "simulated" in q._known:
        return q._known["simulated"]
    frame = q.sql(f"SELECT CAST(coalesce(sum(n) FILTER (WHERE simulated), 0) AS BIGINT) AS simulated, "
                  f"CAST(coalesce(sum(n), 0) AS BIGINT) AS runs FROM runs_src WHERE {_JUDGED}", level_s=level_for(q))
    return int(frame["simulated"].iloc[0]), int(frame["runs"].iloc[0])


# -- Clinical periods ----------------------------------------------------------------------------------

def period_aligned(calendar: ClinicalCalendar, period: str) -> bool:
    """Whether a period starts and ends on 15-minute boundaries (so pre-aggregated buckets are
    wholly in or out of it); ask an unaligned one of an exact question."""
    p = calendar.period(period)
    return all(t.second == 0 and t.microsecond == 0 and t.minute % 15 == 0 for t in (p.start, p.end))


def _sites(q: Question) -> list[str]:
    if q.runs.sites is not None:
        return sorted(q.runs.sites)
    if "sites" in q._known:
        return q._known["sites"]
    q._known["sites"] = [s for s in q.sql("SELECT DISTINCT site FROM runs_src WHERE site IS NOT NULL ORDER BY site",
                             level_s=level_for(q))["site"]]
    return q._known["sites"]


def _period_level(q: Question, calendar: ClinicalCalendar, periods: Sequence[str], sites_: Sequence[str]) -> int:
    """:func:`level_for` a condition on ``periods`` at ``sites_``."""
    spans = [(calendar.period(p).start, calendar.period(p).end) for p in periods]
    return level_for(q, zones=sorted({calendar.timezone(s).key for s in sites_}), periods=spans)


def _in_period(q: Question, calendar: ClinicalCalendar, period: str, sites_: Sequence[str]) -> tuple[str, list]:
    """A condition on ``at`` and ``site``: in ``period`` at the row's site."""
    if not period_aligned(calendar, period) and not q.exact:
        raise ValueError(f"the period {period!r} is not on 15-minute boundaries: ask an exact question")
    parts, params = [], []
    for site in sites_:
        condition, p = calendar.sql_condition(period, site, "moment")
        parts.append(f"(site = ? AND {condition})")
        params += [site, *p]
    return ("(" + " OR ".join(parts) + ")" if parts else "FALSE"), params


@dataclass(frozen=True)
class Distribution:
    """Ok runs' waiting time as weighted values, and the exact counts that judge runs against T."""

    values_s: np.ndarray  # ascending
    counts: np.ndarray
    samples: int  # all runs
    ok: int
    satisfied: int  # ok and within T
    tolerating: int  # ok, over T and within 4T
    relative_error: float = RELATIVE_ERROR


def waiting_distribution(q: Question, *, period: str | None = None,
                         calendar: ClinicalCalendar | None = None) -> Distribution:
    """The distribution of ok runs' waiting time (judged against each workflow's T), optionally
    only in a clinical period."""
    where, params, level = "TRUE", [], level_for(q)
    if period is not None:
        if calendar is None:
            raise ValueError("a period needs the clinical calendar")
        sites_ = _sites(q)
        where, params = _in_period(q, calendar, period, sites_)
        level = _period_level(q, calendar, [period], sites_)
    counts = q.sql(f"SELECT {_COUNTS} FROM runs_src WHERE {_JUDGED} AND {where}", params, level_s=level)
    if period is None:
        _learn(q, counts)
    values = q.sql(f"SELECT value_s, CAST(sum(n) AS BIGINT) AS n FROM runs_src WHERE status = 'ok' "
                   f"AND value_s IS NOT NULL AND {where} GROUP BY value_s ORDER BY value_s", params, level_s=level)
    row = counts.iloc[0]
    samples = 0 if pd.isna(row["samples"]) else int(row["samples"])
    return Distribution(values["value_s"].to_numpy(dtype=float), values["n"].to_numpy(dtype=np.int64), samples,
                        int(row["ok"]), int(row["satisfied"]), int(row["tolerating"]), q.relative_error)


def period_split(q: Question, *, calendar: ClinicalCalendar, period: str) -> list[tuple[str, int, float, float]]:
    """For the period and for the rest of the week: ``(label, runs, share within T, p90 of ok runs)``."""
    sites_ = _sites(q)
    where, params = _in_period(q, calendar, period, sites_)
    body = f"""
        , parts AS (SELECT {where} AS inside, * FROM runs_src WHERE {_JUDGED})
        SELECT c.inside, c.samples, c.satisfied, q.p90_s
        FROM (SELECT inside, CAST(sum(n) AS BIGINT) AS samples,
                     CAST(coalesce(sum(n) FILTER (WHERE zone = 0), 0) AS BIGINT) AS satisfied
              FROM parts GROUP BY inside) AS c
        LEFT JOIN ({q.quantiles('parts', ['inside'], {'p90_s': 0.9}, "status = 'ok'")}) AS q ON c.inside = q.inside"""
    frame = q.sql(body, params, level_s=_period_level(q, calendar, [period], sites_))
    out = []
    for inside, label in ((True, "during " + period), (False, "the rest of the week")):
        row = frame[frame["inside"] == inside]
        if row.empty or int(row["samples"].iloc[0]) == 0:
            out.append((label, 0, math.nan, math.nan))
            continue
        n = int(row["samples"].iloc[0])
        p90 = row["p90_s"].iloc[0]
        out.append((label, n, int(row["satisfied"].iloc[0]) / n, math.nan if pd.isna(p90) else float(p90)))
    return out


# A scope where at least this share of runs is frustrated (over 4T, or failed) rates its row: one
# run in ten taking four times T or more is not "Good", whatever the rest of the week does.
FRUSTRATED_SHARE = 0.1
# An hour of the day is judged on its own only with this many runs behind it, and flagged only
# with at least HOUR_MIN_FRUSTRATED frustrated runs (one or two failures are not a pattern).
HOUR_MIN_RUNS = 10
HOUR_MIN_FRUSTRATED = 3


def board_scopes(q: Question, *, calendar: ClinicalCalendar) -> pd.DataFrame:
    """Each workflow at each site judged in parts of the day as well as pooled, so a row is rated by
    its worst part and not by a week that dilutes it.

    Scopes: ``all hours``; each clinical period that applies at the site (those starting and
    ending on 15-minute boundaries); and ``hours``, the site-local hours of the day (over every
    day of the window, each with at least :data:`HOUR_MIN_RUNS` runs) in which at least
    :data:`FRUSTRATED_SHARE` of runs (and :data:`HOUR_MIN_FRUSTRATED`) were frustrated, together
    (labelled ``13:00-17:00``, ranges joined by ", "). Each workflow is judged against its T.

    Returns: ``workflow, site, scope, kind`` (``all``, ``period``, ``hours``), ``samples, not_ok,
    satisfied, tolerating, share_under, frustrated_share, apdex``.
    """
    columns = ["workflow", "site", "scope", "kind", "samples", "not_ok", "satisfied", "tolerating", "share_under",
               "frustrated_share", "apdex"]
    sites_ = _sites(q)
    if not sites_:
        return pd.DataFrame(columns=columns)
    periods = [name for name in calendar.period_names if period_aligned(calendar, name)]
    flags, params = [], []
    for i, name in enumerate(periods):
        condition, p = _in_period(q, calendar, name, sites_)
        flags.append(f"{condition} AS p{i}")
        params += p
    hour_cases = " ".join(f"WHEN site = ? THEN {d.hour_of(d.local_time('?', 'moment'))}" for _ in sites_)
    hour_params = [v for site in sites_ for v in (site, calendar.timezone(site).key)]
    # Counted per moment first, then each moment's local hour and periods: a month's hour rows
    # hold a few hundred thousand histogram values, but only a few thousand (moment, pair).
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in ("samples", "ok", "satisfied", "tolerating", "simulated"))
    cells = q.sql(f"""
        SELECT workflow, site, CASE {hour_cases} END AS hour{''.join(', ' + f for f in flags)}, {sums}
        FROM (SELECT workflow, site, moment, {_COUNTS} FROM runs_src WHERE {_JUDGED} GROUP BY ALL)
        GROUP BY ALL""", [*hour_params, *params],
        level_s=_period_level(q, calendar, periods, sites_))
    _learn(q, cells)
    cells = cells[cells["samples"] > 0]
    rows: list[dict[str, object]] = []

    def judged(part: pd.DataFrame, workflow: str, site: str, scope: str, kind: str) -> dict[str, object] | None:
        samples = int(part["samples"].sum())
        if samples == 0:
            return None
        satisfied, tolerating = int(part["satisfied"].sum()), int(part["tolerating"].sum())
        not_ok = samples - int(part["ok"].sum())
        frustrated = samples - satisfied - tolerating
        return {"workflow": workflow, "site": site, "scope": scope, "kind": kind, "samples": samples,
                "not_ok": not_ok, "satisfied": satisfied, "tolerating": tolerating,
                "share_under": satisfied / samples, "frustrated_share": frustrated / samples,
                "apdex": Apdex(score=(satisfied + tolerating / 2) / samples, t_s=float(q.defs.threshold(workflow)),
                               samples=samples, satisfied=satisfied, tolerating=tolerating, frustrated=frustrated,
                               failed=not_ok)}

    for (workflow, site), pair in cells.groupby(["workflow", "site"], sort=True):
        rows.append(judged(pair, workflow, site, "all hours", "all"))
        for i, name in enumerate(periods):
            part = pair[pair[f"p{i}"].fillna(False).astype(bool)]
            if not part.empty:
                rows.append(judged(part, workflow, site, name, "period"))
        hours = pair.groupby("hour", sort=True)[["samples", "satisfied", "tolerating"]].sum()
        frustrated = hours["samples"] - hours["satisfied"] - hours["tolerating"]
        slow = ((hours["samples"] >= HOUR_MIN_RUNS) & (frustrated >= HOUR_MIN_FRUSTRATED)
                & (frustrated >= FRUSTRATED_SHARE * hours["samples"]))
        slow_hours = [int(hour) for hour in hours.index[slow.to_numpy()]]
        if slow_hours:
            rows.append(judged(pair[pair["hour"].isin(slow_hours)], workflow, site, hour_ranges(slow_hours), "hours"))
    return pd.DataFrame([r for r in rows if r is not None], columns=columns)
