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
from store import StoreError, check_store, create_views, list_segments

__all__ = [
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
LEVELS_S = (WINDOW_S, 3600, 86_400)  # 15 minutes, hours and UTC days (the coarser summed from the finer)
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


def _window(start: pd.Series, size_s: int = WINDOW_S) -> np.ndarray:
    seconds = start.to_numpy(dtype="datetime64[ns]").astype(np.int64) // _NS
    return (seconds // size_s) * size_s


def _coarser(frame: pd.DataFrame, keys: list[str], size_s: int, how: Mapping[str, str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    out = frame.assign(window=(frame["window"].to_numpy() // size_s) * size_s)
    return out.groupby(keys, sort=False, dropna=False).agg(how).reset_index()


def _levels(fine: pd.DataFrame, keys: list[str], how: Mapping[str, str]) -> dict[int, pd.DataFrame]:
    levels = {WINDOW_S: fine}
    for size in LEVELS_S[1:]:
        levels[size] = _coarser(fine, keys, size, how)
    return levels


def _hist(frame: pd.DataFrame, keys: list[str], values: str) -> pd.DataFrame:
    hist = frame[keys].assign(bucket=bucket_of(frame[values]))
    return hist.groupby([*keys, "bucket"], sort=False, dropna=False).size().rename("count").reset_index()


def _run_tables(runs: pd.DataFrame, config: RollupConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    levels = config.levels_s
    ok = (runs["status"] == "ok").to_numpy()
    waiting = runs["waiting_s"].to_numpy(dtype=float, na_value=np.nan)
    start_ns = runs["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    base = pd.DataFrame({
        "window": _window(runs["start"]),
        "workflow": runs["workflow"].to_numpy(dtype=object),
        "site": runs["site"].to_numpy(dtype=object),
        "samples": np.ones(len(runs), dtype=np.int64),
        "ok": ok.astype(np.int64),
        "simulated": runs["simulated"].to_numpy(dtype=bool, na_value=False).astype(np.int64),
        "last_ok_ns": np.where(ok, start_ns, np.iinfo(np.int64).min),
        **{f"under_{i}": (ok & (waiting <= t)).astype(np.int64) for i, t in enumerate(levels)},
    })
    how = {c: ("max" if c == "last_ok_ns" else "sum") for c in base.columns if c not in _RUN_KEYS}
    table = base.groupby(_RUN_KEYS, sort=False, dropna=False).agg(how).reset_index()
    hist = _hist(base[ok & ~np.isnan(waiting)].assign(waiting_s=waiting[ok & ~np.isnan(waiting)]), _RUN_KEYS,
                 "waiting_s")
    return table, hist


def _step_tables(steps: pd.DataFrame, config: RollupConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Steps whose run is known (``run_waiting_s`` may still be null for a run without one)."""
    has_ttfb = steps["ttfb_s"].notna().to_numpy()
    base = pd.DataFrame({
        "window": _window(steps["start"]),
        "workflow": steps["workflow"].to_numpy(dtype=object),
        "site": steps["site"].to_numpy(dtype=object),
        "step": steps["step"].to_numpy(dtype=object),
        "step_index": steps["step_index"].to_numpy(dtype=float, na_value=np.nan),
        "samples": np.ones(len(steps), dtype=np.int64),
        "sum_s": steps["duration_s"].to_numpy(dtype=float, na_value=np.nan),
        "phase_samples": has_ttfb.astype(np.int64),
        **{f"{p}_sum": np.where(has_ttfb, steps[p].to_numpy(dtype=float, na_value=0.0), 0.0) for p in _PHASES},
    })
    how = {c: ("min" if c == "step_index" else "sum") for c in base.columns if c not in _STEP_KEYS}
    table = base.groupby(_STEP_KEYS, sort=False, dropna=False).agg(how).reset_index()
    duration = steps["duration_s"].to_numpy(dtype=float, na_value=np.nan)
    with_duration = ~np.isnan(duration)
    hist = _hist(base[with_duration].assign(d=duration[with_duration]), _STEP_KEYS, "d")
    limits = np.array([config.threshold(w) for w in base["workflow"]], dtype=float)
    run_waiting = steps["run_waiting_s"].to_numpy(dtype=float, na_value=np.nan)
    slow = with_duration & (run_waiting > limits)
    slow_hist = _hist(base[slow].assign(d=duration[slow]), _STEP_KEYS, "d")
    return table, hist, slow_hist


_STEPS_QUERY = """
    SELECT st.trace_id, st.start, coalesce(st.workflow, r.workflow) AS workflow, st.site, st.step,
           st.step_index, st.duration_s, st.dns_s, st.connect_s, st.tls_s, st.ttfb_s, st.transfer_s,
           r.trace_id IS NOT NULL AS has_run, r.waiting_s AS run_waiting_s
    FROM steps AS st LEFT JOIN (SELECT trace_id, any_value(workflow) AS workflow, any_value(waiting_s) AS waiting_s
                                FROM runs GROUP BY trace_id) AS r USING (trace_id)
"""


def build_rollup(con: duckdb.DuckDBPyConnection, config: RollupConfig,
                 start: dt.datetime | None = None, end: dt.datetime | None = None) -> SegmentRollup:
    """The rollup of what ``con``'s views hold (one segment, or a few for an exact piece).

    With ``start``/``end``, only runs and steps that start in ``[start, end)`` count (the runs
    that judge those steps are looked up at any time).
    """
    time_where, params = "TRUE", []
    if start is not None and end is not None:
        time_where, params = "start >= ? AND start < ?", [start, end]

    def frame(query: str, args: Sequence[Any] = ()) -> pd.DataFrame:
        return to_pandas(con.execute(query, list(args)).to_arrow_table())

    runs = frame(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {time_where}", params)
    steps = frame(f"SELECT * FROM ({_STEPS_QUERY}) WHERE {time_where}", params)
    missed = frame(f"SELECT trace_id, slot, workflow, site, reason FROM missed_slots WHERE "
                   f"{time_where.replace('start', 'slot')}", params)
    bounds = frame('SELECT min("Timestamp") AS first, max("Timestamp") AS last FROM spans')

    run_table, run_hist = _run_tables(runs, config)
    known = steps["has_run"].to_numpy(dtype=bool)
    step_table, step_hist, slow_hist = _step_tables(steps[known], config)
    loose = steps.loc[~known].drop(columns=["has_run", "run_waiting_s"]).reset_index(drop=True)

    # Runs whose steps here do not add up to their waiting time: their other steps are loose elsewhere.
    sums = steps[known].groupby("trace_id")["duration_s"].sum()
    here = runs.set_index("trace_id")["waiting_s"].astype(float)
    step_sum = sums.reindex(here.index).astype(float)
    partial = here.index[~((here - step_sum).abs() <= _PARTIAL_TOLERANCE_S)]
    partial_runs = runs.loc[runs["trace_id"].isin(partial), ["trace_id", "workflow", "waiting_s"]].reset_index(drop=True)

    top = _top_runs(runs, config.top_runs)
    chart = set(_top_runs(runs, config.chart_runs)["trace_id"])
    top_steps = steps.loc[steps["trace_id"].isin(chart),
                          ["trace_id", "start", "site", "step", "step_index", "duration_s"]].reset_index(drop=True)

    run_how = {c: ("max" if c == "last_ok_ns" else "sum") for c in run_table.columns if c not in _RUN_KEYS}
    step_how = {c: ("min" if c == "step_index" else "sum") for c in step_table.columns if c not in _STEP_KEYS}
    first = bounds["first"].iloc[0]
    last = bounds["last"].iloc[0]
    return SegmentRollup(
        runs=_levels(run_table, _RUN_KEYS, run_how),
        run_hist=_levels(run_hist, [*_RUN_KEYS, "bucket"], {"count": "sum"}),
        steps=_levels(step_table, _STEP_KEYS, step_how),
        step_hist=_levels(step_hist, [*_STEP_KEYS, "bucket"], {"count": "sum"}),
        slow_hist=_levels(slow_hist, [*_STEP_KEYS, "bucket"], {"count": "sum"}),
        loose_steps=loose,
        partial_runs=partial_runs,
        top_runs=top,
        top_steps=top_steps,
        missed=missed,
        first_start=None if pd.isna(first) else pd.Timestamp(first),
        last_start=None if pd.isna(last) else pd.Timestamp(last),
    )


def _top_runs(runs: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per workflow x site, the ``k`` slowest runs (as the runs page orders them) and the ``k`` newest."""
    if runs.empty:
        return runs[_RUN_COLUMNS]
    ordered = runs.sort_values(["waiting_s", "start"], ascending=[False, False], na_position="last")
    slowest = ordered.groupby(["workflow", "site"], dropna=False, sort=False).head(k)
    newest = runs.sort_values("start", ascending=False).groupby(["workflow", "site"], dropna=False,
                                                               sort=False).head(k)
    return pd.concat([slowest, newest]).drop_duplicates("trace_id")[_RUN_COLUMNS].reset_index(drop=True)


def _connect(segments: Sequence[Path]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    create_views(con, segments)
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
    segments: tuple[Path, ...]
    rollups: tuple[SegmentRollup, ...]
    runs: dict[int, pd.DataFrame] = field(init=False)
    run_hist: dict[int, pd.DataFrame] = field(init=False)
    steps: dict[int, pd.DataFrame] = field(init=False)
    step_hist: dict[int, pd.DataFrame] = field(init=False)
    slow_hist: dict[int, pd.DataFrame] = field(init=False)
    loose_steps: pd.DataFrame = field(init=False)
    partial_runs: pd.DataFrame = field(init=False)
    missed: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        rollups = self.rollups
        for name in ("runs", "run_hist", "steps", "step_hist", "slow_hist"):
            setattr(self, name, {size: _concat(getattr(r, name)[size] for r in rollups) for size in LEVELS_S})
        self.partial_runs = _concat(r.partial_runs for r in rollups)
        if not self.partial_runs.empty:
            self.partial_runs = self.partial_runs.drop_duplicates("trace_id")
        self.loose_steps = self.judge_loose(_concat(r.loose_steps for r in rollups))
        self.missed = _concat(r.missed for r in rollups)

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
        found["slow"] = found["run_waiting_s"].astype(float).to_numpy() > np.array(
            [self.config.threshold(w) for w in found["workflow"]], dtype=float)
        return found

    # -- time ranges ----------------------------------------------------------------------------

    def pieces(self, start: dt.datetime, end: dt.datetime) -> tuple[list[tuple[int, int, int]], list[tuple[dt.datetime, dt.datetime]]]:
        """``[start, end)`` as aligned ranges ``(level_s, lo, hi)`` (epoch seconds) read from the
        rollup, and unaligned pieces (at most two, each shorter than 15 minutes) read exactly."""
        s = int(math.ceil(start.timestamp() / WINDOW_S)) * WINDOW_S
        e = int(math.floor(end.timestamp() / WINDOW_S)) * WINDOW_S
        if s >= e:
            return [], [(start, end)] if start < end else []
        exact = []
        if start.timestamp() < s:
            exact.append((start, dt.datetime.fromtimestamp(s, dt.UTC)))
        if e < end.timestamp():
            exact.append((dt.datetime.fromtimestamp(e, dt.UTC), end))
        return _split(s, e, 1), exact

    def select(self, table: str, start: dt.datetime, end: dt.datetime, *, level_s: int = LEVELS_S[-1],
               extra: pd.DataFrame | None = None) -> pd.DataFrame:
        """Rows of ``table`` (runs, run_hist, steps, step_hist, slow_hist) covering ``[start, end)``.

        Args:
            level_s: the coarsest windows wanted (one of :data:`LEVELS_S`): 900 for local hours of
                any zone and clinical periods, 3600 for hourly buckets; rows of coarser windows
                are replaced by the finer rows they were summed from.
            extra: rows of the same table for the unaligned pieces (see :meth:`exact`).
        """
        if level_s not in LEVELS_S:
            raise ValueError(f"level_s must be one of {LEVELS_S}")
        ranges, _ = self.pieces(start, end)
        levels = getattr(self, table)
        parts = []
        for size, lo, hi in ranges:
            size = min(size, level_s)
            frame = levels[size]
            if frame.empty:
                continue
            window = frame["window"].to_numpy()
            parts.append(frame[(window >= lo) & (window < hi)])
        if extra is not None and not extra.empty:
            parts.append(extra)
        return _concat(parts)

    def exact(self, start: dt.datetime, end: dt.datetime) -> SegmentRollup | None:
        """The rollup of the unaligned pieces of ``[start, end)``, read from the segments that
        overlap them (None when the range is aligned)."""
        _, pieces = self.pieces(start, end)
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
            **{name: {size: _concat([getattr(first, name)[size], getattr(second, name)[size]]) for size in LEVELS_S}
               for name in ("runs", "run_hist", "steps", "step_hist", "slow_hist")},
            loose_steps=_concat([first.loose_steps, second.loose_steps]),
            partial_runs=_concat([first.partial_runs, second.partial_runs]),
            top_runs=_concat([first.top_runs, second.top_runs]),
            top_steps=_concat([first.top_steps, second.top_steps]),
            missed=_concat([first.missed, second.missed]),
            first_start=first.first_start, last_start=second.last_start,
        )

    def overlapping(self, start: dt.datetime, end: dt.datetime, *, inside: bool = False) -> list[Path]:
        """Segments holding spans that start in ``[start, end)`` (``inside``: only those wholly in it)."""
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        found = []
        for path, rollup in zip(self.segments, self.rollups, strict=True):
            if rollup.first_start is None or rollup.last_start is None:
                continue
            if inside:
                if rollup.first_start >= lo and rollup.last_start < hi:
                    found.append(path)
            elif rollup.first_start < hi and rollup.last_start >= lo:
                found.append(path)
        return found

    def rollup_of(self, segment: Path) -> SegmentRollup:
        return self.rollups[self.segments.index(segment)]

    def read(self, segments: Sequence[Path], query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """``query`` over views of just ``segments`` (for the few exact reads the rollup cannot answer)."""
        con = _connect(segments)
        try:
            return to_pandas(con.execute(query, list(params)).to_arrow_table())
        finally:
            con.close()


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
    """

    def __init__(self, path: Path, config: RollupConfig) -> None:
        self._path = Path(path)
        self.config = config
        self._rollups: dict[Path, SegmentRollup] = {}
        self._replaces: dict[str, frozenset[str]] = {}
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def snapshot(self) -> Snapshot:
        """The rollup of the segments live now; new segments are rolled up, gone ones dropped.

        Raises:
            StoreError: the path is not a store of this schema version.
        """
        check_store(self._path)
        with self._lock:
            segments = tuple(list_segments(self._path, self._replaces))
            if self._snapshot is not None and self._snapshot.segments == segments:
                return self._snapshot
            for segment in segments:
                if segment not in self._rollups:
                    self._rollups[segment] = self._build(segment)
            for gone in set(self._rollups) - set(segments):
                del self._rollups[gone]
            self._snapshot = Snapshot(self.config, segments, tuple(self._rollups[s] for s in segments))
            return self._snapshot

    def _build(self, segment: Path) -> SegmentRollup:
        try:
            con = _connect([segment])
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the segment {segment}: {exc}") from exc
        try:
            return build_rollup(con, self.config)
        except duckdb.IOException as exc:  # merged away by compaction meanwhile: the merged one is listed next time
            raise StoreError(f"the segment {segment} vanished while rolling it up: {exc}") from exc
        finally:
            con.close()
