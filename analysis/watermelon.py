"""Watermelon findings: where the SLA is green and users wait, and the reverse.

For a compliance window, each SLA is judged as the contract computes it
(:func:`analysis.sla.evaluate_sla`) and each experience objective on the workflows the SLA covers
as users feel it (:func:`analysis.objectives.evaluate_objective`). Then:

- **watermelon**: the SLA is met and the objective is breached in a scope (workflow x site x
  period): one finding per breached scope;
- **reverse**: the SLA is breached and the objective is met in every scope (e.g. a slow nightly
  batch nobody waits on): one finding per such objective.

Each finding carries both figures with their sample counts and the lenses that explain the gap,
quantified:

- ``time_dilution``: the workflow's p90 waiting at the site over all hours vs in the period (for
  the reverse: where in the day the SLA's bad requests fell);
- ``per_request``: the SLA's per-request figure for the scope's requests vs the per-workflow p90,
  and how many requests a run makes in series;
- ``mean_vs_tail``: the mean waiting vs the p90 and the share of runs over the threshold;
- ``pooled_sites``: all sites pooled vs this site (and the step that differs most);
- ``slow_but_up``: the slow runs whose every request succeeded, which availability counts as up.

The **dominant step** of a watermelon is the step whose time grew against its own baseline: for
each run of the scope over the threshold, each step's duration above that step's median in the
same site's runs outside the period (for an objective over all hours: the site's runs within the
threshold), summed over the runs; a step that is always slow, or a change that slows every run in
and out of the period alike, is not what makes the period different. "Most" is said of a step
only when it holds more than half of the excess. For a reverse
finding it is the step with the largest share of the SLA's bad requests' excess (duration above
the SLA's threshold).

**Clinician time lost** = sum over runs of max(0, waiting - T). Probe runs sample experience; the
figure is scaled to clinicians by the configured task volume (:class:`TaskVolumeConfig`:
tasks per day at a site in the period) times the days the period occurred, assuming each task
waits as the probe's runs did. The assumption is stated in the finding's text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, SLAConfig, TaskVolumeConfig
from analysis.medians import exact_medians
from analysis.names import hour_ranges, step_title
from analysis.objectives import (
    ALL_HOURS,
    ObjectiveResult,
    evaluate_objective,
    judge_runs,
    objective_runs,
)
from analysis.percentiles import percentile
from analysis.sla import (
    SLAResult,
    counted_requests,
    evaluate_sla,
    in_sla_hours,
    scope_request_figures,
    sla_hours_text,
    sla_window,
)
from analysis.store import FrameCache, Store

__all__ = ["LENS_TITLES", "Finding", "Lens", "TimeLost", "duration_text", "find_watermelons", "time_lost"]

SPREAD_SHARE = 0.5  # "most" is said of a step only above this share of the excess
LENS_TITLES = {
    "time_dilution": "All hours against the clinical period",
    "per_request": "Each request against the whole task",
    "mean_vs_tail": "The average against the slow runs",
    "pooled_sites": "All sites pooled against this site",
    "slow_but_up": "Slow but counted as up",
    "api_vs_screen": "The API was fast, the screen was not",
    "server_time": "The EPR's servers against the wait",
}
LensName = Literal["time_dilution", "per_request", "mean_vs_tail", "pooled_sites", "slow_but_up", "api_vs_screen",
                   "server_time"]


@dataclass(frozen=True)
class Lens:
    """One aggregation that hid (or revealed) the gap, quantified.

    Attributes:
        name: ``time_dilution``, ``per_request``, ``mean_vs_tail``, ``pooled_sites``,
            ``slow_but_up``; on stories, ``api_vs_screen`` (:mod:`analysis.screen`) and
            ``server_time`` (:mod:`analysis.server_time`).
        text: the figures in words, each with its sample count.
        figures: the numbers behind the text.
        sla: the SLA whose view the lens describes (``None`` when it does not depend on one).
    """

    name: str
    text: str
    figures: dict[str, float] = field(default_factory=dict)
    sla: str | None = None

    @property
    def title(self) -> str:
        """The lens in plain words: "All hours against the clinical period", not ``time_dilution``."""
        return LENS_TITLES.get(self.name, self.name.replace("_", " ").capitalize())


@dataclass(frozen=True)
class TimeLost:
    """Clinician time lost in a scope.

    Attributes:
        observed_s: sum over the probe's runs of max(0, waiting - T).
        runs: probe runs counted.
        mean_excess_s: ``observed_s / runs``.
        tasks: the clinicians' tasks it is scaled to (``None`` without a task volume).
        scaled_hours: ``mean_excess_s * tasks / 3600`` (``None`` without a task volume).
        assumption: the assumption, in words.
    """

    observed_s: float
    runs: int
    mean_excess_s: float
    tasks: float | None
    scaled_hours: float | None
    assumption: str


@dataclass(frozen=True)
class Finding:
    """A scope where the SLA and the experience disagree.

    Attributes:
        kind: ``watermelon`` (SLA met, experience breached) or ``reverse``.
        sla: the SLA's result over the compliance window.
        objective: the objective's name.
        workflow: the workflow.
        site: the site (``None``: every site, for a reverse finding).
        period: the clinical period, or ``all hours``.
        experience: the objective's figures in the scope: ``value`` (budgeting method's),
            ``target``, ``runs``, ``good``, ``p90_s``, ``apdex``, ``method``.
        lenses: the lenses, most telling first.
        dominant_step: the step with the largest share of the excess (``None`` when none).
        dominant_step_share: that share, in [0, 1].
        time_lost: clinician time lost (``None`` for a reverse finding).
        summary: the finding in plain words, for managers.
        other_slas: further SLAs met (for a watermelon) or breached (for a reverse finding) in
            the same scope; their own lenses are in ``lenses``, marked with their name.
    """

    kind: str
    sla: SLAResult
    objective: str
    workflow: str
    site: str | None
    period: str
    experience: dict[str, object]
    lenses: list[Lens]
    dominant_step: str | None
    dominant_step_share: float
    time_lost: TimeLost | None
    summary: str
    other_slas: list[SLAResult] = field(default_factory=list)

    @property
    def slas(self) -> list[SLAResult]:
        """Every SLA that tells this story: ``sla`` first, then ``other_slas``."""
        return [self.sla, *self.other_slas]

    def lens(self, name: str) -> Lens | None:
        """The lens called ``name``, if the finding has it."""
        return next((lens for lens in self.lenses if lens.name == name), None)


def _fmt_s(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f} s"


def duration_text(hours: float) -> str:
    """A length of time in words: "14.2 hours", "35 minutes", "1 minute", "under a minute"."""
    if math.isnan(hours):
        return "an unknown amount"
    if hours >= 1:
        return f"{hours:.1f} hours"
    minutes = round(hours * 60)
    if minutes < 1:
        return "under a minute" if hours > 0 else "no time"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _p(values: pd.Series | np.ndarray, q: float) -> tuple[float, int]:
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    p = percentile(data, q)
    return p.value, p.samples


def time_lost(
    waiting_s: Sequence[float] | np.ndarray | pd.Series,
    threshold_s: float,
    workflow: str,
    site: str,
    period: str,
    days: int,
    volume: TaskVolumeConfig | None,
) -> TimeLost:
    """Clinician time lost: sum of max(0, waiting - T) over runs, scaled by a task volume.

    Args:
        waiting_s: the probe runs' waiting times (failed runs' included as measured).
        threshold_s: T, the waiting a clinician accepts.
        workflow: the workflow (for the text).
        site: the site (for the text).
        period: the period (for the text).
        days: days the period occurred in the window with probe runs (the scaling's
            multiplier).
        volume: tasks per day at the site in the period; ``None``: not scaled.
    """
    waits = np.asarray(waiting_s, dtype=np.float64)
    waits = waits[~np.isnan(waits)]
    excess = np.maximum(0.0, waits - threshold_s)
    observed = float(excess.sum())
    runs = int(waits.size)
    mean = observed / runs if runs else math.nan
    where = f"at {site}" + ("" if period == ALL_HOURS else f" in {period}")
    if volume is None:
        return TimeLost(observed, runs, mean, None, None, (
            f"{observed / 60:.1f} min beyond {threshold_s:g} s across {runs} probe runs; no task "
            f"volume configured for {workflow} {where}, so not scaled to clinicians"
        ))
    tasks = volume.per_day * days
    hours = mean * tasks / 3600 if runs else math.nan
    source = f" ({volume.assumption})" if volume.assumption else ""
    return TimeLost(observed, runs, mean, tasks, hours, (
        f"assumes {volume.per_day:g} {workflow} tasks a day {where}{source} on the {days} "
        f"day{'' if days == 1 else 's'} measured, each waiting like the probe's runs: {mean:.1f} s beyond {threshold_s:g} s on "
        f"average"
    ))


def _volume(volumes: Sequence[TaskVolumeConfig], workflow: str, site: str, period: str
            ) -> TaskVolumeConfig | None:
    wanted = None if period == ALL_HOURS else period
    for v in volumes:
        if v.workflow == workflow and v.period == wanted and (not v.sites or site in v.sites):
            return v
    return None


def _measured_days(calendar: ClinicalCalendar | None, period: str, site: str,
                   starts: pd.Series, start: dt.datetime, end: dt.datetime) -> int:
    """Days the period occurred in the window with at least one probe run in it (for all
    hours: UTC dates with runs): the days the probe's runs represent."""
    times = pd.to_datetime(starts)
    if times.empty:
        return 0
    if period == ALL_HOURS or calendar is None:
        return int(times.dt.floor("D").nunique())
    values = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return sum(
        1 for lo, hi in calendar.occurrences(period, site, start, end)
        if ((values >= np.datetime64(lo.replace(tzinfo=None)))
            & (values < np.datetime64(hi.replace(tzinfo=None)))).any()
    )


