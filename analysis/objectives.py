"""Experience objectives: whole workflow runs as a clinician waits for them.

A run is good when it succeeded (status ``ok``) and its waiting time is at most the objective's
``threshold_s``. Runs are judged in short windows (``window_minutes``, aligned on the clock in
UTC: 08:00, 08:15, ...) per site and clinical period, and budgeted as OpenSLO does:

- ``Occurrences``: good runs / all runs;
- ``Timeslices``: good windows / windows with runs, a window good when its ratio reaches
  ``time_slice_target``;
- ``RatioTimeslices``: the mean of the windows' ratios.

Windows without runs are left out (a probe that did not run says nothing about experience; missed
slots are reported separately), and so are runs the probe stopped itself (``interrupted``:
Ctrl-C), which are facts about the probe, not the EPR. An objective without periods judges all hours, labelled
``all hours``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.apdex import Apdex, apdex
from analysis.budget import BudgetResult, budget_from_ratios
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig
from analysis.percentiles import Percentile, percentile
from analysis.query.objectives import apdex_from_counts, objective_figures
from analysis.store import FrameCache, Store
from store.schema import RUN_INTERRUPTED

__all__ = ["ALL_HOURS", "ObjectiveResult", "evaluate_objective", "judge_runs", "judged_runs",
           "objective_runs"]

ALL_HOURS = "all hours"
WINDOW_COLUMNS = ("site", "period", "window_start", "good", "total", "ratio", "good_window")
SCOPE_COLUMNS = (
    "site", "period", "runs", "good", "share_good", "p50_s", "p90_s", "p90_small_sample", "windows",
    "good_windows",
    "value", "met", "budget_remaining", "apdex", "apdex_samples",
)


@dataclass(frozen=True)
class ObjectiveResult:
    """An experience objective judged over ``[start, end)``.

    Attributes:
        objective: the objective.
        start: window start (UTC).
        end: window end, exclusive (UTC).
        overall: the budgeting method's result over every site and period.
        scopes: one row per site x period: ``site, period, runs, good, share_good, p50_s, p90_s``
            (pooled waiting times of the scope's runs), ``p90_small_sample`` (too few runs for a
            trustworthy p90: no confidence interval exists), ``windows, good_windows, value`` (the
            budgeting method's value), ``met, budget_remaining, apdex`` (display with T),
            ``apdex_samples``.
        windows: one row per site x period x window with runs: ``site, period, window_start,
            good, total, ratio, good_window`` (ratio meets the slice target, or the objective's
            target for other methods).
        apdex: Apdex of every run in scope, with the objective's T.
        waiting_p90: pooled p90 of the waiting times of every run in scope.
    """

    objective: ObjectiveConfig
    start: dt.datetime
    end: dt.datetime
    overall: BudgetResult
    scopes: pd.DataFrame
    windows: pd.DataFrame
    apdex: Apdex
    waiting_p90: Percentile

    @property
    def met(self) -> bool | None:
        """Met everywhere: overall and in every scope with runs (``None`` without runs)."""
        if self.overall.met is None:
            return None
        return bool(self.overall.met) and bool(self.scopes["met"].fillna(True).all())

    @property
    def breached_scopes(self) -> pd.DataFrame:
        """The scopes (site x period) whose budgeting result misses the target."""
        return self.scopes[self.scopes["met"] == False].reset_index(drop=True)  # noqa: E712


def objective_runs(
    store: Store | FrameCache,
    objective: ObjectiveConfig,
    calendar: ClinicalCalendar | None,
    start: dt.datetime,
    end: dt.datetime,
) -> pd.DataFrame:
    """The runs an objective judges, one row per run and period it falls in.

    Returns:
        The ``runs`` frame of the objective's workflow and sites with a ``period`` column (the
        period's name, or ``all hours``) and a bool ``good`` column (through an
        :class:`analysis.store.FrameCache`, computed once and shared: treat it as read-only).
    """
    def judged() -> pd.DataFrame:
        runs = store.runs(start, end, workflow=objective.workflow, site=objective.sites or None)
        return judge_runs(runs, objective, calendar)

    if isinstance(store, FrameCache):  # labelled once per report (the frame is shared)
        return store.memo(("objective_runs", objective.model_dump_json(), calendar, start, end),
                          judged)
    return judged()


def judged_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a judgement counts: all but those the probe stopped itself (``interrupted``,
    Ctrl-C), which are facts about the probe, not the EPR (shown, never judged)."""
    if runs.empty or "status" not in runs:
        return runs
    keep = runs["status"].astype(str) != RUN_INTERRUPTED
    return runs if keep.all() else runs[keep.to_numpy()]


