"""The current state of each workflow at each site, judged against its own recent past.

For clinicians and the service desk: is opening records normal, slow or failing here, since when,
and how long does it typically take. The numbers come from here; the wording from the dashboard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from analysis.store import Store
from store.schema import RUN_INTERRUPTED

__all__ = ["RECENT_RUNS_QUERY", "StatusRules", "against_thresholds", "between_checks", "current_status", "judge_status",
           "settled", "slow_limit_s", "streaks_from_before", "usual_gaps"]

NORMAL = "normal"
SLOW = "slow"
FAILING = "failing"
NO_DATA = "no recent runs"
BETWEEN_CHECKS = "between checks"  # no run in the recent window, none due yet at the pair's own cadence


@dataclass(frozen=True)
class StatusRules:
    """When a workflow counts as slow or failing.

    A run is *slow* when its waiting time exceeds ``max(baseline median x slow_factor, baseline
    median + slow_margin_s)``; the pair is slow when at least half of its recent runs are slow, and
    failing when at least half of them failed. The baseline is the median of ok runs in the
    ``baseline`` before the recent window.

    A pair without a run in the recent window has *no recent runs* only when its last run is older
    than ``stale_gaps`` times its usual gap between runs (see :func:`between_checks`): a workflow
    run every two hours is not missing at 40 minutes.
    """

    recent: dt.timedelta = dt.timedelta(minutes=30)
    baseline: dt.timedelta = dt.timedelta(days=7)
    slow_factor: float = 1.5
    slow_margin_s: float = 0.5
    stale_gaps: float = 2.0
    gap_runs: int = 10  # the usual gap is the median of the gaps between this many latest runs


def current_status(store: Store, now: dt.datetime, rules: StatusRules = StatusRules()) -> pd.DataFrame:
    """One row per workflow x site seen in the baseline or recent window, read exactly.

    Columns: ``workflow, site, state`` (normal, slow, failing, between checks, no recent runs),
    ``typical_s`` (median waiting time of recent ok runs), ``baseline_s``, ``recent_samples``,
    ``recent_failed``, ``since`` (start of the current slow or failing streak, UTC; None when
    normal), ``last_run``, ``usual_gap_s`` (see :func:`between_checks`). The figures are the query
    layer's (:func:`analysis.query.rows.current_status`).
    """
    from analysis.query.rows import current_status as status_of
    from analysis.query.sources import Definitions

    return settled(store, status_of(store, Definitions(), now, rules, exact=True), now, rules)


def settled(store: Store, status: pd.DataFrame, now: dt.datetime, rules: StatusRules = StatusRules()) -> pd.DataFrame:
    """``status`` (as the query layer judges the recent window) told from the runs around it: a
    streak that began before the recent window is dated from its first run
    (:func:`streaks_from_before`), and a pair between checks says how its last check went
    (:func:`between_checks`)."""
    return between_checks(store, streaks_from_before(store, status, now, rules), now, rules)


def _latest_runs(store: Store, workflow: str, site: str, start: dt.datetime, before: dt.datetime, limit: int,
                 *, inclusive: bool = True) -> pd.DataFrame:
    """The pair's latest ``limit`` runs in ``[start, before]`` (``before`` excluded unless
    ``inclusive``), newest first, without the probe's own interruptions."""
    return store.sql(
        f"SELECT start, status, waiting_s FROM runs WHERE workflow = ? AND site = ? AND start >= ? "
        f"AND start {'<=' if inclusive else '<'} ? AND status <> ? ORDER BY start DESC LIMIT ?",
        [workflow, site, start, before, RUN_INTERRUPTED, limit])