Scope = tuple[str, str]  # (site, period)


def _step_figures(
    store: Store | FrameCache, objective: ObjectiveConfig, start: dt.datetime, end: dt.datetime,
    all_runs: pd.DataFrame, scopes: Sequence[Scope], bad_ids: Sequence[pd.Series],
    period_runs: pd.DataFrame,
) -> pd.DataFrame:
    """Per scope and step, in DuckDB over the ``steps`` view (three reads of the workflow's steps,
    none holding them): ``excess_s`` (role ``bad``: the scope's bad runs' sum of each step's
    excess over its median in the scope's baseline: the site's ok runs outside the period, or
    within the threshold for all hours) and ``median_s`` (roles ``here`` and ``others``: the
    median per run at the scope's site, and at the other sites, in its period).

    A run's steps are at the run's site (one probe runs a workflow).
    """
    parts = []
    ok = all_runs["status"].astype(str) == "ok"
    for i, ((site, period), bad) in enumerate(zip(scopes, bad_ids, strict=True)):
        in_period = period_runs[period_runs["period"] == period]
        here = (in_period["site"] == site).to_numpy()
        at_site = ok & (all_runs["site"] == site)
        if period == ALL_HOURS:
            base = all_runs.loc[at_site & all_runs["good"], "trace_id"]
        else:
            base = all_runs.loc[at_site & ~all_runs["trace_id"].isin(set(in_period["trace_id"])),
                                "trace_id"]
        parts += [
            pd.DataFrame({"trace_id": base.astype(str), "role": "base", "scope": i}),
            pd.DataFrame({"trace_id": bad.astype(str), "role": "bad", "scope": i}),
            pd.DataFrame({"trace_id": in_period["trace_id"][here].astype(str), "role": "here",
                          "scope": i}),
            pd.DataFrame({"trace_id": in_period["trace_id"][~here].astype(str), "role": "others",
                          "scope": i}),
        ]
    flagged = pd.concat(parts, ignore_index=True).drop_duplicates()
    # Runs are numbered here, so that DuckDB sums each run's steps grouped by a number rather
    # than by a 32-character trace id.
    codes, ids = pd.factorize(flagged["trace_id"])
    runs = pa.table({"trace_id": pa.array(np.asarray(ids, dtype=object), pa.string()),
                     "run": pa.array(np.arange(len(ids), dtype=np.int64))})
    flags = pa.table({"run": pa.array(codes.astype(np.int64)),
                      "role": pa.array(flagged["role"].to_numpy(dtype=object), pa.string()),
                      "scope": pa.array(flagged["scope"].to_numpy(dtype=np.int64))})
    sites = "" if not objective.sites else " AND list_contains(?, site)"
    params: list[object] = [start.astimezone(dt.UTC), end.astimezone(dt.UTC), objective.workflow]
    params += [list(objective.sites)] if objective.sites else []
    tables = {"step_runs": runs, "step_flags": flags}
    # A run has one step span per step (step names are unique within a workflow): its time is
    # the span's, with no per-run sums grouped; the medians are found through histograms
    # (analysis.medians) rather than held whole.
    source = f"""
        SELECT f.role, f.scope, st.step, coalesce(st.duration_s, 0.0) AS d
        FROM steps AS st JOIN step_runs AS r ON r.trace_id = st.trace_id
        JOIN step_flags AS f ON f.run = r.run
        WHERE st.start >= ? AND st.start < ? AND st.workflow = ?{sites} AND st.step IS NOT NULL"""
    medians = exact_medians(store, source, params, ["role", "scope", "step"], ["d"], tables=tables)
    reference = medians.loc[medians["role"] == "base", ["scope", "step", "d"]]
    excess = store.sql(f"""
        SELECT s.role, s.scope, s.step, sum(greatest(s.d - coalesce(b.d, 0.0), 0.0)) AS excess_s
        FROM ({source}) AS s LEFT JOIN reference AS b ON b.scope = s.scope AND b.step = s.step
        WHERE s.role <> 'base' GROUP BY ALL""", params, {**tables, "reference": reference})
    figures = medians[medians["role"] != "base"].rename(columns={"d": "median_s"}).merge(
        excess, on=["role", "scope", "step"], how="inner")
    return figures.sort_values(["role", "scope", "step"]).reset_index(drop=True)[
        ["role", "scope", "step", "median_s", "excess_s"]]


