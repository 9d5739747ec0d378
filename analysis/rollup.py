"""Pre-aggregated figures per store segment, merged per question, so the dashboard stays fast.

Segments are immutable Parquet files; compaction replaces several by one merged segment that lists
what it replaces, and :func:`store.list_segments` lists only the live ones. So a rollup computed
once per segment never goes stale: :class:`RollupCache` keeps one :class:`SegmentRollup` per live
segment, drops those of segments that left, and merges them into a :class:`Snapshot` per list of
live segments. A span is in exactly one live segment, so nothing is counted twice.

A segment's rollup holds, per 15-minute UTC window (and, summed from those, per hour and per UTC
day) x workflow x site: the runs, ok runs, simulated runs, the ok runs within each configured
threshold, and a log-bucketed histogram of ok runs' waiting time; per window x workflow x site x
step: the steps, the sum of their durations and of their request phases, a histogram of their
durations, and one of the durations of steps whose run waited longer than its workflow's
threshold. Counts, shares and means from it are exact. Percentiles from the histograms are within
:data:`RELATIVE_ERROR` (1%) of the exact ``quantile_cont`` of the pooled samples: every bucket
spans values within 1% of its representative value, and linear interpolation between two order
statistics keeps that bound.

A run's spans may straddle segments (the probe exports in batches). Run figures come from run
spans and step figures from step spans, so each is counted where it lies; a step whose run span is
in another segment is kept as a row ("loose step") and judged at merge time against the runs that
the other segments recorded as incomplete (their steps do not add up to their waiting time).

Windows that a question's bounds cut (bounds not on a 15-minute boundary) are read exactly from
the few segments that overlap them, so every answer covers exactly ``[start, end)``.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from analysis.store import to_pandas
from store import VIEWS, StoreError, check_store, create_views, list_segments

__all__ = [
    "GRID_S",
    "LEVELS_S",
    "RELATIVE_ERROR",
    "WINDOW_S",
    "RollupCache",
    "RollupConfig",
    "SegmentRollup",
    "Snapshot",
    "bucket_of",
    "bucket_value",
    "build_rollup",
    "histogram_quantiles",
]

WINDOW_S = 900  # the finest window: 15 minutes, on which clinical periods are aligned
LEVELS_S = (WINDOW_S, 3600, 86_400)  # 15 minutes, hours and UTC days
# The finest window of each table: runs by 15 minutes (local hours of any zone, clinical periods);
# steps by the hour (their histograms are seven times larger, and no page needs them finer).
GRID_S = {"runs": WINDOW_S, "run_hist": WINDOW_S, "steps": 3600, "step_hist": 3600, "slow_hist": 3600}
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
ZERO_BUCKET = -(2**31)  # values <= 0 s
_NS = 1_000_000_000
_PHASES = ("dns_s", "connect_s", "tls_s", "ttfb_s", "transfer_s")
_RUN_KEYS = ["window", "workflow", "site"]
_STEP_KEYS = ["window", "workflow", "site", "step"]
_RUN_COLUMNS = ["trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s", "simulated"]
_PARTIAL_TOLERANCE_S = 1e-6
_RETRIES = 3


# -- The histogram ---------------------------------------------------------------------------------

def bucket_of(values_s: np.ndarray | pd.Series) -> np.ndarray:
    """The log bucket of each value: ``ceil(log_gamma(v))``, so that bucket ``i`` holds
    ``(gamma^(i-1), gamma^i]``; values <= 0 go to :data:`ZERO_BUCKET`."""
    values = np.asarray(values_s, dtype=float)
    out = np.full(values.shape, ZERO_BUCKET, dtype=np.int64)
    positive = values > 0
    out[positive] = np.ceil(np.log(values[positive]) / _LOG_GAMMA).astype(np.int64)
    return out


def bucket_value(buckets: np.ndarray | pd.Series) -> np.ndarray:
    """The representative value of each bucket, within :data:`RELATIVE_ERROR` of any value in it."""
    b = np.asarray(buckets, dtype=np.int64)
    out = np.zeros(b.shape, dtype=float)
    real = b != ZERO_BUCKET
    out[real] = 2 * np.power(_GAMMA, b[real].astype(float)) / (_GAMMA + 1)
    return out


def histogram_quantiles(buckets: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles of the values a histogram counts, by linear interpolation between order
    statistics (as ``quantile_cont``), each order statistic read as its bucket's value.

    Args:
        buckets: bucket indexes, sorted ascending, unique.
        counts: how many values each bucket holds.
        qs: the quantiles, each in [0, 1].
    """
    n = int(np.sum(counts))
    if n == 0:
        return [math.nan for _ in qs]
    cumulative = np.cumsum(counts)
    values = bucket_value(buckets)
    out = []
    for q in qs:
        rank = q * (n - 1)
        lo, hi = math.floor(rank), math.ceil(rank)
        v_lo = values[np.searchsorted(cumulative, lo + 1)]
        v_hi = values[np.searchsorted(cumulative, hi + 1)]
        out.append(float(v_lo + (rank - lo) * (v_hi - v_lo)))
    return out