def usual_gaps(store: Store, pairs: pd.DataFrame, now: dt.datetime, rules: StatusRules = StatusRules()) -> dict[
        tuple[str, str], float]:
    """The usual time between runs of each ``workflow, site`` of ``pairs``, in seconds: the median
    gap between its latest ``rules.gap_runs + 1`` runs up to ``now`` within the baseline window.

    Read from the runs themselves, so it follows the cadence the pair was run at, the simulated
    history's as well as the live probe's. A pair with fewer than two runs has none.
    """
    gaps: dict[tuple[str, str], float] = {}
    for pair in pairs[["workflow", "site"]].drop_duplicates().itertuples(index=False):
        gap_s = _usual_gap_s(_cadence_runs(store, pair.workflow, pair.site, now, rules))
        if gap_s is not None:
            gaps[(pair.workflow, pair.site)] = gap_s
    return gaps


def _cadence_runs(store: Store, workflow: str, site: str, now: dt.datetime, rules: StatusRules) -> pd.DataFrame:
    """The pair's latest ``rules.gap_runs + 1`` runs up to ``now`` within the baseline window."""
    return _latest_runs(store, workflow, site, now - rules.recent - rules.baseline, now, rules.gap_runs + 1)


def _usual_gap_s(runs: pd.DataFrame) -> float | None:
    """The median gap between ``runs`` (newest first), in seconds; None with fewer than two."""
    if len(runs) < 2:
        return None
    return float((-runs["start"].diff()).dt.total_seconds().dropna().median())


def slow_limit_s(baseline_s: float, rules: StatusRules = StatusRules()) -> float:
    """The waiting time over which a run is slow against its pair's baseline."""
    return max(baseline_s * rules.slow_factor, baseline_s + rules.slow_margin_s)


def streaks_from_before(store: Store, status: pd.DataFrame, now: dt.datetime, rules: StatusRules = StatusRules(),
                        lookback: dt.timedelta = dt.timedelta(hours=24)) -> pd.DataFrame:
    """``status`` with each slow, failing or over-threshold streak dated from its first run, where
    the runs just before the recent window were already slow (failed, over T): a slowdown that began
    at 02:00 is "slow since 02:00" at 02:56, not since the edge of the last 30 minutes. The runs
    are read back from ``since`` to the latest one that was not bad; a streak that fills the whole
    ``lookback`` has ``since_open`` (``t_since_open``) set: it began before then."""
    status = status.assign(since_open=False, t_since_open=False)

    def first_of_streak(row: pd.Series, since: object, bad: Callable[[pd.DataFrame], pd.Series]
                        ) -> tuple[object, bool]:
        if since is None or pd.isna(since):
            return since, False
        moment = pd.Timestamp(since).to_pydatetime()
        before = _latest_runs(store, row["workflow"], row["site"], moment - lookback, moment, 1000, inclusive=False)
        flags = bad(before).to_numpy(dtype=bool)
        if flags.all():  # no good run in the lookback (or no run): the streak began before it
            return (before["start"].iloc[-1] if len(before) else since), len(before) > 0
        streak = int(flags.argmin())  # newest first: the bad runs before the first good one
        return (before["start"].iloc[streak - 1] if streak else since), False

    for i, row in status.iterrows():
        baseline_s = row.get("baseline_s")
        if row["state"] == FAILING:
            status.at[i, "since"], status.at[i, "since_open"] = first_of_streak(
                row, row["since"], lambda r: r["status"] != "ok")
        elif row["state"] == SLOW and baseline_s is not None and pd.notna(baseline_s):
            limit_s = slow_limit_s(float(baseline_s), rules)
            status.at[i, "since"], status.at[i, "since_open"] = first_of_streak(
                row, row["since"], lambda r: (r["status"] != "ok") | (r["waiting_s"].astype(float) > limit_s))
        if row.get("t_state") == OVER_T and pd.notna(row.get("threshold_s")):
            t = float(row["threshold_s"])
            status.at[i, "t_since"], status.at[i, "t_since_open"] = first_of_streak(
                row, row["t_since"], lambda r: (r["status"] != "ok") | (r["waiting_s"].astype(float) > t))
    return status