def _dominant_step(figures: pd.DataFrame, scope: int) -> tuple[str | None, float]:
    """The step with the largest share of the scope's excess waiting, and that share."""
    rows = figures[(figures["role"] == "bad") & (figures["scope"] == scope)]
    if rows.empty:
        return None, math.nan
    excess = pd.Series(rows["excess_s"].to_numpy(dtype=np.float64), index=rows["step"].astype(str))
    excess = excess.sort_values(ascending=False)
    total = float(excess.sum())
    if total <= 0:
        return None, math.nan
    return str(excess.index[0]), float(excess.iloc[0] / total)


def _site_step_gap(figures: pd.DataFrame, scope: int) -> tuple[str | None, float]:
    """The step whose median (per run) is most above the other sites' in the same period."""
    def medians(role: str) -> pd.Series:
        rows = figures[(figures["role"] == role) & (figures["scope"] == scope)]
        return pd.Series(rows["median_s"].to_numpy(dtype=np.float64),
                         index=rows["step"].astype(str))

    gap = (medians("here") - medians("others")).dropna()
    if gap.empty or gap.max() <= 0:
        return None, math.nan
    return str(gap.idxmax()), float(gap.max())


def _sla_figure(figures: pd.Series, sla: SLAConfig) -> str:
    """The SLA's own figure over a scope's requests (a row of
    :func:`analysis.sla.scope_request_figures`)."""
    n, durations = int(figures["requests"]), int(figures["durations"])
    share = int(figures["good"]) / n if n else math.nan
    if sla.metric == "share_under" and sla.threshold_s is not None:
        return f"{share:.1%} of requests within {sla.threshold_s:g} s (n={n})"
    if sla.metric == "mean":
        return f"a request took {_fmt_s(float(figures['mean_s']))} on average (n={durations})"
    if sla.metric == "availability":
        return f"{share:.2%} of requests succeeded (n={n})"
    q = (sla.percentile or 95) / 100
    return f"{_in_100(q)} requests within {_fmt_s(float(figures['quantile_s']))} (n={durations})"