# -- What one segment (or an exactly read piece of the store) contributes -------------------------

@dataclass(frozen=True)
class RollupConfig:
    """What the rollup must know in advance.

    Attributes:
        thresholds_s: each workflow's threshold T (its objective's, or the default).
        default_threshold_s: T of a workflow not in ``thresholds_s``.
        top_runs: how many runs the runs page lists (kept per segment, workflow and site).
        chart_runs: how many of them have their steps kept for the step chart.
    """

    thresholds_s: tuple[tuple[str, float], ...] = ()
    default_threshold_s: float = 3.0
    top_runs: int = 200
    chart_runs: int = 30

    @classmethod
    def of(cls, thresholds_s: Mapping[str, float], default_threshold_s: float = 3.0, top_runs: int = 200,
           chart_runs: int = 30) -> RollupConfig:
        return cls(tuple(sorted(thresholds_s.items())), float(default_threshold_s), int(top_runs), int(chart_runs))

    def threshold(self, workflow: object) -> float:
        return dict(self.thresholds_s).get(workflow, self.default_threshold_s)  # type: ignore[arg-type]

    @property
    def levels_s(self) -> tuple[float, ...]:
        """Every threshold whose count of ok runs within it is kept: each T, 4T (Apdex's F)."""
        values = {self.default_threshold_s, 4 * self.default_threshold_s}
        for _, t in self.thresholds_s:
            values |= {t, 4 * t}
        return tuple(sorted(values))


