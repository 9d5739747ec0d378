"""Rows, not aggregates: the runs a page lists, their steps, missed slots, a status's recent runs.

Read exactly from the store's views; a window's bounds let DuckDB skip the row groups of other
times (segments are sorted by start). A month's slowest runs come from the kept lists of its
closed days (:func:`slowest`). The status's baseline is a figure and comes from
:mod:`analysis.query.figures`' sources.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from analysis.query import dialect as d
from analysis.query import preagg, sources
from analysis.query.figures import FRUSTRATED_SHARE, _minus, _within, ask, level_for
from analysis.query.sources import (DAY_S, HOUR_S, MISSED_LIST, RUN_LIST, SLOWEST_ORDER, STEP_LIST, TOP_RANKS, Definitions,
                                    listed_steps, missed_slot_spans)
from analysis.status import RECENT_RUNS_QUERY, StatusRules, against_thresholds, judge_status
from analysis.store import RunFilter, Store
from analysis.query.slices import Slice
from store import StoreError, schema

__all__ = ["RUN_LIST", "chart_steps", "current_status", "missed_slots", "newest_measured", "slowest"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MEASURED = "NOT coalesce(simulated, false) AND site IS NOT NULL"  # as the sources judge "simulated"


def slowest(store: Store, runs: RunFilter, *, limit: int = 200, status: str | None = None,
            newest_first: bool = False, defs: Definitions | None = None) -> pd.DataFrame:
    """The slowest runs first (or the newest): ``trace_id, start, workflow, site, status,
    error_type, waiting_s, wall_s, simulated``.

    With ``defs`` (the pre-aggregates' definitions), the slowest of the closed days the window
    holds whole come from their kept lists (``sources.kept_slowest``), those of the whole hours
    of a closed day it holds in part from the day's lists of each hour's slowest, the rest of
    the window (less than an hour at each edge, a day not closed or stale) from the runs: the same runs as a scan of every run, in the same order, when ``limit`` is at
    most :data:`~analysis.query.sources.TOP_RUNS` (otherwise, newest first, or by status, a scan)."""
    where, params = runs.where()
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    order = "start DESC, trace_id" if newest_first else SLOWEST_ORDER
    columns = ", ".join(RUN_LIST)
    coverage = preagg.coverage(store.path, defs) if defs is not None else None
    kept = not newest_first and status is None and limit <= sources.TOP_RUNS
    days = _kept_days(runs, coverage) if kept else []
    hours = _kept_hours(runs, coverage, days) if kept else []
    if coverage is None or not (days or hours):
        return store.sql(f"SELECT {columns} FROM runs WHERE {where} ORDER BY {order} LIMIT ?", [*params, int(limit)])
    rank = TOP_RANKS[(runs.workflows is not None, runs.sites is not None)]
    filter_sql, filters = RunFilter(None, None, runs.workflows, runs.sites).where()
    arms, arm_params = [], []
    if days:
        arms.append(f"SELECT {columns} FROM {d.read_files([f for _, _, f in days])} WHERE {rank} <= ? AND {filter_sql}")
        arm_params += [int(limit), *filters]
    if hours:  # whole hours of a day the window holds in part: the slowest of each hour
        when = " OR ".join("(start >= ? AND start < ?)" for _ in hours)
        arms.append(f"SELECT {columns} FROM {d.read_files(sorted({f for _, _, f in hours}))} "
                    f"WHERE ({when}) AND {rank} <= ? AND {filter_sql}")
        arm_params += [*(t for lo, hi, _ in hours for t in (lo, hi)), int(limit), *filters]
    assert runs.start is not None and runs.end is not None
    rest = _minus(runs.start, runs.end, [(lo, hi) for lo, hi, _ in [*days, *hours]])
    for lo, hi in rest if coverage.data is None else _within(rest, coverage.data):  # where spans are
        arms.append(f"SELECT {columns} FROM runs WHERE start >= ? AND start < ? AND {filter_sql}")
        arm_params += [lo, hi, *filters]
    union = " UNION ALL ".join(f"({arm})" for arm in arms)
    return store.sql(f"SELECT * FROM ({union}) ORDER BY {order} LIMIT ?", [*arm_params, int(limit)])


def _kept_days(runs: RunFilter, coverage: preagg.Coverage | None) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """The closed days wholly inside ``runs``' window with a kept list of slowest runs."""
    if coverage is None or runs.start is None or runs.end is None:
        return []
    out = []
    for built in coverage.built:
        lo, hi = (dt.datetime.fromtimestamp(x, dt.UTC) for x in (built.lo, built.hi))
        if (preagg.TOP, DAY_S) in built.files and runs.start <= lo and hi <= runs.end:
            out.append((lo, hi, built.files[(preagg.TOP, DAY_S)]))
    return out


def _kept_hours(runs: RunFilter, coverage: preagg.Coverage | None, days: list[tuple[dt.datetime, dt.datetime, str]]
                ) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """The whole hours of the window in closed days it holds only in part, with their day's
    slowest of each hour: ``(lo, hi, file)``."""
    if coverage is None or runs.start is None or runs.end is None:
        return []
    whole = {lo for lo, _, _ in days}
    out = []
    for built in coverage.built:
        lo, hi = (dt.datetime.fromtimestamp(x, dt.UTC) for x in (built.lo, built.hi))
        if (preagg.TOP_HOURS, DAY_S) not in built.files or lo in whole:
            continue
        # (an open day's range may end inside an hour: its ranks there are not the hour's)
        a, b = max(_hour(lo, up=True), _hour(runs.start, up=True)), min(_hour(hi, up=False), _hour(runs.end, up=False))
        if a < b:
            out.append((a, b, built.files[(preagg.TOP_HOURS, DAY_S)]))
    return out


def _hour(moment: dt.datetime, *, up: bool) -> dt.datetime:
    seconds = (moment - _EPOCH).total_seconds()
    whole = (-(-seconds // HOUR_S) if up else seconds // HOUR_S) * HOUR_S
    return _EPOCH + dt.timedelta(seconds=whole)


def chart_steps(store: Store, listed: pd.DataFrame, defs: Definitions | None = None) -> pd.DataFrame:
    """The steps of the listed runs (``trace_id, start, site, step, step_index, duration_s``,
    and ``workflow``, the listed run's).

    With ``defs``, the steps of runs in a closed day's kept list come from the day's kept steps;
    the others' from the step spans of the days they touch (``sources.listed_steps``): a month's
    slowest runs lie on any of its days, and reading all the steps between the first and the last
    of them cost most of the runs page at 10M spans."""
    columns = list(STEP_LIST)
    if listed.empty:
        return pd.DataFrame(columns=[*columns, "workflow"])
    starts = pd.to_datetime(listed["start"], utc=True)
    ends = starts + pd.to_timedelta(listed["wall_s"].astype(float).fillna(0.0), unit="s")
    traces = list(listed["trace_id"])
    parts = []
    coverage = preagg.coverage(store.path, defs) if defs is not None else None
    if coverage is not None:
        moments = [t.timestamp() for t in starts]
        days = [b for b in coverage.built if (preagg.TOP_STEPS, DAY_S) in b.files
                and any(b.lo <= m < b.hi for m in moments)]
        if days:
            kept = set(store.sql(f"SELECT trace_id FROM {d.read_files([b.files[(preagg.TOP, DAY_S)] for b in days])} "
                                 "WHERE list_contains(?, trace_id)", [traces])["trace_id"])
            if kept:
                parts.append(store.sql(
                    f"SELECT {', '.join(columns)} FROM {d.read_files([b.files[(preagg.TOP_STEPS, DAY_S)] for b in days])} "
                    "WHERE list_contains(?, trace_id)", [sorted(kept)]))
            keep = [t not in kept for t in traces]
            starts, ends, traces = starts[keep], ends[keep], [t for t in traces if t not in kept]
    if traces:
        sql, params = listed_steps(sorted({t.date() for t in starts} | {t.date() for t in ends}),
                                   "list_contains(?, trace_id)")
        parts.append(store.sql(sql, [*params, traces]))
    steps = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    steps = steps.merge(listed[["trace_id", "workflow"]], on="trace_id", how="left")
    return steps.sort_values(["start", "trace_id"], ignore_index=True)


def newest_measured(store: Store, defs: Definitions | None = None) -> dict[str, dt.datetime]:
    """Each site's newest measured (not simulated) run's start: ``SELECT site, max(start) FROM
    runs WHERE NOT simulated GROUP BY site``, without reading every run.

    With ``defs`` (the pre-aggregates' definitions), the time no built range covers is read
    exactly (only where a segment has spans: the buckets not closed yet, stale ones); in the
    built ranges, each site's newest row of measured runs is found in the coarsest rows each
    range has (a day's), then in that range's 15-minute rows, and only that bucket's runs of
    the site are read. Ranges are disjoint, so the newest row's bucket holds the newest run."""
    try:
        return _newest_measured(store, defs)
    except StoreError:  # a pre-aggregate file was merged meanwhile: plan again
        return _newest_measured(store, defs)


def _newest_measured(store: Store, defs: Definitions | None) -> dict[str, dt.datetime]:
    coverage = preagg.coverage(store.path, defs) if defs is not None else None
    if coverage is None or not coverage.built:
        return _newest(store, None)
    assert coverage.data is not None
    gaps = _within(_minus(_EPOCH, dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
                          [(_at(lo), _at(hi)) for lo, hi in coverage.ranges]), coverage.data)
    newest = _newest(store, gaps) if gaps else {}
    by_level: dict[int, list[str]] = {}  # the coarsest rows of each range
    for built in coverage.built:
        level = max((lv for lv in sources.LEVELS_S if ("runs", lv) in built.files), default=None)
        if level is not None:
            by_level.setdefault(level, []).append(built.files[("runs", level)])
    if not by_level:
        return newest
    arms = [f"SELECT site, moment, {level} AS level_s FROM {d.read_files(files)} WHERE {_MEASURED} AND n > 0"
            for level, files in by_level.items()]
    rows = store.sql(f"SELECT site, max(moment) AS moment, arg_max(level_s, moment) AS level_s "
                     f"FROM ({' UNION ALL '.join(arms)}) GROUP BY site")
    # Each site whose newest row is newer than what the exact read found, by its row's range's
    # 15-minute rows and the row's time: (file, lo, hi) -> sites.
    asked: dict[tuple[str, dt.datetime, dt.datetime], list[str]] = {}
    for r in rows.itertuples():
        moment = pd.Timestamp(r.moment).to_pydatetime()
        end = moment + dt.timedelta(seconds=int(r.level_s))
        if r.site in newest and newest[r.site] >= end:
            continue
        built = next(b for b in coverage.built if _at(b.lo) <= moment < _at(b.hi))
        asked.setdefault((built.files[("runs", sources.BUCKET_S)], moment, end), []).append(str(r.site))
    buckets: dict[tuple[dt.datetime, dt.datetime], list[str]] = {}
    for (file, lo, hi), sites_ in asked.items():
        if hi - lo > dt.timedelta(seconds=sources.BUCKET_S):  # a coarser row: its newest 15 minutes
            found = store.sql(f"SELECT site, max(moment) AS moment FROM {d.read_files([file])} WHERE {_MEASURED} "
                              "AND n > 0 AND moment >= ? AND moment < ? AND list_contains(?, site) GROUP BY site",
                              [lo, hi, sites_])
            for f in found.itertuples():
                b = pd.Timestamp(f.moment).to_pydatetime()
                buckets.setdefault((b, b + dt.timedelta(seconds=sources.BUCKET_S)), []).append(str(f.site))
        else:
            buckets.setdefault((lo, hi), []).extend(sites_)
    for (lo, hi), sites_ in buckets.items():
        for site, last in _newest(store, [(lo, hi)], sites_).items():
            newest[site] = max(last, newest.get(site, last))
    return newest


def _at(seconds: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(seconds=seconds)


def _newest(store: Store, intervals: list[tuple[dt.datetime, dt.datetime]] | None,
            sites: list[str] | None = None) -> dict[str, dt.datetime]:
    """``max(start)`` of the measured runs per site, of every run (``intervals`` None), or of
    those starting in ``intervals``, read from the segments that may hold them only."""
    if intervals is None:
        frame = store.sql(f"SELECT site, max(start) AS last FROM runs WHERE {_MEASURED} GROUP BY site")
    else:
        s = schema
        when = " OR ".join(f'("{s.TIMESTAMP}" >= ? AND "{s.TIMESTAMP}" < ?)' for _ in intervals)
        where = f""""{s.SPAN_TYPE}" = '{s.SPAN_TYPE_RUN}' AND NOT coalesce("{s.SIMULATED}", false) """ \
                f'AND "{s.SITE}" IS NOT NULL AND ({when})'
        params: list = [t for interval in intervals for t in interval]
        if sites is not None:
            where += f' AND list_contains(?, "{s.SITE}")'
            params.append(sites)
        frame = _in_slice(store, intervals, f'SELECT "{s.SITE}" AS site, max("{s.TIMESTAMP}") AS last FROM spans '
                                            f"WHERE {where} GROUP BY 1", params)
    return {str(r.site): pd.Timestamp(r.last).to_pydatetime() for r in frame.itertuples() if not pd.isna(r.last)}


def _in_slice(store: Store, times: list[tuple[dt.datetime, dt.datetime]], query: str, params: list,
              views: tuple[str, ...] = ()) -> pd.DataFrame:
    """``query`` over the ``spans`` (and ``views``) of the segments that may hold spans starting in
    ``times`` (:class:`~analysis.query.slices.Slice`): a query over the store's views binds every
    segment. Over the store's own views when the slice would hold most of them (binding the
    slice's views and then the query would cost twice)."""
    for attempt in range(2):
        part = Slice(store.path, times, views)
        if 2 * len(part.segments) > len(preagg.live_segments(store.path)):
            return store.sql(query, params)
        try:
            return part.sql(query, params)
        except StoreError:  # a segment was compacted away meanwhile: list them again
            if attempt:
                raise
    raise AssertionError("unreachable")


# A missed slot's span starts at its slot (``collector.probe`` and ``collector.history`` write it
# so); the read below takes the segments and row groups whose spans start in the window widened
# by this margin (the slot alone, a ``coalesce``, cannot be checked against a row group's
# statistics: the view read every span of the store).
MISSED_SLOT_MARGIN = dt.timedelta(hours=1)


def missed_slots(store: Store, runs: RunFilter, defs: Definitions | None = None) -> pd.DataFrame:
    """Missed slots in the window: ``trace_id, slot, workflow, site, reason`` (the
    ``missed_slots`` view's rows whose slot is in the window), by slot.

    With ``defs`` (the pre-aggregates' definitions), the closed days the window (widened by
    :data:`MISSED_SLOT_MARGIN`) touches come from their kept missed slots, and only the rest of
    it (the day not closed yet, a stale one) from the spans: a month's missed slots read the
    store's spans of the open day instead of every span of the month."""
    where, params = runs.where(time_column="slot")
    columns = ", ".join(MISSED_LIST)
    if runs.start is None or runs.end is None:
        return store.sql(f"SELECT {columns} FROM missed_slots WHERE {where} ORDER BY slot, trace_id", params)
    bounds = (runs.start - MISSED_SLOT_MARGIN, runs.end + MISSED_SLOT_MARGIN)
    for attempt in range(2):
        coverage = preagg.coverage(store.path, defs) if defs is not None else None
        days = [] if coverage is None else [
            (_at(b.lo), _at(b.hi), b.files[(preagg.MISSED, DAY_S)]) for b in coverage.built
            if (preagg.MISSED, DAY_S) in b.files and _at(b.lo) < bounds[1] and bounds[0] < _at(b.hi)]
        rest = _minus(*bounds, [(lo, hi) for lo, hi, _ in days])
        if coverage is not None and coverage.data is not None:
            rest = _within(rest, coverage.data)  # where spans are
        parts = []
        kept = [f for _, _, f in days if f]
        try:
            if kept:
                parts.append(store.sql(f"SELECT {columns} FROM {d.read_files(kept)} WHERE {where}", params))
            if rest:
                parts.append(_in_slice(store, rest, f"SELECT {columns} FROM ({missed_slot_spans(len(rest))}) "
                                                    f"WHERE {where}", [*(t for r in rest for t in r), *params]))
            break
        except StoreError:  # a pre-aggregate file was merged meanwhile: plan again
            if attempt:
                raise
    if not parts:  # no spans to read: the columns, over no segment
        return Slice(store.path, []).sql(f"SELECT {columns} FROM ({missed_slot_spans(1)}) WHERE false", [bounds[0], bounds[1]])
    missed = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return missed.sort_values(["slot", "trace_id"], ignore_index=True)


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
    # The recent runs from the segments of the recent window only (the view over every segment
    # cost more than the rest of the status at 100M spans).
    recent = _in_slice(store, [(recent_start, now + dt.timedelta(microseconds=1))], RECENT_RUNS_QUERY,
                       [recent_start, now], views=("runs",))
    status = judge_status(baseline, recent, rules)
    if not thresholds:
        return status
    judged = against_thresholds(recent, dict(defs.thresholds_s), defs.default_threshold_s, FRUSTRATED_SHARE)
    return status.merge(judged, on=["workflow", "site"], how="left")