def between_checks(store: Store, status: pd.DataFrame, now: dt.datetime,
                   rules: StatusRules = StatusRules()) -> pd.DataFrame:
    """``status`` with each pair that has no recent runs but whose last run is younger than
    ``rules.stale_gaps`` usual gaps (:func:`usual_gaps`) in the state *between checks*, and a
    ``usual_gap_s`` column (NaN where not asked).

    The recent window is 30 minutes; a workflow run every five minutes live may have been run every
    two hours in the simulated history before it, and one run hourly has none most of the time.
    Neither is missing: the probe is only stopped when the pair's own cadence says a run is overdue.
    """
    status = status.assign(usual_gap_s=float("nan"), last_state=None, last_waiting_s=float("nan"))
    quiet = status[status["state"] == NO_DATA]
    if quiet.empty:
        return status
    for i, row in quiet.iterrows():
        latest = _cadence_runs(store, row["workflow"], row["site"], now, rules)
        gap_s = _usual_gap_s(latest)
        if gap_s is None or pd.isna(row["last_run"]):
            continue
        status.at[i, "usual_gap_s"] = gap_s
        overdue = max(rules.recent, dt.timedelta(seconds=rules.stale_gaps * gap_s))
        if pd.Timestamp(row["last_run"]) < pd.Timestamp(now) - overdue:
            continue
        status.at[i, "state"] = BETWEEN_CHECKS
        # How the last check went: a handover list that took 106 s at 02:00 is not "normal"
        # until 04:00 because no check was due in between.
        waiting_s, baseline_s = latest["waiting_s"].iloc[0], row["baseline_s"]
        status.at[i, "last_run"] = latest["start"].iloc[0]
        status.at[i, "last_waiting_s"] = float(waiting_s) if pd.notna(waiting_s) else float("nan")
        if latest["status"].iloc[0] != "ok":
            status.at[i, "last_state"] = FAILING
        elif (baseline_s is not None and pd.notna(baseline_s) and pd.notna(waiting_s)
              and float(waiting_s) > slow_limit_s(float(baseline_s), rules)):
            status.at[i, "last_state"] = SLOW
        else:
            status.at[i, "last_state"] = NORMAL
    return status


# The recent runs a status is judged on: parameters [recent start, now].
RECENT_RUNS_QUERY = (
    "SELECT workflow, site, start, status, waiting_s FROM runs WHERE start >= ? AND start <= ? ORDER BY start"
)


def judge_status(baseline: pd.DataFrame, recent: pd.DataFrame, rules: StatusRules = StatusRules()) -> pd.DataFrame:
    """The status rows of :func:`current_status` from its two inputs.

    Args:
        baseline: per ``workflow, site``: ``baseline_s`` (median waiting time of ok runs in the
            baseline window) and ``last_seen`` (start of the latest of them).
        recent: the runs of the recent window (``workflow, site, start, status, waiting_s``),
            sorted by start.
        rules: when a pair counts as slow or failing.
    """
    pairs = pd.concat([baseline[["workflow", "site"]], recent[["workflow", "site"]]]).drop_duplicates()
    rows = []
    for pair in pairs.itertuples(index=False):
        base = baseline[(baseline["workflow"] == pair.workflow) & (baseline["site"] == pair.site)]
        runs = recent[(recent["workflow"] == pair.workflow) & (recent["site"] == pair.site)]
        baseline_s = float(base["baseline_s"].iloc[0]) if not base.empty else None
        judged = _judge(runs, baseline_s, rules)
        if judged["last_run"] is None and not base.empty:
            judged["last_run"] = base["last_seen"].iloc[0]
        rows.append({"workflow": pair.workflow, "site": pair.site, **judged})
    columns = ["workflow", "site", "state", "typical_s", "baseline_s", "recent_samples", "recent_failed", "since",
               "last_run"]
    return pd.DataFrame(rows, columns=columns).sort_values(["workflow", "site"]).reset_index(drop=True)