def _in_100(q: float) -> str:
    """A percentile in words: 0.9 -> "9 in 10", 0.95 -> "95 in 100"."""
    tenths = q * 10
    return f"{tenths:g} in 10" if abs(tenths - round(tenths)) < 1e-9 else f"{q * 100:g} in 100"


def _watermelon(
    sla: SLAConfig, sla_result: SLAResult, objective: ObjectiveConfig, result: ObjectiveResult,
    scope: pd.Series, all_runs: pd.DataFrame, period_runs: pd.DataFrame,
    requests: pd.Series, steps: pd.DataFrame, index: int, calendar: ClinicalCalendar | None,
    volumes: Sequence[TaskVolumeConfig], base_dir: Path | None, names: Callable[[str], str] = str,
) -> Finding:
    """One watermelon finding; ``requests`` is the scope's row of
    :func:`analysis.sla.scope_request_figures` and ``steps`` the step figures of
    :func:`_step_figures`, in which the scope is number ``index``. ``names`` gives the display
    name of a site or workflow id."""
    site, period = str(scope["site"]), str(scope["period"])
    site_name, workflow_name = names(site), names(objective.workflow)
    t = objective.threshold_s
    here = period_runs[(period_runs["site"] == site) & (period_runs["period"] == period)]
    here_waits = here["waiting_s"].astype("float64")
    p90, n90 = _p(here_waits, 0.9)
    lenses: list[Lens] = []

    # Time dilution: every hour the SLA counts at this site vs this period.
    site_runs = all_runs[all_runs["site"] == site]
    site_runs = site_runs[in_sla_hours(site_runs["start"], sla, base_dir)]
    site_all = site_runs["waiting_s"].astype("float64")
    all_p90, all_n = _p(site_all, 0.9)
    # A lens is told only where it shows what hid the wait (here worse than the SLA's view); one
    # that shows the opposite would argue against the finding it explains.
    all_within = float((site_all <= t).mean()) if len(site_all) else math.nan
    within = float((here_waits <= t).mean()) if len(here_waits) else math.nan
    if period != ALL_HOURS and within < all_within:
        lenses.append(Lens("time_dilution", (
            f"over all the hours the SLA counts ({sla_hours_text(sla)}), {all_within:.0%} of runs at "
            f"{site_name} were within {t:g} s and 9 in 10 within {_fmt_s(all_p90)} (n={all_n}); during "
            f"{period}, {within:.0%} within {t:g} s and 9 in 10 within {_fmt_s(p90)} (n={n90})"
        ), {"all_hours_p90_s": all_p90, "all_hours_runs": all_n, "all_hours_within": all_within,
            "period_p90_s": p90, "period_runs": n90, "period_within": within}, sla.name))

    # Per request vs per workflow.
    req_p95, req_n = float(requests["p95_s"]), int(requests["durations"])
    per_run = int(requests["requests"]) / len(here) if len(here) else math.nan
    lenses.append(Lens("per_request", (
        f"{_sla_figure(requests, sla)}, 95 in 100 requests within {_fmt_s(req_p95)} (n={req_n}); the whole "
        f"task: 9 in 10 runs within {_fmt_s(p90)} (n={n90}), each run making {per_run:.1f} requests one "
        f"after another"
    ), {"request_p95_s": req_p95, "requests": req_n, "workflow_p90_s": p90, "runs": n90,
        "requests_per_run": per_run}, sla.name))

    # Mean vs tail.
    mean = float(here_waits.mean()) if len(here_waits) else math.nan
    over = float((here_waits > t).mean()) if len(here_waits) else math.nan
    if mean <= t < p90:  # an average within T hides a tail beyond it
        lenses.append(Lens("mean_vs_tail", (
            f"the average run waited {_fmt_s(mean)}, but 1 in 10 waited over {_fmt_s(p90)} (n={n90}); "
            f"{over:.0%} of runs waited over {t:g} s"
        ), {"mean_s": mean, "p90_s": p90, "share_over_threshold": over}))

    # Pooled sites vs this site.
    in_period = period_runs[period_runs["period"] == period]
    others = in_period[in_period["site"] != site]["waiting_s"].astype("float64")
    diff = float(here_waits.median() - others.median()) if len(others) and len(here_waits) else math.nan
    pooled, pooled_n = _p(in_period["waiting_s"], 0.9) if len(others) else (math.nan, 0)
    if p90 > pooled or diff > 0:  # the site slower than the others: pooling them hid it
        gap_step, gap_s = _site_step_gap(steps, index)
        text = (f"all sites together: 9 in 10 runs within {_fmt_s(pooled)} (n={pooled_n}); {site_name}: "
                f"9 in 10 within {_fmt_s(p90)} (n={n90})")
        per_request_gap = diff / per_run if per_run and not math.isnan(per_run) else math.nan
        if diff > 0:
            text += (f"; its median run waited {diff:.2f} s longer than the other sites', "
                     f"{per_request_gap * 1000:.0f} ms on each of its {per_run:.1f} requests one after another")
            if gap_step is not None:
                text += f" (most in the {step_title(gap_step)} step, +{gap_s:.2f} s)"
        lenses.append(Lens("pooled_sites", text, {
            "pooled_p90_s": pooled, "pooled_runs": pooled_n, "site_p90_s": p90,
            "median_gap_s": diff, "per_request_gap_s": per_request_gap, "step_gap_s": gap_s}))

    # Slow but up.
    slow = here[here_waits > t]
    slow_ok = int((slow["status"].astype(str) == "ok").sum())
    if slow_ok:
        lenses.append(Lens("slow_but_up", (
            f"counted as available: {slow_ok} of {len(slow)} slow runs (over {t:g} s) had every "
            f"request succeed"
        ), {"slow_runs": len(slow), "slow_runs_available": slow_ok}))

    # Dominant step: excess of the scope's bad runs over the workflow's good runs.
    dominant, share = _dominant_step(steps, index)

    days = _measured_days(calendar, period, site, here["start"], result.start, result.end)
    lost = time_lost(here_waits, t, workflow_name, site_name, period, days,
                     _volume(volumes, objective.workflow, site, period))
    value = float(scope["value"])
    experience = {"value": value, "target": objective.target, "runs": int(scope["runs"]),
                  "good": int(scope["good"]), "p90_s": p90, "apdex": scope["apdex"],
                  "method": objective.budgeting_method, "windows": int(scope["windows"])}
    where = f"at {site_name}" + ("" if period == ALL_HOURS else f" during {period}")
    lost_text = (f"about {duration_text(lost.scaled_hours)} of clinicians' time lost "
                 f"({lost.assumption})" if lost.scaled_hours is not None else lost.assumption)
    step_text = _step_text(dominant, share, "extra waiting")
    summary = (
        f"{_sla_clause([sla_result], 'met')}, but {workflow_name} {where} "
        f"missed '{objective.name}': {value:.0%} against a target of {objective.target:.0%} "
        f"({int(scope['runs'])} runs; 9 in 10 waited up to {_fmt_s(p90)}; Apdex {scope['apdex']})."
        f"{step_text} {lost_text[0].upper()}{lost_text[1:]}."
    )
    return Finding("watermelon", sla_result, objective.name, objective.workflow, site, period,
                   experience, lenses, dominant, share, lost, summary)


