"""The dashboard's questions answered from a :class:`~analysis.rollup.Snapshot`.

Each function mirrors one of ``analysis.aggregates`` (same columns): counts, shares and means are
exactly those; percentiles (``p50_s``, ``p90_s``, ``median_s``) come from the rollup's histograms
and are within :data:`~analysis.rollup.RELATIVE_ERROR` of the exact ones, which the column
``p_relative_error`` states on every frame that has percentiles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analysis.apdex import Apdex
from analysis.calendar import ClinicalCalendar
from analysis.rollup import (
    GRID_S,
    LEVELS_S,
    RELATIVE_ERROR,
    WINDOW_S,
    Snapshot,
    bucket_of,
    bucket_value,
    histogram_quantiles,
)
from analysis.status import RECENT_RUNS_QUERY, StatusRules, against_thresholds, judge_status
from analysis.store import RunFilter
from store import VIEWS

__all__ = [
    "Answer",
    "ask",
    "board",
    "board_scopes",
    "FRUSTRATED_SHARE",
    "HOUR_MIN_FRUSTRATED",
    "HOUR_MIN_RUNS",
    "Distribution",
    "SegmentReader",
    "chart_steps",
    "current_status",
    "distribution_of",
    "missed_slots",
    "period_aligned",
    "period_mask",
    "period_split",
    "phases",
    "run_segments",
    "simulated_share",
    "site_phases",
    "sites",
    "slowest",
    "steps",
    "time_of_day",
    "timeline",
    "waiting_distribution",
]

_PHASES = ("dns_s", "connect_s", "tls_s", "ttfb_s", "transfer_s")
_RUN_SUMS = ["samples", "ok", "simulated"]


@dataclass
class Answer:
    """One question's rows: the snapshot, the filter, and the unaligned edges read exactly (once
    per grid: 15 minutes for run tables, hours for step tables)."""

    snapshot: Snapshot
    runs: RunFilter
    _exact: dict[int, object] = field(default_factory=dict)
    _tables: dict[tuple[str, int], pd.DataFrame] = field(default_factory=dict)

    def exact(self, grid_s: int) -> object:  # SegmentRollup | None
        if grid_s not in self._exact:
            start, end = _bounds(self.runs)
            self._exact[grid_s] = self.snapshot.exact(start, end, grid_s)
        return self._exact[grid_s]

    def table(self, name: str, *, level_s: int = LEVELS_S[-1]) -> pd.DataFrame:
        """Rows of ``name`` for the filter's window, workflows and sites (loose steps included),
        in windows no coarser than ``level_s`` (read once per answer; treat as read-only)."""
        key = (name, max(level_s, GRID_S[name]))
        if key not in self._tables:
            self._tables[key] = self._table(name, level_s)
        return self._tables[key]

    def _table(self, name: str, level_s: int) -> pd.DataFrame:
        start, end = _bounds(self.runs)
        grid = GRID_S[name]
        exact = self.exact(grid)
        extra = getattr(exact, name)[grid] if exact is not None else None
        runs = self.runs
        frame = self.snapshot.select(name, start, end, level_s=level_s, extra=_filter(extra, runs),
                                     workflows=runs.workflows, sites=runs.sites)
        if name in ("steps", "step_hist", "slow_hist"):
            frame = _concat([frame, _filter(self._loose(name), runs)])
        return frame

    def loose_rows(self) -> pd.DataFrame:
        """Loose steps (run span in another segment) that start in the window, judged."""
        start, end = _bounds(self.runs)
        grid = GRID_S["steps"]
        loose = self.snapshot.loose_steps
        parts = []
        if not loose.empty:
            ts = loose["start"]
            inside = (ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))
            _, pieces = self.snapshot.pieces(start, end, grid)
            for lo, hi in pieces:  # read exactly, with the pieces' own loose steps below
                inside &= ~((ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi)))
            parts.append(loose[inside.to_numpy()])
        exact = self.exact(grid)
        if exact is not None and not exact.loose_steps.empty:  # type: ignore[attr-defined]
            parts.append(self.snapshot.judge_loose(exact.loose_steps))  # type: ignore[attr-defined]
        return _concat(parts)

    def _loose(self, name: str) -> pd.DataFrame:
        loose = self.loose_rows()
        if loose.empty:
            return loose
        seconds = loose["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // 1_000_000_000
        keyed = pd.DataFrame({
            "window": seconds // WINDOW_S * WINDOW_S, "workflow": loose["workflow"].to_numpy(dtype=object),
            "site": loose["site"].to_numpy(dtype=object), "step": loose["step"].to_numpy(dtype=object),
        })
        duration = loose["duration_s"].to_numpy(dtype=float, na_value=np.nan)
        if name == "steps":
            has_ttfb = loose["ttfb_s"].notna().to_numpy()
            return keyed.assign(
                step_index=loose["step_index"].to_numpy(dtype=float, na_value=np.nan),
                samples=1, sum_s=duration, phase_samples=has_ttfb.astype(np.int64),
                **{f"{p}_sum": np.where(has_ttfb, loose[p].to_numpy(dtype=float, na_value=0.0), 0.0)
                   for p in _PHASES})
        chosen = ~np.isnan(duration)
        if name == "slow_hist":
            chosen &= loose["slow"].to_numpy(dtype=bool)
        return keyed[chosen].assign(bucket=bucket_of(duration[chosen]), count=1)


def ask(snapshot: Snapshot, runs: RunFilter) -> Answer:
    """The rows for ``runs`` (a window with both bounds); its unaligned edges are read exactly
    when a table is first asked for."""
    _bounds(runs)
    return Answer(snapshot, runs)


def _bounds(runs: RunFilter) -> tuple[dt.datetime, dt.datetime]:
    if runs.start is None or runs.end is None:
        raise ValueError("a rollup answer needs a window with both bounds")
    return runs.start, runs.end


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _filter(frame: pd.DataFrame | None, runs: RunFilter) -> pd.DataFrame | None:
    if frame is None or frame.empty:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if runs.workflows is not None:
        keep &= frame["workflow"].isin(list(runs.workflows)).to_numpy()
    if runs.sites is not None:
        keep &= frame["site"].isin(list(runs.sites)).to_numpy()
    return frame[keep] if not keep.all() else frame


def _level_column(snapshot: Snapshot, threshold_s: float) -> str:
    levels = snapshot.config.levels_s
    for i, level in enumerate(levels):
        if math.isclose(level, threshold_s, rel_tol=1e-12):
            return f"under_{i}"
    raise ValueError(f"the rollup keeps no count for a threshold of {threshold_s:g} s (it keeps {levels})")


def _sums(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[*keys, *columns])
    return frame.groupby(keys, sort=True, dropna=False)[columns].sum().reset_index()


def _quantiles(hist: pd.DataFrame, keys: list[str], qs: dict[str, float]) -> pd.DataFrame:
    """Per group of ``keys``, the quantiles ``qs`` (name -> q) of the histogram's values."""
    if hist.empty:
        return pd.DataFrame(columns=[*keys, *qs])
    merged = hist.groupby([*keys, "bucket"], sort=True, dropna=False)["count"].sum().reset_index()
    codes = merged.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    cuts = np.flatnonzero(np.diff(codes)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(merged)]
    buckets = merged["bucket"].to_numpy()
    counts = merged["count"].to_numpy()
    key_values = merged[keys].to_numpy(dtype=object)
    rows = []
    for s, e in zip(starts, ends, strict=True):
        values = histogram_quantiles(buckets[s:e], counts[s:e], list(qs.values()))
        rows.append([*key_values[s], *values])
    return pd.DataFrame(rows, columns=[*keys, *qs])