def _judge(runs: pd.DataFrame, baseline_s: float | None, rules: StatusRules) -> dict[str, object]:
    runs = runs[runs["status"] != RUN_INTERRUPTED]  # the probe's own stop: shown, never judged
    ok = runs[runs["status"] == "ok"]
    result: dict[str, object] = {
        "typical_s": float(ok["waiting_s"].median()) if not ok.empty else None,
        "baseline_s": baseline_s,
        "recent_samples": len(runs),
        "recent_failed": int((runs["status"] != "ok").sum()),
        "since": None,
        "last_run": runs["start"].iloc[-1] if not runs.empty else None,
    }
    if runs.empty:
        return {**result, "state": NO_DATA}
    failed = runs["status"] != "ok"
    if baseline_s is None:
        slow = pd.Series(False, index=runs.index)
    else:
        slow = (runs["waiting_s"] > slow_limit_s(baseline_s, rules)) & ~failed
    if failed.mean() >= 0.5:
        return {**result, "state": FAILING, "since": _streak_start(runs, failed)}
    if (slow | failed).mean() >= 0.5 and slow.any():
        return {**result, "state": SLOW, "since": _streak_start(runs, slow | failed)}
    return {**result, "state": NORMAL}


def _streak_start(runs: pd.DataFrame, bad: pd.Series) -> pd.Timestamp:
    """Start of the latest run that began the current streak (the first bad run after the last good one)."""
    good_positions = [i for i, is_bad in enumerate(bad.to_numpy()) if not is_bad]
    after = good_positions[-1] + 1 if good_positions else 0
    bad_after = [i for i in range(after, len(runs)) if bad.iloc[i]]
    first = bad_after[0] if bad_after else int(bad.to_numpy().nonzero()[0][0])
    return runs["start"].iloc[first]


# Judged against the workflow's threshold T as well as against its own past: a slowdown that
# happens every afternoon is as usual, and still not normal.
WITHIN_T = "within T"
OVER_T = "over T"  # the recent ok runs' median is over T
SLOW_AT_TIMES = "slow at times"  # at least ``very_slow_share`` of recent runs over 4T (or failed)


def against_thresholds(recent: pd.DataFrame, thresholds_s: Mapping[str, float], default_threshold_s: float,
                       very_slow_share: float = 0.1) -> pd.DataFrame:
    """The recent runs of each workflow x site judged against the workflow's threshold T.

    Args:
        recent: the recent window's runs (``workflow, site, start, status, waiting_s``), by start.
        thresholds_s: T per workflow; others get ``default_threshold_s``.
        default_threshold_s: T of a workflow not in ``thresholds_s``.
        very_slow_share: the share of recent runs over 4T (Apdex's frustrated; failed runs count)
            from which the pair is slow at times.

    Returns: ``workflow, site, threshold_s, t_state`` (within T, over T, slow at times),
    ``t_since`` (the first recent run over T, or over 4T when slow at times; None when within T),
    ``judged`` (recent runs), ``very_slow`` (of them over 4T or failed), ``slowest_s`` (of ok runs).
    """
    columns = ["workflow", "site", "threshold_s", "t_state", "t_since", "judged", "very_slow", "slowest_s"]
    recent = recent[recent["status"] != RUN_INTERRUPTED]
    rows = []
    for (workflow, site), runs in recent.groupby(["workflow", "site"], sort=True):
        t = float(thresholds_s.get(workflow, default_threshold_s))
        ok = runs["status"] == "ok"
        waiting = runs["waiting_s"].astype(float)
        very_slow = ~ok | (waiting > 4 * t)
        state, since = WITHIN_T, None
        if ok.any() and float(waiting[ok].median()) > t:
            state, since = OVER_T, runs.loc[ok & (waiting > t), "start"].iloc[0]
        elif very_slow.mean() >= very_slow_share and (ok & (waiting > 4 * t)).any():
            state, since = SLOW_AT_TIMES, runs.loc[very_slow, "start"].iloc[0]
        rows.append({"workflow": workflow, "site": site, "threshold_s": t, "t_state": state, "t_since": since,
                     "judged": len(runs), "very_slow": int(very_slow.sum()),
                     "slowest_s": float(waiting[ok].max()) if ok.any() else None})
    return pd.DataFrame(rows, columns=columns)