def _scopes(breached: pd.DataFrame) -> list[Scope]:
    """The (site, period) of each breached scope, in order."""
    return [(str(site), str(period)) for site, period in zip(breached["site"], breached["period"],
                                                             strict=True)]


def _bad_runs(period_runs: pd.DataFrame, site: str, period: str, threshold_s: float) -> pd.Series:
    """The trace ids of the scope's runs over the threshold."""
    here = period_runs[(period_runs["site"] == site) & (period_runs["period"] == period)]
    return here.loc[here["waiting_s"].astype("float64") > threshold_s, "trace_id"]


def _reverse(
    sla: SLAConfig, sla_result: SLAResult, objective: ObjectiveConfig, result: ObjectiveResult,
    bad: pd.DataFrame, calendar: ClinicalCalendar | None, names: Callable[[str], str] = str,
) -> Finding:
    lenses: list[Lens] = []
    outside_share, hours_text = math.nan, ""
    if len(bad):
        if calendar is not None and calendar.period_names:
            inside = np.zeros(len(bad), dtype=bool)
            for name in calendar.period_names:
                inside |= calendar.mask(bad, name).to_numpy()
            outside_share = float((~inside).mean())
        local_hours = pd.to_datetime(bad["start"]).dt.tz_convert(sla.timezone).dt.hour
        counts = local_hours.value_counts()
        top = counts.sort_values(ascending=False)
        covered, hours = 0, []
        for hour, count in top.items():  # the fewest hours holding half the bad requests or more
            hours.append(int(hour))
            covered += int(count)
            if covered >= 0.5 * len(bad):
                break
        hours_share = covered / len(bad)
        hours_text = hour_ranges(hours, dash="-")
        text = f"{hours_share:.0%} of the {len(bad)} requests the SLA counts as bad came {hours_text} ({sla.timezone})"
        if not math.isnan(outside_share):
            text += f"; {outside_share:.0%} fell outside every clinical period"
        lenses.append(Lens("time_dilution", text, {
            "bad_requests": len(bad), "share_in_top_hours": hours_share,
            "share_outside_periods": outside_share}))
    p90 = result.waiting_p90
    lenses.append(Lens("per_request", (
        f"the SLA: {sla_result.display}; the whole task, {names(objective.workflow)}: 9 in 10 runs within "
        f"{_fmt_s(p90.value)} (n={p90.samples}) where the objective applies"
    ), {"workflow_p90_s": p90.value, "runs": p90.samples}))
    dominant, share = None, math.nan
    if len(bad) and bad["step"].notna().any():
        limit = sla.threshold_s if sla.threshold_s is not None else sla.target
        if sla.metric == "availability":
            weights = pd.Series(1.0, index=bad.index)
        else:
            weights = np.maximum(0.0, bad["duration_s"].astype("float64") - float(limit))
        by_step = weights.groupby(bad["step"]).sum().sort_values(ascending=False)
        if by_step.sum() > 0:
            dominant, share = str(by_step.index[0]), float(by_step.iloc[0] / by_step.sum())
    periods = ", ".join(objective.periods) if objective.periods else ALL_HOURS
    experience = {"value": result.overall.value, "target": objective.target,
                  "runs": result.overall.samples, "p90_s": p90.value, "apdex": result.apdex.display,
                  "method": objective.budgeting_method, "windows": result.overall.slices}
    when = _step_text(dominant, share, "slowness the SLA counted")
    when += f" The slow requests came {hours_text}" if hours_text else ""
    when += (f", {outside_share:.0%} of them outside every clinical period."
             if hours_text and not math.isnan(outside_share) else ("." if hours_text else ""))
    summary = (
        f"{_sla_clause([sla_result], 'breached')}, yet {names(objective.workflow)} met "
        f"'{objective.name}' ({result.overall.value:.0%} against {objective.target:.0%}, "
        f"{result.overall.samples} runs, Apdex {result.apdex.display}).{when} Users in "
        f"{periods} were not kept waiting by it."
    )
    return Finding("reverse", sla_result, objective.name, objective.workflow, None, periods,
                   experience, lenses, dominant, share, None, summary)