def judge_runs(
    runs: pd.DataFrame, objective: ObjectiveConfig, calendar: ClinicalCalendar | None
) -> pd.DataFrame:
    """Label ``runs`` (a ``runs`` frame) with the objective's periods and judge each run.

    A run in two of the objective's periods appears once per period.

    Raises:
        ValueError: the objective names periods but there is no calendar.
    """
    runs = judged_runs(runs)
    good = (runs["status"].astype(str) == "ok") & (
        runs["waiting_s"].astype("float64") <= objective.threshold_s
    )
    runs = runs.assign(good=good.fillna(False).astype(bool))
    if not objective.periods:
        return runs.assign(period=ALL_HOURS)
    if calendar is None:
        raise ValueError(f"objective {objective.name!r} names periods: a calendar is needed")
    parts = [runs[calendar.mask(runs, name)].assign(period=name) for name in objective.periods]
    return pd.concat(parts, ignore_index=True) if parts else runs.iloc[0:0].assign(period="")


def _windows(runs: pd.DataFrame, objective: ObjectiveConfig, slice_target: float) -> pd.DataFrame:
    if runs.empty:
        return pd.DataFrame(columns=list(WINDOW_COLUMNS))
    length = pd.Timedelta(minutes=objective.window_minutes)
    frame = runs.assign(window_start=pd.to_datetime(runs["start"]).dt.floor(length))
    grouped = frame.groupby(["site", "period", "window_start"], sort=True)["good"]
    table = grouped.agg(good="sum", total="count").reset_index()
    table["good"] = table["good"].astype("int64")
    table["total"] = table["total"].astype("int64")
    table["ratio"] = table["good"] / table["total"]
    table["good_window"] = table["ratio"] >= slice_target
    return table[list(WINDOW_COLUMNS)]


def _budget(objective: ObjectiveConfig, good: np.ndarray, windows: pd.DataFrame) -> BudgetResult:
    return budget_from_ratios(
        objective.budgeting_method, objective.target,
        good=good, ratios=windows["ratio"].to_numpy(dtype=np.float64),
        time_slice_target=objective.time_slice_target,
    )