@dataclass
class SegmentRollup:
    """One segment's figures (see the module's docstring). Frames keyed by ``window`` (UTC epoch
    seconds of the window's start) at each level of :data:`LEVELS_S`."""

    runs: dict[int, pd.DataFrame]
    run_hist: dict[int, pd.DataFrame]
    steps: dict[int, pd.DataFrame]
    step_hist: dict[int, pd.DataFrame]
    slow_hist: dict[int, pd.DataFrame]
    loose_steps: pd.DataFrame  # steps whose run span is not in this segment, as rows
    partial_runs: pd.DataFrame  # runs whose steps are not all here: trace_id, workflow, waiting_s
    top_runs: pd.DataFrame  # per workflow x site, the slowest and the newest runs
    top_steps: pd.DataFrame  # the steps of the first ``chart_runs`` of those
    missed: pd.DataFrame  # missed slots, as rows
    first_start: pd.Timestamp | None  # earliest span start in the segment
    last_start: pd.Timestamp | None  # latest span start
    _columns: dict[tuple[str, int], dict[str, np.ndarray] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def columns(self, table: str, level_s: int) -> dict[str, np.ndarray] | None:
        """The frame of ``table`` at ``level_s`` as NumPy columns (views, made once), or None
        when a column has no NumPy dtype. Slicing these is what makes :meth:`Snapshot.select`
        cheap: a month's question takes a slice from each of 30 daily rollups."""
        key = (table, level_s)
        if key not in self._columns:
            frame = getattr(self, table)[level_s]
            numpy_only = all(isinstance(dtype, np.dtype) for dtype in frame.dtypes)
            self._columns[key] = {c: frame[c].to_numpy() for c in frame.columns} if numpy_only else None
        return self._columns[key]


def _thresholds(workflows: pd.Series, config: RollupConfig) -> np.ndarray:
    """Each row's workflow threshold T (the default for a workflow without one)."""
    known = dict(config.thresholds_s)
    return workflows.map(known).astype(float).fillna(config.default_threshold_s).to_numpy()


def _bucket_sql(column: str) -> str:
    """:func:`bucket_of` in SQL."""
    return (f"CASE WHEN {column} > 0 THEN CAST(ceil(ln({column}) / {_LOG_GAMMA!r}) AS BIGINT) "
            f"ELSE {ZERO_BUCKET} END")


# Temporary views over the connection's store views; {where} chooses the runs and steps counted.
_PREPARE = """
CREATE OR REPLACE TEMP TABLE ru AS
    SELECT {columns} FROM runs WHERE {where};
CREATE OR REPLACE TEMP TABLE st_raw AS
    SELECT trace_id, start, workflow, site, step, step_index, duration_s, dns_s, connect_s, tls_s, ttfb_s,
           transfer_s
    FROM steps WHERE {where};
CREATE OR REPLACE TEMP TABLE run_of AS
    SELECT trace_id, any_value(workflow) AS workflow, any_value(waiting_s) AS waiting_s
    FROM runs WHERE trace_id IN (SELECT trace_id FROM st_raw) GROUP BY trace_id;
CREATE OR REPLACE TEMP VIEW thresholds AS
    SELECT * FROM (VALUES {thresholds}) AS t(workflow, threshold_s);
"""


def build_rollup(con: duckdb.DuckDBPyConnection, config: RollupConfig,
                 start: dt.datetime | None = None, end: dt.datetime | None = None) -> SegmentRollup:
    """The rollup of what ``con``'s views hold (one segment, or a few for an exact piece),
    aggregated by DuckDB.

    With ``start``/``end`` (an exact piece, inside one 15-minute window), only runs and steps
    that start in ``[start, end)`` count (the runs that judge those steps are looked up at any
    time), and only the 15-minute level is made.
    """
    piece = start is not None and end is not None
    where = "start >= $start AND start < $end" if piece else "TRUE"
    params = {"start": start, "end": end} if piece else {}
    pairs = list(config.thresholds_s) or [("", config.default_threshold_s)]
    thresholds = ", ".join(f"({_literal(w)}, {float(t)!r})" for w, t in pairs)
    prepare = _PREPARE.format(columns=", ".join(_RUN_COLUMNS), where="{where}",
                              thresholds=thresholds)
    for statement in prepare.split(";"):
        if statement.strip():
            # Views cannot hold parameters: the bounds are inlined as typed literals.
            con.execute(statement.replace("{where}", _inline(where, params)))

    def frame(query: str) -> pd.DataFrame:
        return to_pandas(con.execute(query).to_arrow_table())

    levels = config.levels_s

    def by_level(template: str, grid_s: int = WINDOW_S) -> dict[int, pd.DataFrame]:
        """The query at each level from ``grid_s`` up (only ``grid_s`` for a piece), sorted by
        window; ``{win}`` is the window of the row's start."""
        sizes = [size for size in LEVELS_S if size >= grid_s][: 1 if piece else None]
        return {size: _by_window(frame(template.format(
            win=f'CAST(floor(epoch(start) / {size}) AS BIGINT) * {size} AS "window"'))) for size in sizes}

    under = ", ".join(f"count(*) FILTER (WHERE status = 'ok' AND waiting_s <= {t!r}) AS under_{i}"
                      for i, t in enumerate(levels))
    run_table = by_level(f"""
        SELECT {{win}}, workflow, site, count(*) FILTER (WHERE status <> 'interrupted') AS samples,
               count(*) FILTER (WHERE status = 'ok') AS ok,
               count(*) FILTER (WHERE simulated) AS simulated,
               coalesce(max(epoch_ns(start)) FILTER (WHERE status = 'ok'), {np.iinfo(np.int64).min}) AS last_ok_ns,
               {under}
        FROM ru GROUP BY ALL""")
    run_hist = by_level(f"""
        SELECT {{win}}, workflow, site, {_bucket_sql('waiting_s')} AS bucket, count(*) AS count
        FROM ru WHERE status = 'ok' AND waiting_s IS NOT NULL GROUP BY ALL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE known AS
        SELECT st.*, coalesce(st.workflow, r.workflow) AS wf, r.waiting_s AS run_waiting_s,
               coalesce(t.threshold_s, {config.default_threshold_s!r}) AS limit_s,
               {_bucket_sql('st.duration_s')} AS bucket
        FROM st_raw AS st JOIN run_of AS r USING (trace_id)
        LEFT JOIN thresholds AS t ON t.workflow = coalesce(st.workflow, r.workflow)""")
    phases = ", ".join(f"sum(CASE WHEN ttfb_s IS NOT NULL THEN coalesce({p}, 0) ELSE 0 END) AS {p}_sum"
                       for p in _PHASES)
    step_table = by_level(f"""
        SELECT {{win}}, wf AS workflow, site, step, min(step_index) AS step_index, count(*) AS samples,
               sum(duration_s) AS sum_s, count(*) FILTER (WHERE ttfb_s IS NOT NULL) AS phase_samples, {phases}
        FROM known GROUP BY ALL""", GRID_S["steps"])
    step_hist = by_level("""
        SELECT {win}, wf AS workflow, site, step, bucket, count(*) AS count
        FROM known WHERE duration_s IS NOT NULL GROUP BY ALL""", GRID_S["step_hist"])
    slow_hist = by_level("""
        SELECT {win}, wf AS workflow, site, step, bucket, count(*) AS count
        FROM known WHERE duration_s IS NOT NULL AND run_waiting_s > limit_s GROUP BY ALL""", GRID_S["slow_hist"])
    loose = frame("""
        SELECT trace_id, start, workflow, site, step, step_index, duration_s, dns_s, connect_s, tls_s, ttfb_s,
               transfer_s
        FROM st_raw WHERE trace_id NOT IN (SELECT trace_id FROM run_of)""")
    # Runs whose steps here do not add up to their waiting time: their other steps are loose elsewhere.
    partial_runs = frame(f"""
        SELECT ru.trace_id, ru.workflow, ru.waiting_s FROM ru
        LEFT JOIN (SELECT trace_id, sum(duration_s) AS s FROM st_raw GROUP BY trace_id) AS x USING (trace_id)
        WHERE NOT coalesce(abs(ru.waiting_s - x.s) <= {_PARTIAL_TOLERANCE_S!r}, false)""")
    if piece:
        top = frame(f"SELECT {', '.join(_RUN_COLUMNS)} FROM ru WHERE false")
        top_steps = frame("SELECT trace_id, start, site, step, step_index, duration_s FROM st_raw WHERE false")
        missed = pd.DataFrame(columns=["trace_id", "slot", "workflow", "site", "reason"])
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    else:
        top = frame(_top_sql(config.top_runs, ", ".join(_RUN_COLUMNS)))
        top_steps = frame(f"""
            SELECT trace_id, start, site, step, step_index, duration_s FROM st_raw
            WHERE trace_id IN (SELECT trace_id FROM ({_top_sql(config.chart_runs, 'trace_id')}))""")
        missed = frame("SELECT trace_id, slot, workflow, site, reason FROM missed_slots")
        bounds = frame('SELECT min("Timestamp") AS first, max("Timestamp") AS last FROM spans')
        first, last = bounds["first"].iloc[0], bounds["last"].iloc[0]

    return SegmentRollup(
        runs=run_table,
        run_hist=run_hist,
        steps=step_table,
        step_hist=step_hist,
        slow_hist=slow_hist,
        loose_steps=_plain(loose),
        partial_runs=_plain(partial_runs),
        top_runs=_plain(top),
        top_steps=_plain(top_steps),
        missed=_plain(missed),
        first_start=None if pd.isna(first) else pd.Timestamp(first),
        last_start=None if pd.isna(last) else pd.Timestamp(last),
    )


def _top_sql(k: int, columns: str) -> str:
    """Per workflow x site, the ``k`` slowest runs (as the runs page orders them) and the ``k`` newest."""
    return f"""
        SELECT {columns} FROM ru
        QUALIFY row_number() OVER (PARTITION BY workflow, site ORDER BY waiting_s DESC NULLS LAST, start DESC) <= {int(k)}
             OR row_number() OVER (PARTITION BY workflow, site ORDER BY start DESC) <= {int(k)}"""


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _inline(where: str, params: Mapping[str, Any]) -> str:
    for name, value in params.items():
        stamp = pd.Timestamp(value).tz_convert("UTC").isoformat()
        where = where.replace(f"${name}", f"TIMESTAMPTZ {_literal(stamp)}")
    return where


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """String columns as plain Python strings (cheap to filter and group; the few distinct names
    shared, not one string object per row), integers as int64."""
    for column in frame.columns:
        dtype = frame[column].dtype
        if column in ("workflow", "site", "step", "status", "error_type", "reason"):
            codes, names = pd.factorize(frame[column].to_numpy(dtype=object), use_na_sentinel=True)
            names = np.append(np.asarray(names, dtype=object), None)
            # code -1 (missing) takes the appended None; object dtype, not pandas' inferred "str"
            frame[column] = pd.Series(names[codes], index=frame.index, dtype=object)
        elif column == "trace_id" or (dtype != object and pd.api.types.is_string_dtype(dtype)):
            frame[column] = pd.Series(frame[column].to_numpy(dtype=object), index=frame.index, dtype=object)
        elif isinstance(dtype, pd.ArrowDtype):
            frame[column] = frame[column].to_numpy()
        elif isinstance(dtype, pd.Int64Dtype) and not frame[column].hasnans:
            frame[column] = frame[column].to_numpy(dtype=np.int64)
    return frame


def _mask(columns: Mapping[str, np.ndarray], workflows: Sequence[str] | None,
          sites: Sequence[str] | None) -> np.ndarray | None:
    """Rows whose workflow and site are among those given (None: no filter at all)."""
    keep = None
    for name, wanted in (("workflow", workflows), ("site", sites)):
        if wanted is None:
            continue
        values = columns[name]
        match = np.zeros(len(values), dtype=bool)
        for value in wanted:
            match |= values == value
        keep = match if keep is None else keep & match
    return keep


def _keep(frame: pd.DataFrame, workflows: Sequence[str] | None, sites: Sequence[str] | None) -> pd.DataFrame:
    keep = _mask({c: frame[c].to_numpy() for c in ("workflow", "site")}, workflows, sites)
    return frame if keep is None else frame[keep]


_reader: duckdb.DuckDBPyConnection | None = None
_reader_lock = threading.Lock()


def _connect(segments: Sequence[Path], views: Sequence[str] = VIEWS) -> duckdb.DuckDBPyConnection:
    """A cursor with temporary ``views`` over just ``segments`` (close it after use).

    Cursors of one in-memory database, made on first use: a new database costs about 26 ms, a
    cursor 1 ms, and a question about one run is answered in about 15 ms."""
    global _reader
    with _reader_lock:
        if _reader is None:
            _reader = duckdb.connect(":memory:")
        con = _reader.cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        create_views(con, segments, names=views, temporary=True)
    except BaseException:
        con.close()
        raise
    return con


# -- Many segments merged -----------------------------------------------------------------------

def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


@dataclass
class Snapshot:
    """The live segments' rollups merged: what every dashboard question is answered from.

    Use :meth:`RollupCache.snapshot`. ``select_*`` give the rows covering exactly ``[start, end)``.
    """

    config: RollupConfig
    segments: tuple[Path, ...]  # the live segments
    units: tuple[tuple[Path, ...], ...]  # the segments each rollup covers (one, or a batch of small ones)
    rollups: tuple[SegmentRollup, ...]
    loose_steps: pd.DataFrame = field(init=False)
    partial_runs: pd.DataFrame = field(init=False)
    missed: pd.DataFrame = field(init=False)
    top_runs: pd.DataFrame = field(init=False)  # every unit's kept runs, with its index as ``unit``
    top_steps: pd.DataFrame = field(init=False)
    first_start: pd.Timestamp | None = field(init=False)  # earliest span start in the store
    last_start: pd.Timestamp | None = field(init=False)  # latest

    def __post_init__(self) -> None:
        rollups = self.rollups
        starts = [r.first_start for r in rollups if r.first_start is not None]
        ends = [r.last_start for r in rollups if r.last_start is not None]
        self.first_start = min(starts) if starts else None
        self.last_start = max(ends) if ends else None
        self.partial_runs = _concat(r.partial_runs for r in rollups)
        if not self.partial_runs.empty:
            self.partial_runs = self.partial_runs.drop_duplicates("trace_id")
        self.loose_steps = self.judge_loose(_concat(r.loose_steps for r in rollups))
        self.missed = _concat(r.missed for r in rollups)
        self.top_runs = _concat(r.top_runs.assign(unit=i) for i, r in enumerate(rollups) if not r.top_runs.empty)
        self.top_steps = _concat(r.top_steps for r in rollups)

    def judge_loose(self, loose: pd.DataFrame) -> pd.DataFrame:
        """Loose steps with their run's workflow and whether that run was slower than its T."""
        if loose.empty:
            return loose
        runs = self.partial_runs
        if runs.empty:
            found = loose.assign(run_waiting_s=np.nan)
        else:
            found = loose.merge(runs.rename(columns={"workflow": "run_workflow", "waiting_s": "run_waiting_s"}),
                                on="trace_id", how="left")
            found["workflow"] = found["workflow"].fillna(found["run_workflow"])
            found = found.drop(columns=["run_workflow"])
        found["slow"] = found["run_waiting_s"].astype(float).to_numpy() > _thresholds(found["workflow"], self.config)
        return found

    # -- time ranges ----------------------------------------------------------------------------

    def pieces(self, start: dt.datetime, end: dt.datetime, grid_s: int = WINDOW_S
               ) -> tuple[list[tuple[int, int, int]], list[tuple[dt.datetime, dt.datetime]]]:
        """``[start, end)`` as aligned ranges ``(level_s, lo, hi)`` (epoch seconds) read from the
        rollup, and unaligned pieces (at most two, each shorter than ``grid_s``) read exactly.

        An edge beyond the data needs no exact read: when no span starts at or after ``end``
        (a window ending now), the window holding ``end`` is read whole from the rollup, and so
        is the one holding ``start`` when no span starts before it."""
        s = int(math.ceil(start.timestamp() / grid_s)) * grid_s
        e = int(math.floor(end.timestamp() / grid_s)) * grid_s
        if self.last_start is None or self.last_start < pd.Timestamp(end):
            e = int(math.ceil(end.timestamp() / grid_s)) * grid_s
            end = dt.datetime.fromtimestamp(e, dt.UTC)
        if self.first_start is None or self.first_start >= pd.Timestamp(start):
            s = int(math.floor(start.timestamp() / grid_s)) * grid_s
            start = dt.datetime.fromtimestamp(s, dt.UTC)
        if s >= e:
            return [], [(start, end)] if start < end else []
        exact = []
        if start.timestamp() < s:
            exact.append((start, dt.datetime.fromtimestamp(s, dt.UTC)))
        if e < end.timestamp():
            exact.append((dt.datetime.fromtimestamp(e, dt.UTC), end))
        return _split(s, e, LEVELS_S.index(grid_s) + 1), exact

    def select(self, table: str, start: dt.datetime, end: dt.datetime, *, level_s: int = LEVELS_S[-1],
               extra: pd.DataFrame | None = None, workflows: Sequence[str] | None = None,
               sites: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` (runs, run_hist, steps, step_hist, slow_hist) covering ``[start, end)``.

        Args:
            level_s: the coarsest windows wanted (one of :data:`LEVELS_S`): 900 for local hours of
                any zone and clinical periods, 3600 for hourly buckets; rows of coarser windows
                are replaced by the finer rows they were summed from.
            extra: rows of the same table for the unaligned pieces (see :meth:`exact`).
            workflows, sites: keep only these (None: all); ``extra`` is kept whole.
        """
        if level_s not in LEVELS_S:
            raise ValueError(f"level_s must be one of {LEVELS_S}")
        grid = GRID_S[table]
        ranges, _ = self.pieces(start, end, grid)
        lo_ts, hi_ts = pd.Timestamp(start), pd.Timestamp(end)
        slices: list[tuple[dict[str, np.ndarray], int, int]] = []
        frames: list[pd.DataFrame] = []  # frames without NumPy columns, sliced by pandas
        for rollup in self.rollups:
            if rollup.first_start is None or rollup.first_start >= hi_ts or rollup.last_start < lo_ts - pd.Timedelta(
                    seconds=grid):
                continue
            for size, lo, hi in ranges:
                level = max(min(size, level_s), grid)
                frame = getattr(rollup, table)[level]
                if frame.empty:
                    continue
                columns = rollup.columns(table, level)
                window = columns["window"] if columns is not None else frame["window"].to_numpy()  # sorted
                a, b = np.searchsorted(window, [lo, hi])
                if b <= a:
                    continue
                if columns is not None:
                    slices.append((columns, int(a), int(b)))
                else:
                    frames.append(_keep(frame.iloc[a:b], workflows, sites))
        if slices:
            names = list(slices[0][0])
            joined = {c: np.concatenate([cols[c][a:b] for cols, a, b in slices]) for c in names}
            keep = _mask(joined, workflows, sites)
            # Each column keeps its dtype: names stay Python objects (pandas would infer Arrow strings).
            frames.insert(0, pd.DataFrame({c: pd.Series(v[keep] if keep is not None else v, dtype=v.dtype, copy=False)
                                           for c, v in joined.items()}))
        if extra is not None and not extra.empty:
            frames.append(extra)
        if frames and all(f.empty for f in frames):
            return frames[0]  # nothing left after the filter: no rows, but the table's columns
        return _concat(frames)

    def exact(self, start: dt.datetime, end: dt.datetime, grid_s: int = WINDOW_S) -> SegmentRollup | None:
        """The rollup of the unaligned pieces of ``[start, end)`` on the ``grid_s`` grid, read from
        the segments that overlap them (None when the range is aligned)."""
        _, pieces = self.pieces(start, end, grid_s)
        rollups = []
        for lo, hi in pieces:
            segments = self.overlapping(lo, hi)
            if not segments:
                continue
            con = _connect(segments)
            try:
                rollups.append(build_rollup(con, self.config, lo, hi))
            finally:
                con.close()
        if not rollups:
            return None
        if len(rollups) == 1:
            return rollups[0]
        first, second = rollups
        return SegmentRollup(
            **{name: {size: _concat([first_frame, getattr(second, name)[size]])
                      for size, first_frame in getattr(first, name).items()}
               for name in ("runs", "run_hist", "steps", "step_hist", "slow_hist")},
            loose_steps=_concat([first.loose_steps, second.loose_steps]),
            partial_runs=_concat([first.partial_runs, second.partial_runs]),
            top_runs=_concat([first.top_runs, second.top_runs]),
            top_steps=_concat([first.top_steps, second.top_steps]),
            missed=_concat([first.missed, second.missed]),
            first_start=first.first_start, last_start=second.last_start,
        )

    def overlapping(self, start: dt.datetime, end: dt.datetime) -> list[Path]:
        """Segments of the units holding spans that start in ``[start, end)``."""
        inside, cut = self.units_in(start, end)
        return [p for i in inside + cut for p in self.units[i]]

    def units_in(self, start: dt.datetime, end: dt.datetime) -> tuple[list[int], list[int]]:
        """The units wholly inside ``[start, end)``, and those the range cuts (their indexes)."""
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        inside: list[int] = []
        cut: list[int] = []
        for i, rollup in enumerate(self.rollups):
            if rollup.first_start is None or rollup.last_start is None:
                continue
            if rollup.first_start >= lo and rollup.last_start < hi:
                inside.append(i)
            elif rollup.first_start < hi and rollup.last_start >= lo:
                cut.append(i)
        return inside, cut

    def kept_complete(self, unit: int, kept: pd.DataFrame, column: str, beyond: float) -> bool:
        """Whether ``kept`` (a unit's kept runs of one workflow and site, the ``top_runs`` largest
        by ``column`` among them) holds every run of that pair in the unit whose ``column`` is at
        least ``beyond``: true when the unit holds no more runs of the pair than were kept, or
        when the smallest kept value is below ``beyond``."""
        if kept.empty:
            return False
        workflow, site = kept["workflow"].iloc[0], kept["site"].iloc[0]
        days = self.rollups[unit].runs[LEVELS_S[-1]]
        total = int(days.loc[(days["workflow"] == workflow) & (days["site"] == site), "samples"].sum())
        values = np.sort(np.nan_to_num(kept[column].to_numpy(dtype=float, na_value=np.nan), nan=-np.inf))[::-1]
        k = self.config.top_runs
        if total <= min(len(values), k):
            return True
        return len(values) >= k and values[k - 1] < beyond

    def read(self, segments: Sequence[Path], query: str, params: Sequence[Any] = (),
             views: Sequence[str] = VIEWS) -> pd.DataFrame:
        """``query`` over ``views`` (the store's, by default all) of just ``segments``, for the
        few exact reads the rollup cannot answer."""
        con = _connect(segments, views)
        try:
            return to_pandas(con.execute(query, list(params)).to_arrow_table())
        finally:
            con.close()


def _by_window(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by window (so a time range is a slice), strings shared, integers as int64."""
    frame = _plain(frame)
    if frame.empty:
        return frame
    return frame.sort_values("window", kind="stable", ignore_index=True)


def _split(lo: int, hi: int, depth: int) -> list[tuple[int, int, int]]:
    """``[lo, hi)`` (aligned to 15 minutes) as the fewest ranges of whole days, hours, 15 minutes."""
    if depth >= len(LEVELS_S):
        return [(LEVELS_S[-1], lo, hi)]
    size = LEVELS_S[depth]
    a = -(-lo // size) * size
    b = hi // size * size
    finer = LEVELS_S[depth - 1]
    if a >= b:
        return [(finer, lo, hi)]
    out = []
    if lo < a:
        out.append((finer, lo, a))
    out.extend(_split(a, b, depth + 1))
    if b < hi:
        out.append((finer, b, hi))
    return out


class RollupCache:
    """Segment rollups kept in memory for the life of a dashboard process (thread-safe).

    Args:
        path: the store's data directory.
        config: thresholds and list sizes (a rollup is only valid for the config it was made with).
        files: where rollups are saved between processes (``analysis.rollup_files.RollupFiles``;
            None: in memory only). The first snapshot loads the saved units of live segments;
            each unit built is saved, and forgotten once its segments leave.
    """

    def __init__(self, path: Path, config: RollupConfig, files: Any = None) -> None:
        self._path = Path(path)
        self.config = config
        self._files = files
        self._loaded = False
        self._units: dict[tuple[Path, ...], SegmentRollup] = {}
        self._replaces: dict[str, frozenset[str]] = {}
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def snapshot(self) -> Snapshot:
        """The rollup of the segments live now; new segments are rolled up (the new ones of a
        partition together, in one read), units with a segment that left are dropped.

        Raises:
            StoreError: the path is not a store of this schema version, or its segments kept
                vanishing while being read (compaction running meanwhile).
        """
        check_store(self._path)
        with self._lock:
            for attempt in range(_RETRIES):
                segments = tuple(list_segments(self._path, self._replaces))
                if self._snapshot is not None and self._snapshot.segments == segments:
                    return self._snapshot
                live = set(segments)
                if self._files is not None and not self._loaded:
                    self._units.update(self._files.load(segments))
                    self._loaded = True
                for unit in [u for u in self._units if not live.issuperset(u)]:
                    del self._units[unit]
                    if self._files is not None:
                        self._files.forget(unit)
                covered = {p for unit in self._units for p in unit}
                new: dict[Path, list[Path]] = {}
                for segment in segments:
                    if segment not in covered:
                        new.setdefault(segment.parent, []).append(segment)
                try:
                    for batch in new.values():
                        self._units[tuple(batch)] = self._build(batch)
                        if self._files is not None:
                            self._files.save(batch, self._units[tuple(batch)])
                except StoreError:
                    if attempt == _RETRIES - 1:
                        raise
                    continue  # a segment was merged away meanwhile: list again
                order = sorted(self._units, key=lambda unit: unit[0])
                self._snapshot = Snapshot(self.config, segments, tuple(order), tuple(self._units[u] for u in order))
                return self._snapshot
        raise StoreError(f"the store at {self._path} kept changing while it was rolled up")

    def _build(self, segments: Sequence[Path]) -> SegmentRollup:
        try:
            con = _connect(segments)
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the segments {[str(s) for s in segments]}: {exc}") from exc
        try:
            return build_rollup(con, self.config)
        except duckdb.IOException as exc:  # merged away by compaction meanwhile: the merged one is listed next time
            raise StoreError(f"a segment vanished while rolling it up: {exc}") from exc
        finally:
            con.close()