# -- The questions ------------------------------------------------------------------------------------

def board(answer: Answer) -> pd.DataFrame:
    """As ``aggregates.workflow_site_summary``, each workflow judged against its configured T."""
    snapshot = answer.snapshot
    runs = answer.table("runs")
    columns = ["workflow", "site", "threshold_s", "samples", "not_ok", "share_under", "p50_s", "p90_s", "apdex",
               "p_relative_error"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    levels = [c for c in runs.columns if c.startswith("under_")]
    counts = _sums(runs, ["workflow", "site"], [*_RUN_SUMS, *levels])
    quant = _quantiles(answer.table("run_hist"), ["workflow", "site"], {"p50_s": 0.5, "p90_s": 0.9})
    frame = counts.merge(quant, on=["workflow", "site"], how="left")
    rows = []
    for row in frame.itertuples(index=False):
        t = snapshot.config.threshold(row.workflow)
        satisfied = int(getattr(row, _level_column(snapshot, t)))
        tolerating = int(getattr(row, _level_column(snapshot, 4 * t))) - satisfied
        samples = int(row.samples)
        not_ok = samples - int(row.ok)
        rows.append({
            "workflow": row.workflow, "site": row.site, "threshold_s": t, "samples": samples, "not_ok": not_ok,
            "share_under": satisfied / samples, "p50_s": row.p50_s, "p90_s": row.p90_s,
            "apdex": Apdex(score=(satisfied + tolerating / 2) / samples, t_s=float(t), samples=samples,
                           satisfied=satisfied, tolerating=tolerating,
                           frustrated=samples - satisfied - tolerating, failed=not_ok),
            "p_relative_error": RELATIVE_ERROR,
        })
    return pd.DataFrame(rows, columns=columns)


# A scope where at least this share of runs is frustrated (over 4T, or failed) rates its row: one
# run in ten taking four times T or more is not "Good", whatever the rest of the week does.
FRUSTRATED_SHARE = 0.1
# An hour of the day is judged on its own only with this many runs behind it, and flagged only
# with at least HOUR_MIN_FRUSTRATED frustrated runs (one or two failures are not a pattern).
HOUR_MIN_RUNS = 10
HOUR_MIN_FRUSTRATED = 3


def board_scopes(answer: Answer, *, calendar: ClinicalCalendar) -> pd.DataFrame:
    """Each workflow at each site judged in parts of the day as well as pooled, so a row is rated by
    its worst part and not by a week that dilutes it.

    Scopes: ``all hours``; each clinical period that applies at the site (those starting and
    ending on 15-minute boundaries); and ``hours``, the site-local hours of the day (over every
    day of the window, each with at least :data:`HOUR_MIN_RUNS` runs) in which at least
    :data:`FRUSTRATED_SHARE` of runs (and :data:`HOUR_MIN_FRUSTRATED`) were frustrated, together (labelled ``13:00-17:00``, ranges
    joined by ", "). Each workflow is judged against its configured T.

    Returns: ``workflow, site, scope, kind`` (``all``, ``period``, ``hours``), ``samples, not_ok,
    satisfied, tolerating, share_under, frustrated_share, apdex``.
    """
    columns = ["workflow", "site", "scope", "kind", "samples", "not_ok", "satisfied", "tolerating", "share_under",
               "frustrated_share", "apdex"]
    runs = answer.table("runs", level_s=WINDOW_S)
    if runs.empty:
        return pd.DataFrame(columns=columns)
    snapshot = answer.snapshot
    rows: list[dict[str, object]] = []

    def judged(part: pd.DataFrame, workflow: str, site: str, scope: str, kind: str) -> dict[str, object] | None:
        samples = int(part["samples"].sum())
        if samples == 0:
            return None
        t = snapshot.config.threshold(workflow)
        satisfied = int(part[_level_column(snapshot, t)].sum())
        within_f = int(part[_level_column(snapshot, 4 * t)].sum())
        not_ok = samples - int(part["ok"].sum())
        tolerating = within_f - satisfied
        return {"workflow": workflow, "site": site, "scope": scope, "kind": kind, "samples": samples, "not_ok": not_ok,
                "satisfied": satisfied, "tolerating": tolerating, "share_under": satisfied / samples,
                "frustrated_share": (samples - within_f) / samples,
                "apdex": Apdex(score=(satisfied + tolerating / 2) / samples, t_s=float(t), samples=samples,
                               satisfied=satisfied, tolerating=tolerating, frustrated=samples - within_f,
                               failed=not_ok)}

    periods = [name for name in calendar.period_names if period_aligned(calendar, name)]
    inside = {name: period_mask(runs, calendar, name) for name in periods}
    for (workflow, site), index in runs.groupby(["workflow", "site"], sort=True).indices.items():
        pair = runs.iloc[index]
        rows.append(judged(pair, workflow, site, "all hours", "all"))
        for name in periods:
            part = pair[inside[name][index]]
            if not part.empty:
                rows.append(judged(part, workflow, site, name, "period"))
        local = pd.to_datetime(pair["window"].to_numpy(), unit="s", utc=True).tz_convert(calendar.timezone(site))
        by_hour = pair.assign(hour=local.hour.to_numpy())
        within_f = _level_column(snapshot, 4 * snapshot.config.threshold(workflow))
        hours = by_hour.groupby("hour", sort=True)[["samples", within_f]].sum()
        frustrated = hours["samples"] - hours[within_f]
        slow = ((hours["samples"] >= HOUR_MIN_RUNS) & (frustrated >= HOUR_MIN_FRUSTRATED)
                & (frustrated >= FRUSTRATED_SHARE * hours["samples"]))
        slow_hours = [int(hour) for hour in hours.index[slow.to_numpy()]]
        if slow_hours:
            part = by_hour[by_hour["hour"].isin(slow_hours)]
            rows.append(judged(part, workflow, site, _hours_text(slow_hours), "hours"))
    return pd.DataFrame([r for r in rows if r is not None], columns=columns)


def _hours_text(hours: Sequence[int]) -> str:
    """Hours of the day as ranges: ``[13, 14, 15, 16]`` -> ``13:00-17:00``."""
    ranges: list[list[int]] = []
    for hour in sorted(hours):
        if ranges and hour == ranges[-1][1]:
            ranges[-1][1] = hour + 1
        else:
            ranges.append([hour, hour + 1])
    return ", ".join(f"{a:02d}:00\u2013{b % 24:02d}:00" for a, b in ranges)


def sites(answer: Answer, *, threshold_s: float | None = None) -> pd.DataFrame:
    """As ``aggregates.site_summary``: ``site, samples, not_ok, share_under, p50_s, p90_s``.

    ``share_under`` is the share of runs within ``threshold_s``, or, when it is ``None``, each
    within its own workflow's T (so a 50 ms search and a 20 s handover are each judged by theirs)."""
    runs = answer.table("runs")
    columns = ["site", "samples", "not_ok", "share_under", "p50_s", "p90_s", "p_relative_error"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    if threshold_s is None:
        level = "under_own_t"
        own = {w: _level_column(answer.snapshot, answer.snapshot.config.threshold(w)) for w in runs["workflow"].unique()}
        picked = np.zeros(len(runs), dtype=np.int64)
        for workflow, column in own.items():
            mine = (runs["workflow"] == workflow).to_numpy()
            picked[mine] = runs[column].to_numpy()[mine]
        runs = runs.assign(under_own_t=picked)
    else:
        level = _level_column(answer.snapshot, threshold_s)
    counts = _sums(runs, ["site"], [*_RUN_SUMS, level])
    quant = _quantiles(answer.table("run_hist"), ["site"], {"p50_s": 0.5, "p90_s": 0.9})
    frame = counts.merge(quant, on="site", how="left")
    frame["not_ok"] = frame["samples"] - frame["ok"]
    frame["share_under"] = frame[level] / frame["samples"]
    frame["p_relative_error"] = RELATIVE_ERROR
    return frame[columns]


def _local_cells(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Each row's local weekday and hour (converted once per distinct window)."""
    windows, index = np.unique(frame["window"].to_numpy(), return_inverse=True)
    local = pd.to_datetime(windows, unit="s", utc=True).tz_convert(timezone)
    return frame.assign(weekday=local.day_of_week.to_numpy()[index], hour=local.hour.to_numpy()[index])


def _whole_hours(timezone: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether the zone's offsets in the window are whole hours (so UTC hours are local hours)."""
    zone = ZoneInfo(timezone)
    moments = pd.date_range(start, end, freq="7D", tz="UTC").append(pd.DatetimeIndex([end]).tz_convert("UTC"))
    return all(m.astimezone(zone).utcoffset().total_seconds() % 3600 == 0 for m in moments)  # type: ignore[union-attr]


def time_of_day(answer: Answer, *, timezone: str, threshold_s: float) -> pd.DataFrame:
    """As ``aggregates.time_of_day``: ``weekday, hour, samples, share_under, p90_s``."""
    start, end = _bounds(answer.runs)
    level = 3600 if _whole_hours(timezone, start, end) else WINDOW_S
    runs = answer.table("runs", level_s=level)
    columns = ["weekday", "hour", "samples", "share_under", "p90_s", "p_relative_error"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    under = _level_column(answer.snapshot, threshold_s)
    counts = _sums(_local_cells(runs, timezone), ["weekday", "hour"], ["samples", under])
    hist = answer.table("run_hist", level_s=level)
    quant = _quantiles(_local_cells(hist, timezone) if not hist.empty else hist, ["weekday", "hour"], {"p90_s": 0.9})
    frame = counts.merge(quant, on=["weekday", "hour"], how="left")
    frame["share_under"] = frame[under] / frame["samples"]
    frame["p_relative_error"] = RELATIVE_ERROR
    return frame[columns].astype({"weekday": "int64", "hour": "int64", "samples": "int64"})


def timeline(answer: Answer, *, bucket_s: int) -> pd.DataFrame:
    """As ``aggregates.waiting_timeline``: ok runs' ``bucket, samples, p50_s, p90_s`` per UTC bucket
    of ``bucket_s`` seconds (a multiple of 15 minutes; buckets of 6 hours start at 00, 06, ... UTC)."""
    if bucket_s % WINDOW_S:
        raise ValueError("timeline buckets are whole multiples of 15 minutes")
    hist = answer.table("run_hist", level_s=max(level for level in LEVELS_S if bucket_s % level == 0))
    columns = ["bucket", "samples", "p50_s", "p90_s", "p_relative_error"]
    if hist.empty:
        return pd.DataFrame(columns=columns)
    hist = hist.assign(slot=hist["window"].to_numpy() // bucket_s * bucket_s)
    counts = hist.groupby("slot", sort=True)["count"].sum().rename("samples").reset_index()
    quant = _quantiles(hist, ["slot"], {"p50_s": 0.5, "p90_s": 0.9})
    frame = counts.merge(quant, on="slot")
    frame["bucket"] = pd.to_datetime(frame["slot"], unit="s", utc=True)
    frame["p_relative_error"] = RELATIVE_ERROR
    return frame[columns]


def steps(answer: Answer) -> pd.DataFrame:
    """As ``aggregates.step_summary`` with each workflow's T: ``step, step_index, samples,
    median_s, p90_s, mean_s, excess_share``. The excess is read from histograms too, so it is
    approximate (each step's time within 1%)."""
    table = answer.table("steps")
    columns = ["step", "step_index", "samples", "median_s", "p90_s", "mean_s", "excess_share", "p_relative_error"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    sums = table.groupby("step", sort=False, dropna=False).agg(
        step_index=("step_index", "min"), samples=("samples", "sum"), sum_s=("sum_s", "sum")).reset_index()
    quant = _quantiles(answer.table("step_hist"), ["step"], {"median_s": 0.5, "p90_s": 0.9})
    frame = sums.merge(quant, on="step", how="left")
    frame["mean_s"] = frame["sum_s"] / frame["samples"]
    slow = answer.table("slow_hist")
    excess = {}
    if not slow.empty:
        medians = dict(zip(frame["step"], frame["median_s"], strict=True))
        merged = slow.groupby(["step", "bucket"], sort=False)["count"].sum().reset_index()
        over = np.maximum(bucket_value(merged["bucket"]) - merged["step"].map(medians).to_numpy(dtype=float), 0)
        excess = (merged.assign(e=over * merged["count"].to_numpy())).groupby("step")["e"].sum().to_dict()
    total = sum(excess.values())
    frame["excess_share"] = [excess.get(s, 0.0) / total if total > 0 else None for s in frame["step"]]
    frame["p_relative_error"] = RELATIVE_ERROR
    frame = frame.sort_values(["step_index", "step"]).reset_index(drop=True)
    return frame[columns]


def phases(answer: Answer) -> pd.DataFrame:
    """As ``aggregates.phase_summary``: mean phases per site over steps with a TTFB."""
    table = answer.table("steps")
    columns = ["site", "samples", *_PHASES]
    if table.empty:
        return pd.DataFrame(columns=columns)
    sums = _sums(table, ["site"], ["phase_samples", *(f"{p}_sum" for p in _PHASES)])
    sums = sums[sums["phase_samples"] > 0]
    out = pd.DataFrame({"site": sums["site"], "samples": sums["phase_samples"]})
    for p in _PHASES:
        out[p] = sums[f"{p}_sum"] / sums["phase_samples"]
    return out.reset_index(drop=True)


def site_phases(answer: Answer) -> pd.DataFrame:
    """Request phases per site, like for like: each site's mean time per request in each phase over
    the steps (workflow x step) that other sites make too, and how much more (or less) it spends per
    request than the other sites on those same steps (weighted by its own requests per step).

    A constant extra on every request, whichever the step, is the site's link: a slow WAN adds its
    round trips to connect and TLS on new connections and to the first byte of every request.

    Returns: ``site, samples`` (its requests on shared steps), ``<phase>`` (mean per request) and
    ``<phase>_extra`` (against the other sites) for each phase, and ``extra_s`` (their sum).
    """
    table = answer.table("steps")
    extras = [f"{p}_extra" for p in _PHASES]
    columns = ["site", "samples", *_PHASES, *extras, "extra_s"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    sums = _sums(table, ["site", "workflow", "step"], ["phase_samples", *(f"{p}_sum" for p in _PHASES)])
    sums = sums[sums["phase_samples"] > 0]
    rows = []
    for site in sorted(sums["site"].unique()):
        mine = sums[sums["site"] == site].set_index(["workflow", "step"])
        others = sums[sums["site"] != site].groupby(["workflow", "step"])[
            ["phase_samples", *(f"{p}_sum" for p in _PHASES)]].sum()
        shared = mine.index.intersection(others.index)
        if shared.empty:
            continue
        mine, others = mine.loc[shared], others.loc[shared]
        n = mine["phase_samples"].to_numpy(dtype=float)
        row: dict[str, object] = {"site": site, "samples": int(n.sum())}
        for p in _PHASES:
            own_mean = mine[f"{p}_sum"].to_numpy(dtype=float) / n
            other_mean = others[f"{p}_sum"].to_numpy(dtype=float) / others["phase_samples"].to_numpy(dtype=float)
            row[p] = float((own_mean * n).sum() / n.sum())
            row[f"{p}_extra"] = float(((own_mean - other_mean) * n).sum() / n.sum())
        row["extra_s"] = sum(row[e] for e in extras)  # type: ignore[misc]
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def simulated_share(answer: Answer) -> tuple[int, int]:
    """``(simulated runs, runs)`` in the window (every workflow and site of the filter)."""
    runs = answer.table("runs")
    if runs.empty:
        return 0, 0
    return int(runs["simulated"].sum()), int(runs["samples"].sum())


@dataclass(frozen=True)
class Distribution:
    """Ok runs' waiting time as a histogram, and the exact counts that judge runs against T."""

    values_s: np.ndarray  # each bucket's representative value, ascending
    counts: np.ndarray
    samples: int  # all runs
    ok: int
    satisfied: int  # ok and within T
    tolerating: int  # ok, over T and within 4T
    relative_error: float = RELATIVE_ERROR


def waiting_distribution(answer: Answer, *, threshold_s: float, period: str | None = None,
                         calendar: ClinicalCalendar | None = None) -> Distribution:
    """The distribution of ok runs' waiting time, optionally only in a clinical period (which must
    start and end on 15-minute boundaries; see :func:`period_mask`)."""
    level = WINDOW_S if period is not None else LEVELS_S[-1]
    runs = answer.table("runs", level_s=level)
    hist = answer.table("run_hist", level_s=level)
    if period is not None:
        if calendar is None:
            raise ValueError("a period needs the clinical calendar")
        runs = runs[period_mask(runs, calendar, period)] if not runs.empty else runs
        hist = hist[period_mask(hist, calendar, period)] if not hist.empty else hist
    if runs.empty:
        return Distribution(np.array([]), np.array([]), 0, 0, 0, 0)
    under = int(runs[_level_column(answer.snapshot, threshold_s)].sum())
    within_f = int(runs[_level_column(answer.snapshot, 4 * threshold_s)].sum())
    merged = hist.groupby("bucket", sort=True)["count"].sum() if not hist.empty else pd.Series(dtype="int64")
    return Distribution(bucket_value(merged.index.to_numpy()), merged.to_numpy(), int(runs["samples"].sum()),
                        int(runs["ok"].sum()), under, within_f - under)


def distribution_of(frame: pd.DataFrame, *, threshold_s: float) -> Distribution:
    """A :class:`Distribution` of runs read exactly (a frame of ``Store.runs``)."""
    frame = frame[frame["status"] != "interrupted"]  # the probe's own stop: never judged
    ok = frame["status"] == "ok"
    waiting = frame["waiting_s"].astype(float)
    values = waiting[ok].dropna().to_numpy()
    buckets, counts = np.unique(bucket_of(values), return_counts=True)
    satisfied = int((ok & (waiting <= threshold_s)).sum())
    within_f = int((ok & (waiting <= 4 * threshold_s)).sum())
    return Distribution(bucket_value(buckets), counts, len(frame), int(ok.sum()), satisfied, within_f - satisfied)


def period_aligned(calendar: ClinicalCalendar, period: str) -> bool:
    """Whether a period starts and ends on 15-minute boundaries (so whole windows are in or out)."""
    p = calendar.period(period)
    return all(t.second == 0 and t.microsecond == 0 and t.minute % 15 == 0 for t in (p.start, p.end))


def period_mask(frame: pd.DataFrame, calendar: ClinicalCalendar, period: str) -> np.ndarray:
    """Whether each 15-minute window of ``frame`` lies in ``period`` at its site.

    Exact for a period aligned to 15 minutes in a zone whose offsets are whole quarter hours (all
    zones in use), since a window then never crosses a period's edge or a clock change.

    Raises:
        ValueError: the period is not aligned to 15 minutes (read it exactly instead).
    """
    if not period_aligned(calendar, period):
        raise ValueError(f"the period {period!r} does not start and end on 15-minute boundaries")
    rows = pd.DataFrame({"window": frame["window"].to_numpy(), "site": frame["site"].to_numpy(dtype=object)})
    distinct = rows.drop_duplicates(ignore_index=True)  # judged once per window and site
    probe = pd.DataFrame({"start": pd.to_datetime(distinct["window"].to_numpy(), unit="s", utc=True),
                          "site": distinct["site"].to_numpy(dtype=object)})
    judged = distinct.assign(inside=calendar.mask(probe, period).to_numpy())
    return rows.merge(judged, on=["window", "site"], how="left")["inside"].to_numpy(dtype=bool)


def period_split(answer: Answer, *, calendar: ClinicalCalendar, period: str, threshold_s: float
                 ) -> list[tuple[str, int, float, float]]:
    """For the period and for the rest of the week: ``(label, runs, share good, p90 of ok runs)``."""
    runs = answer.table("runs", level_s=WINDOW_S)
    hist = answer.table("run_hist", level_s=WINDOW_S)
    level = _level_column(answer.snapshot, threshold_s)
    out = []
    if runs.empty:
        return out
    inside_runs = period_mask(runs, calendar, period)
    inside_hist = period_mask(hist, calendar, period) if not hist.empty else np.array([], dtype=bool)
    for label, r_mask, h_mask in (("during " + period, inside_runs, inside_hist),
                                  ("the rest of the week", ~inside_runs, ~inside_hist)):
        part = runs[r_mask]
        n = int(part["samples"].sum())
        if n == 0:
            out.append((label, 0, math.nan, math.nan))
            continue
        h = hist[h_mask] if not hist.empty else hist
        p90 = math.nan
        if not h.empty:
            merged = h.groupby("bucket", sort=True)["count"].sum()
            p90 = histogram_quantiles(merged.index.to_numpy(), merged.to_numpy(), [0.9])[0]
        out.append((label, n, float(part[level].sum()) / n, p90))
    return out


# -- Runs (rows, not aggregates) -------------------------------------------------------------------

_RUN_LIST = ["trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s", "simulated"]


def slowest(snapshot: Snapshot, runs: RunFilter, *, limit: int, newest_first: bool = False) -> pd.DataFrame:
    """As ``aggregates.slowest_runs``: the units wholly in the window give their kept lists; a unit
    that the window cuts gives its kept runs in the window when they provably hold every run that
    could make the list (else it is read exactly)."""
    start, end = _bounds(runs)
    if limit > snapshot.config.top_runs:
        raise ValueError(f"the rollup keeps {snapshot.config.top_runs} runs per workflow and site, not {limit}")
    inside, cut = snapshot.units_in(start, end)
    kept = snapshot.top_runs
    candidates = pd.DataFrame(columns=_RUN_LIST)
    if inside and not kept.empty:
        candidates = _in_window(_filter(kept[np.isin(kept["unit"].to_numpy(), inside)], runs), start, end)
    candidates = _ordered(_top(candidates, limit, newest_first), newest_first)
    column = "start_ns" if newest_first else "waiting_s"
    bar = -np.inf
    if len(candidates) >= limit:
        bar = _order_value(candidates.iloc[[limit - 1]], column)[0]
    parts = [candidates]
    read: list = []
    for unit in cut:
        unit_kept = _filter(kept[kept["unit"].to_numpy() == unit], runs) if not kept.empty else kept
        pairs = [] if unit_kept.empty else [g for _, g in unit_kept.groupby(["workflow", "site"], dropna=False)]
        whole = unit_kept.assign(start_ns=_order_value(unit_kept, "start_ns")) if not unit_kept.empty else unit_kept
        complete = bool(pairs) and all(
            snapshot.kept_complete(unit, whole.loc[g.index], column, bar) for g in pairs) and bar > -np.inf
        if complete:
            parts.append(_in_window(unit_kept, start, end))
        else:
            read.extend(snapshot.units[unit])
    if read:
        where, params = runs.where()
        order = "start DESC" if newest_first else "waiting_s DESC NULLS LAST, start DESC"
        parts.append(snapshot.read(read, f"SELECT {', '.join(_RUN_LIST)} FROM runs WHERE {where} "
                                         f"ORDER BY {order} LIMIT ?", [*params, int(limit)]))
    frame = _concat([p for p in parts if not p.empty])
    if frame.empty:
        return pd.DataFrame(columns=_RUN_LIST)
    frame = _ordered(_top(_in_window(_filter(frame, runs), start, end), limit, newest_first), newest_first)
    return frame.drop_duplicates("trace_id")[_RUN_LIST].head(limit).reset_index(drop=True)


def _top(frame: pd.DataFrame, limit: int, newest_first: bool) -> pd.DataFrame:
    """The rows that can be among the first ``limit`` (ties at the edge kept), before sorting."""
    if len(frame) <= 2 * limit:
        return frame
    values = _order_value(frame, "start_ns" if newest_first else "waiting_s")
    edge = np.partition(values, len(values) - limit)[len(values) - limit]
    return frame[values >= edge]


def _in_window(frame: pd.DataFrame, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["start"] >= pd.Timestamp(start)) & (frame["start"] < pd.Timestamp(end))]


def _ordered(frame: pd.DataFrame, newest_first: bool) -> pd.DataFrame:
    if frame.empty:
        return frame
    if newest_first:
        return frame.sort_values("start", ascending=False)
    return frame.sort_values(["waiting_s", "start"], ascending=[False, False], na_position="last")


def _order_value(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The list's order as numbers: start in ns, or waiting time (a missing one lowest)."""
    if column == "start_ns":
        return frame["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
    return np.nan_to_num(frame["waiting_s"].to_numpy(dtype=float, na_value=np.nan), nan=-np.inf)


def run_segments(snapshot: Snapshot, listed: pd.DataFrame) -> list:
    """The segments that may hold the spans of the listed runs (by their start and wall time)."""
    if listed.empty:
        return []
    starts = pd.to_datetime(listed["start"], utc=True)
    walls = pd.to_timedelta(listed["wall_s"].astype(float).fillna(0.0), unit="s")
    found: list = []
    for lo, hi in zip(starts, starts + walls + pd.Timedelta(seconds=1), strict=True):
        for segment in snapshot.overlapping(lo, hi):
            if segment not in found:
                found.append(segment)
    return found


def chart_steps(snapshot: Snapshot, trace_ids: Sequence[str]) -> pd.DataFrame:
    """The steps of these runs (``trace_id, start, site, step, step_index, duration_s``), from the
    steps kept with the listed runs, reading the segments the window cut when they are not kept."""
    wanted = set(trace_ids)
    kept = snapshot.top_steps
    parts = [] if kept.empty else [kept[kept["trace_id"].isin(wanted)]]
    loose = snapshot.loose_steps
    if not loose.empty:
        parts.append(loose.loc[loose["trace_id"].isin(wanted), ["trace_id", "start", "site", "step", "step_index",
                                                               "duration_s"]])
    frame = _concat(parts)
    found = set(frame["trace_id"]) if not frame.empty else set()
    missing = sorted(wanted - found)
    if missing:
        frame = _concat([frame, _read_steps(snapshot, missing)])
    columns = ["trace_id", "start", "site", "step", "step_index", "duration_s"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame.drop_duplicates(["trace_id", "step", "start"])[columns].reset_index(drop=True)


def _read_steps(snapshot: Snapshot, trace_ids: list[str]) -> pd.DataFrame:
    segments = [p for unit, r in zip(snapshot.units, snapshot.rollups, strict=True)
                if not r.top_runs.empty and r.top_runs["trace_id"].isin(trace_ids).any() for p in unit]
    if not segments:
        return pd.DataFrame()
    return snapshot.read(segments, "SELECT trace_id, start, site, step, step_index, duration_s FROM steps "
                                   "WHERE list_contains(?, trace_id)", [trace_ids])


def missed_slots(snapshot: Snapshot, runs: RunFilter) -> pd.DataFrame:
    """As ``Store.missed_slots`` for the window: ``trace_id, slot, workflow, site, reason``."""
    start, end = _bounds(runs)
    frame = snapshot.missed
    columns = ["trace_id", "slot", "workflow", "site", "reason"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame[(frame["slot"] >= pd.Timestamp(start)) & (frame["slot"] < pd.Timestamp(end))]
    return _filter(frame, runs)[columns].sort_values("slot").reset_index(drop=True)


class SegmentReader:
    """A few segments read as a store is (``sql``), for questions about one run."""

    def __init__(self, snapshot: Snapshot, segments: Sequence, views: Sequence[str] = VIEWS) -> None:
        self._snapshot = snapshot
        self._segments = list(segments)
        self._views = tuple(views)

    def sql(self, query: str, params: Sequence | None = None) -> pd.DataFrame:
        """``query`` over ``views`` (of :data:`store.VIEWS`) of just these segments."""
        return self._snapshot.read(self._segments, query, params or [], views=self._views)


def current_status(snapshot: Snapshot, now: dt.datetime, rules: StatusRules = StatusRules(), *,
                   thresholds: bool = False) -> pd.DataFrame:
    """As ``analysis.status.current_status``: the baseline from the rollup (its median within 1%),
    the recent runs read exactly from the segments that hold them. With ``thresholds``, the
    columns of :func:`analysis.status.against_thresholds` too (each workflow's T from the
    rollup's configuration)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    recent_start = now - rules.recent
    answer = ask(snapshot, RunFilter(recent_start - rules.baseline, recent_start))
    hist = answer.table("run_hist")
    baseline = _quantiles(hist, ["workflow", "site"], {"baseline_s": 0.5})
    runs = answer.table("runs")
    if not runs.empty and not baseline.empty:
        last = runs.groupby(["workflow", "site"], dropna=False)["last_ok_ns"].max().rename("last_seen").reset_index()
        last["last_seen"] = pd.to_datetime(last["last_seen"], unit="ns", utc=True)
        baseline = baseline.merge(last, on=["workflow", "site"], how="left")
    else:
        baseline = baseline.assign(last_seen=pd.Series(dtype="datetime64[ns, UTC]"))
    recent = _recent_runs(snapshot, recent_start, now)
    status = judge_status(baseline, recent, rules)
    if not thresholds:
        return status
    config = snapshot.config
    judged = against_thresholds(recent, dict(config.thresholds_s), config.default_threshold_s, FRUSTRATED_SHARE)
    return status.merge(judged, on=["workflow", "site"], how="left")


def _recent_runs(snapshot: Snapshot, start: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    """Runs starting in ``[start, now]``: a unit's kept newest runs when they reach back past
    ``start`` for every workflow and site, else the unit read exactly."""
    inside, cut = snapshot.units_in(start, now + dt.timedelta(microseconds=1))
    kept = snapshot.top_runs
    beyond = float(pd.Timestamp(start).value)
    parts, read = [], []
    for unit in inside + cut:
        unit_kept = kept[kept["unit"].to_numpy() == unit] if not kept.empty else kept
        if unit_kept.empty:
            read.extend(snapshot.units[unit])
            continue
        unit_kept = unit_kept.assign(start_ns=_order_value(unit_kept, "start_ns"))
        if all(snapshot.kept_complete(unit, g, "start_ns", beyond)
               for _, g in unit_kept.groupby(["workflow", "site"], dropna=False)):
            ts = unit_kept["start"]
            parts.append(unit_kept[(ts >= pd.Timestamp(start)) & (ts <= pd.Timestamp(now))])
        else:
            read.extend(snapshot.units[unit])
    if read:
        parts.append(snapshot.read(read, RECENT_RUNS_QUERY, [start, now]))
    columns = ["workflow", "site", "start", "status", "waiting_s"]
    frame = _concat([p for p in parts if not p.empty])
    if frame.empty:
        return snapshot.read([], RECENT_RUNS_QUERY, [start, now])
    return frame[columns].sort_values("start", kind="stable").reset_index(drop=True)