def evaluate_objective(
    store: Store | FrameCache,
    objective: ObjectiveConfig,
    calendar: ClinicalCalendar | None,
    start: dt.datetime,
    end: dt.datetime,
) -> ObjectiveResult:
    """Judge an experience objective over ``[start, end)``, per site x period and overall.

    Args:
        store: the store to read runs from.
        objective: the objective.
        calendar: the clinical calendar (needed when the objective names periods).
        start: window start, timezone-aware.
        end: window end (exclusive), timezone-aware.

    Raises:
        ValueError: naive bounds, or periods without a calendar.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if isinstance(store, FrameCache):  # one report asks the same question more than once
        key = ("objective", objective.model_dump_json(), calendar, start, end)
        return store.memo(key, lambda: _evaluate_in_store(store, objective, calendar, start, end))
    return _evaluate_in_store(store, objective, calendar, start, end)


def _evaluate_in_store(store: Store | FrameCache, objective: ObjectiveConfig,
                       calendar: ClinicalCalendar | None, start: dt.datetime, end: dt.datetime
                       ) -> ObjectiveResult:
    """:func:`_evaluate`'s figures computed by DuckDB: the runs are never loaded."""
    figures = objective_figures(store, objective, calendar, start, end)
    slice_target = objective.time_slice_target or objective.target
    windows = figures.windows
    length_us = objective.window_minutes * 60 * 1_000_000
    windows = pd.DataFrame({
        "site": windows["site"], "period": windows["period"],
        "window_start": pd.to_datetime(windows["window_index"].astype("int64") * length_us, unit="us", utc=True),
        "good": windows["good"].astype("int64"), "total": windows["total"].astype("int64"),
    }).sort_values(["site", "period", "window_start"], kind="stable").reset_index(drop=True)
    windows["ratio"] = windows["good"] / windows["total"]
    windows["good_window"] = windows["ratio"] >= slice_target
    windows = windows[list(WINDOW_COLUMNS)]
    t_s = float(objective.apdex_t)
    rows = []
    for scope in sorted(figures.scopes.itertuples(), key=lambda r: (str(r.site), str(r.period))):
        site, period = str(scope.site), str(scope.period)
        in_scope = windows[(windows["site"] == site) & (windows["period"] == period)]
        n, good = int(scope.runs), int(scope.good)
        result = _budget(objective, _events(good, n), in_scope)
        p50, p90 = figures.percentiles[((site, period), 0.5)], figures.percentiles[((site, period), 0.9)]
        a = apdex_from_counts(t_s, n, int(scope.satisfied), int(scope.tolerating), int(scope.failed))
        rows.append({
            "site": site, "period": period, "runs": n, "good": good, "share_good": good / n,
            "p50_s": p50.value, "p90_s": p90.value, "p90_small_sample": p90.small_sample,
            "windows": len(in_scope), "good_windows": int(in_scope["good_window"].sum()),
            "value": result.value, "met": result.met, "budget_remaining": result.budget_remaining,
            "apdex": a.display, "apdex_samples": a.samples,
        })
    scopes = pd.DataFrame(rows, columns=list(SCOPE_COLUMNS))
    overall = _budget(objective, _events(figures.labelled_good, figures.labelled), windows)
    u = figures.unique
    return ObjectiveResult(
        objective=objective, start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC),
        overall=overall, scopes=scopes, windows=windows.reset_index(drop=True),
        apdex=apdex_from_counts(t_s, u["runs"], u["satisfied"], u["tolerating"], u["failed"]),
        waiting_p90=figures.percentiles[(None, 0.9)],
    )


def _events(good: int, total: int) -> np.ndarray:
    """``total`` events of which ``good`` were good, as the budgeting methods take them."""
    return np.arange(total) < good


def _evaluate(
    runs: pd.DataFrame, objective: ObjectiveConfig, start: dt.datetime, end: dt.datetime
) -> ObjectiveResult:
    slice_target = objective.time_slice_target or objective.target
    windows = _windows(runs, objective, slice_target)
    rows = []
    for (site, period), scope in runs.groupby(["site", "period"], sort=True):
        in_scope = windows[(windows["site"] == site) & (windows["period"] == period)]
        result = _budget(objective, scope["good"].to_numpy(dtype=bool), in_scope)
        waits = scope["waiting_s"].astype("float64").dropna().to_numpy()
        p90 = percentile(waits, 0.9)
        a = apdex(scope["waiting_s"].astype("float64").fillna(np.inf).to_numpy(), objective.apdex_t,
                  failed=(scope["status"].astype(str) != "ok").to_numpy())
        rows.append({
            "site": site, "period": period, "runs": len(scope), "good": int(scope["good"].sum()),
            "share_good": float(scope["good"].mean()),
            "p50_s": percentile(waits, 0.5).value, "p90_s": p90.value,
            "p90_small_sample": p90.small_sample,
            "windows": len(in_scope), "good_windows": int(in_scope["good_window"].sum()),
            "value": result.value, "met": result.met, "budget_remaining": result.budget_remaining,
            "apdex": a.display, "apdex_samples": a.samples,
        })
    scopes = pd.DataFrame(rows, columns=list(SCOPE_COLUMNS))
    overall = _budget(objective, runs["good"].to_numpy(dtype=bool), windows)
    unique = runs.drop_duplicates("trace_id")
    waits = unique["waiting_s"].astype("float64")
    overall_apdex = apdex(waits.fillna(np.inf).to_numpy(), objective.apdex_t,
                          failed=(unique["status"].astype(str) != "ok").to_numpy())
    return ObjectiveResult(
        objective=objective, start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC),
        overall=overall, scopes=scopes, windows=windows.reset_index(drop=True),
        apdex=overall_apdex, waiting_p90=percentile(waits.dropna().to_numpy(), 0.9),
    )