def _step_text(step: str | None, share: float, what: str) -> str:
    if step is None:
        return ""
    if share <= SPREAD_SHARE:  # "most" only of a majority
        return f" The {what} is spread across the steps (the largest, {step_title(step)}, has {share:.0%})."
    return f" Most of the {what} is in the {step_title(step)} step ({share:.0%})."



def _sla_clause(results: Sequence[SLAResult], verb: str) -> str:
    parts = [f"'{r.name}' ({r.display})" for r in results]
    if len(parts) == 1:
        return f"The SLA {parts[0]} was {verb}"
    return f"The SLAs {', '.join(parts[:-1])} and {parts[-1]} were {verb}"


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per kind x objective x site x period: the first SLA's, with the others'
    results and their SLA-specific lenses added."""
    merged: dict[tuple[str, str, str | None, str], Finding] = {}
    for f in findings:
        key = (f.kind, f.objective, f.site, f.period)
        base = merged.get(key)
        if base is None:
            merged[key] = f
            continue
        seen = {(lens.name, lens.text) for lens in base.lenses}
        extra = [lens for lens in f.lenses
                 if lens.sla is not None and (lens.name, lens.text) not in seen]
        others = [*base.other_slas, f.sla]
        verb = "met" if f.kind == "watermelon" else "breached"
        old_clause = _sla_clause(base.slas, verb)
        summary = _sla_clause([base.sla, *others], verb) + base.summary[len(old_clause):]
        merged[key] = replace(base, lenses=[*base.lenses, *extra], other_slas=others,
                              summary=summary)
    return list(merged.values())


def _covers(sla: SLAConfig, objective: ObjectiveConfig) -> bool:
    return not sla.workflows or objective.workflow in sla.workflows


def find_watermelons(
    store: Store | FrameCache,
    slas: Sequence[SLAConfig],
    objectives: Sequence[ObjectiveConfig],
    calendar: ClinicalCalendar | None,
    month: str | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    task_volumes: Sequence[TaskVolumeConfig] = (),
    base_dir: Path | None = None,
    names: Callable[[str], str] = str,
) -> list[Finding]:
    """Every scope in the compliance window where the SLA and the experience disagree.

    Args:
        store: the store.
        slas: the SLAs, as the contracts compute them.
        objectives: the experience objectives; each is compared with the SLAs covering its
            workflow.
        calendar: the clinical calendar (periods and sites' time zones).
        month: the compliance month, ``YYYY-MM`` (each SLA's own time zone).
        window: instead of ``month``, an explicit ``[start, end)`` (timezone-aware).
        task_volumes: tasks per day, to scale clinician time lost.
        base_dir: where relative exclusion files are read from.
        names: the display name of a site or workflow id, for the texts (default: the id).

    Returns:
        Watermelon findings (largest clinician time lost first), then reverse findings; one per
        scope, naming every SLA that tells its story.

    Raises:
        ValueError: neither ``month`` nor ``window``.
    """
    if month is None and window is None:
        raise ValueError("give the compliance month (YYYY-MM) or a window")
    store = store if isinstance(store, FrameCache) else FrameCache(store)
    findings: list[Finding] = []
    for sla in slas:
        start, end = window if window is not None else sla_window(sla, month=month)
        # The objectives first (runs only): their breached scopes' request figures are then
        # computed in the same pass over the requests as the SLA itself.
        judged = [(o, evaluate_objective(store, o, calendar, start, end))
                  for o in objectives if _covers(sla, o)]
        request_scopes: list[tuple[str, str, str | None]] = []
        offsets: list[int] = []
        for objective, result in judged:
            offsets.append(len(request_scopes))
            if result.overall.met is not None:
                request_scopes += [(objective.workflow, site, period)
                                   for site, period in _scopes(result.breached_scopes)]
        requests = scope_request_figures(store, sla, start, end, request_scopes, calendar,
                                         base_dir, q=(sla.percentile or 95) / 100)
        sla_result = evaluate_sla(store, sla, start, end, base_dir=base_dir)
        if sla_result.met is None:
            continue
        for (objective, result), offset in zip(judged, offsets, strict=True):
            if result.overall.met is None:
                continue
            if sla_result.met and not result.breached_scopes.empty:
                all_runs = judge_runs(
                    store.runs(start, end, workflow=objective.workflow,
                               site=objective.sites or None),
                    objective.model_copy(update={"periods": []}), None)
                period_runs = objective_runs(store, objective, calendar, start, end)
                scopes = _scopes(result.breached_scopes)
                bad_ids = [_bad_runs(period_runs, site, period, objective.threshold_s)
                           for site, period in scopes]
                steps = _step_figures(store, objective, start, end, all_runs, scopes,
                                      bad_ids, period_runs)
                for index, (_, scope) in enumerate(result.breached_scopes.iterrows()):
                    findings.append(_watermelon(
                        sla, sla_result, objective, result, scope, all_runs, period_runs,
                        requests.iloc[offset + index], steps, index, calendar, task_volumes,
                        base_dir, names))
            elif not sla_result.met and result.met:
                bad = counted_requests(store, sla, start, end, base_dir, only_bad=True)
                findings.append(_reverse(sla, sla_result, objective, result, bad, calendar, names))

    def order(f: Finding) -> tuple[int, float]:
        lost = f.time_lost.observed_s if f.time_lost is not None else 0.0
        return (0 if f.kind == "watermelon" else 1, -lost)

    return sorted(_merge(findings), key=order)
