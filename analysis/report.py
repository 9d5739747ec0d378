"""The month's report for managers: the SLA as the contract computes it beside the experience.

It opens with a verdict in one or two plain sentences, then one picture per finding (the stories
of :func:`analysis.findings.find_stories`, the same ones the dashboard tells), then the SLAs, the
experience objectives and the changes of the month in words, with display names, percentages and
the error budget said as a date ("the month's allowance of slow requests was used up by the
19th"). The analyst's tables follow as an appendix. A month without data says "not enough data"
for every figure and draws no conclusion; a configuration without SLAs and objectives gets what
was measured and the YAML to add them.

:func:`build_report` computes it; :func:`to_markdown`, :func:`to_html` (self-contained, its
pictures inline SVG, no scripts, no external resources: it survives e-mail), :func:`to_json`
(every figure) and :func:`to_csv` (the appendix) render it.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analysis.budget import calendar_month
from analysis.calendar import ClinicalCalendar
from analysis.changelog import effective_changes
from analysis.changes import change_impact
from analysis.config import ChangeEventConfig, ObjectiveConfig, SLAConfig, TaskVolumeConfig
from analysis.findings import Figure, FindingInputs, Story, find_stories, percent_text, seconds_text
from analysis.names import step_title
from analysis.objectives import ALL_HOURS, ObjectiveResult, evaluate_objective
from analysis.query.objectives import apdex_from_counts
from analysis.sla import SLAResult, _base_query, evaluate_sla, parse_month, sla_window
from analysis.store import FrameCache, Store
from store.redact import spreadsheet_safe

__all__ = [
    "NOT_ENOUGH_DATA", "REPORT_FORMATS", "Measured", "Report", "build_report", "month_report",
    "render", "story_svg", "to_csv", "to_html", "to_json", "to_markdown",
]

REPORT_FORMATS = ("md", "html", "json", "csv")
NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Measured:
    """What the probes measured in the month.

    Attributes:
        runs: runs recorded (every status).
        workflows: the workflows' ids, most runs first.
        sites: the sites' ids, most runs first.
        days: local days (in the report's zone) with at least one run.
        first: the first run's start (UTC), ``None`` without runs.
        last: the last run's start (UTC), ``None`` without runs.
        requests: requests recorded (the probes' and the EPR's own).
    """

    runs: int
    workflows: tuple[str, ...]
    sites: tuple[str, ...]
    days: int
    first: dt.datetime | None
    last: dt.datetime | None
    requests: int


@dataclass(frozen=True)
class Report:
    """The month's SLA-versus-experience report.

    Attributes:
        month: ``YYYY-MM``.
        timezone: the zone the month (and the objectives' window) is reckoned in.
        start: the month's start (UTC).
        end: its end, exclusive (UTC).
        generated_at: when the report was computed (UTC).
        simulated: some of the month's runs are simulated history, not measurements.
        verdict: one or two plain sentences a manager reads first.
        headline: the plain-words lines after it, one per item (simulated data, SLAs,
            objectives, missed probe slots, findings, changes).
        measured: what the probes measured in the month.
        slas: each SLA's result.
        sla_budgets: each SLA's error budget in words (``""`` where it has none).
        objectives: each objective's result.
        apdex: one row per workflow: ``workflow, t_s, apdex, samples, rating``.
        stories: the findings, as :func:`analysis.findings.find_stories` tells them.
        changes: the before/after comparison of each change in the month (one frame each).
        change_events: the changes, in the order of ``changes``.
        labels: display names of workflows and sites.
        setup: what to add to the configuration (YAML) when SLAs or objectives are missing.
        missed_slots: the probes' missed slots in the month, by reason.
    """

    month: str
    timezone: str
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    simulated: bool
    verdict: str
    headline: list[str]
    measured: Measured
    slas: list[SLAResult]
    sla_budgets: list[str]
    objectives: list[ObjectiveResult]
    apdex: pd.DataFrame
    stories: list[Story]
    changes: list[pd.DataFrame] = field(default_factory=list)
    change_events: list[ChangeEventConfig] = field(default_factory=list)
    labels: FindingInputs = field(default_factory=FindingInputs)
    setup: str = ""
    missed_slots: dict[str, int] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        """Runs or requests were recorded in the month: there is something to conclude from."""
        return self.measured.runs > 0 or self.measured.requests > 0

    def workflow_title(self, name: str) -> str:
        return self.labels.workflow(name).title

    def site_title(self, name: str) -> str:
        return self.labels.site_title(name)


def _apdex_table(store: Store | FrameCache, objectives: Sequence[ObjectiveConfig], start: dt.datetime,
                 end: dt.datetime) -> pd.DataFrame:
    """Apdex of every run of each objective's workflow (counted by DuckDB: runs are not loaded)."""
    rows = []
    seen: set[str] = set()
    for objective in objectives:
        if objective.workflow in seen:
            continue
        seen.add(objective.workflow)
        t_s = float(objective.apdex_t)
        counts = store.sql(
            "SELECT count(*) AS samples, "
            "count(*) FILTER (WHERE status = 'ok' AND waiting_s <= ?) AS satisfied, "
            "count(*) FILTER (WHERE status = 'ok' AND waiting_s > ? AND waiting_s <= ?) AS tolerating, "
            "count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS failed "
            "FROM runs WHERE start >= ? AND start < ? AND workflow = ?",
            [t_s, t_s, 4 * t_s, start, end, objective.workflow]).iloc[0]
        a = apdex_from_counts(t_s, *(int(counts[k]) for k in ("samples", "satisfied", "tolerating", "failed")))
        rows.append({"workflow": objective.workflow, "t_s": a.t_s, "apdex": a.display,
                     "samples": a.samples, "rating": a.rating})
    return pd.DataFrame(rows, columns=["workflow", "t_s", "apdex", "samples", "rating"])


def _missed_slots(store: Store | FrameCache, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """The missed slots of ``[start, end)`` by reason, most first (ties: the reason seen first)."""
    frame = store.sql(
        "SELECT coalesce(reason, 'unknown') AS reason, count(*) AS n FROM missed_slots "
        "WHERE slot >= ? AND slot < ? GROUP BY ALL "
        "ORDER BY n DESC, min({'slot': slot, 'trace_id': trace_id})", [start, end])
    return {str(r.reason): int(r.n) for r in frame.itertuples()}


def _measured(store: Store | FrameCache, start: dt.datetime, end: dt.datetime, timezone: str
              ) -> tuple[Measured, bool]:
    """What was measured in ``[start, end)``, and whether any of it is simulated."""
    totals = store.sql(
        "SELECT count(*) AS runs, count(DISTINCT CAST(timezone(?, start) AS DATE)) AS days, "
        "min(start) AS first, max(start) AS last, coalesce(bool_or(simulated), false) AS simulated "
        "FROM runs WHERE start >= ? AND start < ?", [timezone, start, end]).iloc[0]
    workflows = store.sql("SELECT workflow FROM runs WHERE start >= ? AND start < ? "
                          "GROUP BY workflow ORDER BY count(*) DESC, workflow", [start, end])
    sites = store.sql("SELECT site FROM runs WHERE start >= ? AND start < ? "
                      "GROUP BY site ORDER BY count(*) DESC, site", [start, end])
    requests = store.sql("SELECT count(*) AS n FROM requests WHERE start >= ? AND start < ?",
                         [start, end])["n"].iloc[0]

    def moment(value: Any) -> dt.datetime | None:
        return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime().astimezone(dt.UTC)

    measured = Measured(
        runs=int(totals["runs"]), workflows=tuple(str(w) for w in workflows["workflow"].dropna()),
        sites=tuple(str(s) for s in sites["site"].dropna()), days=int(totals["days"]),
        first=moment(totals["first"]), last=moment(totals["last"]), requests=int(requests),
    )
    return measured, bool(totals["simulated"])


# -- Words --------------------------------------------------------------------------------------


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _day_text(moment: dt.datetime, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%a} {local.day} {local:%b}"


def _when_text(moment: dt.datetime, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _names(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _month_name(month: str) -> str:
    year, number = parse_month(month)
    return dt.date(year, number, 1).strftime("%B %Y")



def _allowance(sla: SLAConfig) -> str:
    """What the SLA's error budget allows, in words."""
    if sla.budgeting_method != "Occurrences":
        return f"bad {sla.time_slice_minutes}-minute periods"
    if sla.metric == "availability":
        return "failed requests"
    return "slow requests"


def _budget_exhausted_at(store: Store | FrameCache, sla: SLAConfig, result: SLAResult,
                         base_dir: Path | None) -> dt.datetime | None:
    """The local day (its start, UTC) on which the month's error budget ran out, if it did.

    The allowance is the contract's: (1 - target) of all the month's requests (or slices); the
    day is the first on which the bad ones counted so far exceed it.
    """
    if result.budget is None or not result.samples or math.isnan(result.budget_remaining) \
            or result.budget_remaining >= 0:
        return None
    base, params = _base_query(sla, result.window_start, result.window_end, base_dir)
    if sla.budgeting_method == "Occurrences":
        query = (f"{base} SELECT CAST(timezone(?, start) AS DATE) AS day, count(*) AS total, "
                 "count(*) FILTER (WHERE NOT good) AS bad FROM base WHERE in_hours AND NOT excluded "
                 "GROUP BY day ORDER BY day")
        days = store.sql(query, [*params, sla.timezone])
    else:
        step_us = sla.time_slice_minutes * 60 * 1_000_000
        origin_us = int(round(result.window_start.timestamp() * 1_000_000))
        query = f"""{base}, slices AS (
SELECT (epoch_us(start) - ?) // {step_us} AS slice, min(start) AS first,
       count(*) FILTER (WHERE good) / count(*) AS ratio
FROM base WHERE in_hours AND NOT excluded GROUP BY slice)
SELECT CAST(timezone(?, first) AS DATE) AS day, count(*) AS total,
       sum(CASE WHEN ? THEN 1 - ratio WHEN ratio < ? THEN 1 ELSE 0 END) AS bad
FROM slices GROUP BY day ORDER BY day"""
        days = store.sql(query, [*params, origin_us, sla.timezone,
                                 sla.budgeting_method == "RatioTimeslices",
                                 sla.time_slice_target or sla.target])
    if days.empty:
        return None
    allowed = (1 - sla.ratio_target) * float(days["total"].sum())
    spent = days["bad"].astype("float64").cumsum()
    over = days[spent.to_numpy() > allowed + 1e-9]
    if over.empty:
        return None
    day = pd.Timestamp(over["day"].iloc[0]).date()
    return dt.datetime.combine(day, dt.time(), ZoneInfo(sla.timezone)).astimezone(dt.UTC)


def _budget_words(store: Store | FrameCache, sla: SLAConfig, result: SLAResult,
                  base_dir: Path | None, *, so_far: bool = False) -> str:
    """The error budget in words: how much of the month's allowance was used, or when it ran out
    (``so_far``: the month is not over, and the words say so)."""
    if result.budget is None or not result.samples or math.isnan(result.budget_remaining):
        return ""
    allowance = _allowance(sla)
    share = (1 - sla.ratio_target)
    if result.budget_remaining >= 0:
        used = 1 - result.budget_remaining
        return (f"{percent_text(used)} of the month's allowance of {allowance} "
                f"({percent_text(share, 1 if share < 0.01 else 0)} of them) was used{' so far' if so_far else ''}")
    exhausted = _budget_exhausted_at(store, sla, result, base_dir)
    if exhausted is None:
        return f"the month's allowance of {allowance} was used up{' already' if so_far else ''}"
    local = exhausted.astimezone(ZoneInfo(sla.timezone))
    return (f"the month's allowance of {allowance} was used up by the {_ordinal(local.day)} "
            f"({_day_text(exhausted, sla.timezone)}), "
            f"{percent_text(-result.budget_remaining)} over it {'so far' if so_far else 'by the end'}")


def _sla_value_text(result: SLAResult, sla: SLAConfig) -> str:
    if result.metric == "mean":
        return f"mean {seconds_text(result.value)} over {_count(result.samples, 'request')}"
    if result.metric == "percentile":
        return f"p{sla.percentile:g} {seconds_text(result.value)} over {_count(result.samples, 'request')}"
    if result.budget is not None and result.budget.method != "Occurrences":
        return (f"{percent_text(result.value, 2)} of {sla.time_slice_minutes}-minute periods good "
                f"(target {percent_text(result.target, 2)}, {_count(result.samples, 'request')})")
    what = "answered" if result.metric == "availability" else f"within {sla.threshold_s:g} s"
    return (f"{percent_text(result.value, 2)} of {_count(result.samples, 'request')} {what} "
            f"(target {percent_text(result.target, 2 if result.target >= 0.99 else 0)})")


def _sla_sentence(result: SLAResult, sla: SLAConfig, budget: str) -> str:
    if result.met is None:
        return f"SLA “{result.name}” ({result.wording}): {NOT_ENOUGH_DATA} (no requests counted)."
    state = "met" if result.met else "breached"
    tail = f"; {budget}" if budget else ""
    return f"SLA “{result.name}” ({result.wording}): {state}, {_sla_value_text(result, sla)}{tail}."


def _objective_sentence(result: ObjectiveResult, report_labels: FindingInputs) -> str:
    o = result.objective
    if result.met is None:
        return f"Experience objective “{o.name}”: {NOT_ENOUGH_DATA} (no runs)."
    workflow = report_labels.workflow(o.workflow).title
    if result.breached_scopes.empty:
        return (f"Experience objective “{o.name}” was met everywhere: {workflow} "
                f"{percent_text(result.overall.value)} against {percent_text(o.target)} "
                f"({_count(result.overall.samples, 'run')}).")
    where = "; ".join(
        f"{report_labels.site_title(str(row.site))}"
        + ("" if row.period == ALL_HOURS else f" during {row.period}")
        + f" ({percent_text(row.value)} against {percent_text(o.target)}, "
        f"90th percentile {seconds_text(row.p90_s)}, {_count(int(row.runs), 'run')})"
        for row in result.breached_scopes.itertuples()
    )
    return f"Experience objective “{o.name}” was breached at {where}."


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _change_sentence(change: ChangeEventConfig, impact: pd.DataFrame, labels: FindingInputs,
                     timezone: str) -> str:
    when = change.at.astimezone(dt.UTC).strftime("%d %b %H:%M UTC")
    if impact.empty:
        return (f"{change.title} ({when}): {NOT_ENOUGH_DATA} to compare waiting times before and "
                "after (no runs on one side or both).")
    moved = impact[impact["significant"] & (impact["median_ratio"] > 1)]
    if moved.empty:
        return (f"{change.title} ({when}): no significant change in waiting time "
                f"({_count(int(impact['before_runs'].sum()), 'run')} before, "
                f"{_count(int(impact['after_runs'].sum()), 'run')} after).")
    worst = moved.sort_values("median_ratio", ascending=False).iloc[0]
    step = ""
    if worst["dominant_step"]:
        share = worst["dominant_step_share"]
        rise = f"+{worst['dominant_step_delta_s']:.2f} s"
        if not pd.isna(share) and share > 0.5:
            step = f", mostly in {step_title(worst['dominant_step'])} ({rise}, {percent_text(share)} of the rise)"
        else:
            step = f"; the step that rose most is {step_title(worst['dominant_step'])} ({rise})"
    others = len(moved) - 1
    tail = f"; {others} other workflow and site pair{'s' if others > 1 else ''} also slower" if others else ""
    return (
        f"{change.title} ({when}): {labels.workflow(str(worst['workflow'])).title} at "
        f"{labels.site_title(str(worst['site']))} went from a median of "
        f"{worst['before_median_s']:.2f} s to {worst['after_median_s']:.2f} s "
        f"(90th percentile {worst['before_p90_s']:.2f} s to {worst['after_p90_s']:.2f} s; "
        f"{int(worst['before_runs'])} and {int(worst['after_runs'])} runs; "
        f"p {_p_text(worst['p_value'])}){step}{tail}."
    )


def _breached_for_clinicians(story: Story, labels: FindingInputs) -> list[Figure]:
    """The story's breached figures that are the clinicians' view, not an SLA's own figure."""
    slas = {sla.name for sla in labels.slas}
    return [f for f in story.figures if f.verdict == "breached" and f.label not in slas]


def _first_clause(text: str) -> str:
    """``text`` up to its first top-level ``:`` or ``;``, without an ``(also ...)`` aside."""
    text = re.sub(r"\s*\(also\b[^()]*\)", "", text)
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ":;" and text[index + 1:index + 2] == " ":
            return text[:index]
    return text.rstrip(".")


def _gist(story: Story, labels: FindingInputs) -> str:
    """A finding in a few words for the verdict: where, and the clinicians' breached figure."""
    breached = _breached_for_clinicians(story, labels)
    if story.workflow is None or not breached:
        return _first_clause(story.headline)
    sites = _names([labels.site_title(s) for s in story.sites]) or "every site"
    period = f" during {story.period}" if story.period else ""
    figure = breached[-1]
    against = f", {figure.threshold}" if figure.threshold else ""
    return f"{labels.workflow(story.workflow).title} at {sites}{period} ({figure.label}: {figure.value}{against})"


def _verdict(month: str, measured: Measured, slas: Sequence[SLAResult],
             objectives: Sequence[ObjectiveResult], stories: Sequence[Story],
             labels: FindingInputs) -> str:
    """One or two plain sentences: did the contract hold, and did the clinicians wait?"""
    name = _month_name(month)
    if measured.runs == 0 and measured.requests == 0:
        return (f"Not enough data for {name}: no runs were recorded in the month, so this report "
                "draws no conclusion.")
    if not slas and not objectives:
        return (f"In {name} the probes measured {_count(measured.runs, 'run')} of "
                f"{_count(len(measured.workflows), 'workflow')} at {_count(len(measured.sites), 'site')}; "
                "with no SLA and no experience objective configured there is nothing to judge them "
                "against yet (see below for how to add them).")
    judged = [r for r in slas if r.met is not None]
    breached = [r for r in judged if r.met is False]
    if not slas:
        contract = "No SLA is configured"
    elif not judged:
        contract = f"The SLAs had {NOT_ENOUGH_DATA} to be judged"
    elif not breached and len(judged) < len(slas):
        contract = (f"{len(judged)} of the supplier's {len(slas)} SLAs {'was' if len(judged) == 1 else 'were'} "
                    f"met and the other {len(slas) - len(judged)} had {NOT_ENOUGH_DATA} to be judged")
    elif not breached:
        contract = ("The supplier's SLA was met" if len(judged) == 1
                    else "Both of the supplier's SLAs were met" if len(judged) == 2
                    else f"All {len(judged)} of the supplier's SLAs were met")
    else:
        contract = (f"{len(breached)} of {len(judged)} SLAs {'was' if len(breached) == 1 else 'were'} "
                    f"breached ({_names([f'“{r.name}”' for r in breached])})")
    waits = [s for s in stories if s.kind not in ("reverse", "quiet_site")]  # a quiet site is no wait
    if waits:
        joiner = ", yet" if not breached and judged else ", and"
        # Lead with the largest wait (a change's effect comes with the waits it caused).
        lead = next((s for s in waits if s.kind != "change"), waits[0])
        top = _gist(lead, labels)
        more = len(waits) - 1
        found = f"{joiner} clinicians waited: {top}" + (
            f", and {_count(more, 'more finding')} below." if more else ".")
        return contract + found
    missed = [o for o in objectives if o.met is False]
    if missed:
        return contract + f", and {_count(len(missed), 'experience objective')} {'was' if len(missed) == 1 else 'were'} breached."
    if objectives and all(o.met is None for o in objectives):
        return contract + f"; the experience objectives had {NOT_ENOUGH_DATA} to be judged."
    if objectives:
        return contract + ", and the experience objectives were met: clinicians did not wait beyond them."
    return contract + "; no experience objective is configured to say what clinicians felt (see below)."


_SLA_EXAMPLE = """slas:
  - name: 95% of requests within 2 s
    description: "The supplier's contract: 95% of transactions within 2 seconds."
    metric: share_under
    threshold_s: 2
    target: 0.95
    timezone: {timezone}"""

_OBJECTIVE_EXAMPLE = """objectives:
  - name: {title} within {t:g} s
    workflow: {workflow}
    threshold_s: {t:g}
    target: 0.9"""


def _setup(slas: Sequence[SLAConfig], objectives: Sequence[ObjectiveConfig], measured: Measured,
           labels: FindingInputs, timezone: str) -> str:
    """The YAML a trust would add when SLAs or objectives are missing ("" when both are there)."""
    parts = []
    if not slas:
        parts.append(_SLA_EXAMPLE.format(timezone=timezone))
    if not objectives:
        workflow = (measured.workflows[0] if measured.workflows
                    else labels.workflows[0].name if labels.workflows else "open-patient-record")
        label = labels.workflow(workflow)
        parts.append(_OBJECTIVE_EXAMPLE.format(title=label.title.lower(), t=label.threshold_s,
                                               workflow=workflow))
    return "\n".join(parts)


def _setup_words(report: Report) -> list[str]:
    """What the report says when SLAs or objectives are missing: what was measured, how to add them."""
    m = report.measured
    lines = []
    if m.runs:
        span = (f" over {_count(m.days, 'day')} ({_day_text(m.first, report.timezone)} to "
                f"{_day_text(m.last, report.timezone)})" if m.first and m.last else "")
        lines.append(
            f"Measured: {_count(m.runs, 'run')} of {_names([report.workflow_title(w) for w in m.workflows])} "
            f"at {_names([report.site_title(s) for s in m.sites])}{span}, {_count(m.requests, 'request')}.")
    missing = [what for what, have in (("an SLA (what the supplier's contract promises, judged "
                                        "on requests)", report.slas),
                                       ("an experience objective (what clinicians need, judged on "
                                        "whole workflow runs in short windows)", report.objectives))
               if not have]
    if missing:
        lines.append(f"To judge them, add {' and '.join(missing)} to the configuration file, for "
                     "example as below; then `wardwatch check -c FILE` and run this report again.")
    return lines


def build_report(
    store: Store | FrameCache,
    slas: Sequence[SLAConfig],
    objectives: Sequence[ObjectiveConfig],
    calendar: ClinicalCalendar | None,
    month: str,
    changes: Sequence[ChangeEventConfig] = (),
    task_volumes: Sequence[TaskVolumeConfig] = (),
    timezone: str = "UTC",
    base_dir: Path | None = None,
    change_window: dt.timedelta = dt.timedelta(days=7),
    now: dt.datetime | None = None,
    labels: FindingInputs | None = None,
) -> Report:
    """Compute the month's report.

    Args:
        store: the store.
        slas: the SLAs (each judged over its own compliance window ending with the month).
        objectives: the experience objectives (judged over the calendar month in ``timezone``).
        calendar: the clinical calendar.
        month: ``YYYY-MM``.
        changes: change events; those inside the month are compared before and after.
        task_volumes: tasks per day, to scale clinician time lost.
        timezone: the zone the month is reckoned in for objectives and changes (the dashboard's).
        base_dir: where relative files named in the SLAs are read from (the config file's
            directory).
        change_window: each side of a change's before/after comparison.
        now: the generation time (defaults to the current time).
        labels: the workflows' and sites' display names (``FindingInputs.from_config``); its
            analysis sections are ignored in favour of the arguments.

    Raises:
        ValueError: ``month`` is not ``YYYY-MM``.
    """
    year, number = parse_month(month)
    month = f"{year:04d}-{number:02d}"
    start, end = calendar_month(year, number, timezone)
    store = store if isinstance(store, FrameCache) else FrameCache(store)
    names = labels or FindingInputs()
    inputs = FindingInputs(
        workflows=names.workflows, sites=names.sites, slas=tuple(slas), objectives=tuple(objectives),
        periods=(tuple(calendar.period(n) for n in calendar.period_names) if calendar is not None
                 else names.periods),
        task_volumes=tuple(task_volumes), changes=tuple(changes), timezone=timezone,
    )
    measured, simulated = _measured(store, start, end, timezone)
    has_data = measured.runs > 0 or measured.requests > 0
    # Findings first: they judge each SLA in one pass over the requests with the figures of the
    # scopes they explain; the SLA and objective results below are then read from the cache.
    stories = (find_stories(store, inputs, calendar, start, end, changes=changes, base_dir=base_dir, now=now)
               if has_data else [])
    sla_results = [
        evaluate_sla(store, sla, *sla_window(sla, month=month), base_dir=base_dir) for sla in slas
    ]
    generated_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    budgets = [_budget_words(store, sla, r, base_dir, so_far=generated_at < end)
               for sla, r in zip(slas, sla_results, strict=True)]
    objective_results = [evaluate_objective(store, o, calendar, start, end) for o in objectives]
    in_month = [c for c in changes if start <= c.at.astimezone(dt.UTC) < end]
    impacts = [change_impact(store, c, window=change_window) for c in in_month]

    headline: list[str] = []
    if simulated:
        headline.append("This month's data includes simulated history from the testbed's latency "
                        "model, not measurements of a real EPR.")
    headline += [_sla_sentence(r, sla, b) for r, sla, b in zip(sla_results, slas, budgets, strict=True)]
    headline += [_objective_sentence(o, inputs) for o in objective_results]
    reasons = _missed_slots(store, start, end)
    if reasons:
        detail = ", ".join(f"{reason.replace('_', ' ')}: {count}" for reason, count in reasons.items())
        headline.append(f"The probes missed {sum(reasons.values())} scheduled runs this month ({detail}); "
                        "the figures above leave those moments out.")
    headline += [s.headline for s in stories]
    headline += [_change_sentence(c, i, inputs, timezone) for c, i in zip(in_month, impacts, strict=True)]
    return Report(
        month=month, timezone=timezone, start=start, end=end,
        generated_at=generated_at, simulated=simulated,
        verdict=_verdict(month, measured, sla_results, objective_results, stories, inputs),
        headline=headline, measured=measured, slas=sla_results, sla_budgets=budgets,
        objectives=objective_results, apdex=_apdex_table(store, objectives, start, end),
        stories=stories, changes=impacts, change_events=in_month, labels=inputs,
        setup=_setup(slas, objectives, measured, inputs, timezone),
        missed_slots=reasons,
    )


def month_report(store: Store | FrameCache, inputs: FindingInputs, month: str, *,
                 base_dir: Path | None = None, now: dt.datetime | None = None) -> Report:
    """The month's report from the inputs every reader builds the same way
    (``FindingInputs.from_config``): the command line and the dashboard's report page both call
    this, so they report the same findings and the same changes. The changes are the configured
    ones with those recorded in the store's data directory (:mod:`analysis.changelog`), read now.

    Raises:
        ValueError: ``month`` is not ``YYYY-MM``, or the recorded changes cannot be read.
    """
    changes = effective_changes(inputs.changes, store.path)
    return build_report(
        store, inputs.slas, inputs.objectives, inputs.calendar(), month, changes=changes,
        task_volumes=inputs.task_volumes, timezone=inputs.timezone, base_dir=base_dir, now=now,
        labels=inputs,
    )


# -- Rendering -----------------------------------------------------------------------------------


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return fmt.format(float(value))
    return str(value)


def _samples(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _verdict_word(met: Any) -> str:
    if met is None or (isinstance(met, float) and math.isnan(met)):
        return NOT_ENOUGH_DATA
    return "met" if bool(met) else "breached"


def _sla_value_cell(r: SLAResult) -> str:
    if math.isnan(r.value):
        return NOT_ENOUGH_DATA
    if r.metric in ("mean", "percentile"):
        return seconds_text(r.value)
    return percent_text(r.value, 2)


def _sla_target_cell(r: SLAResult) -> str:
    if r.metric in ("mean", "percentile"):
        return f"≤ {r.target:g} s"
    return percent_text(r.target, 2 if r.target >= 0.99 else 0)


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """The analyst's figures, as (title, header, rows) tables shared by Markdown, HTML and CSV."""
    tables = []
    tables.append(("SLAs as the contract computes them",
                   ["SLA", "terms", "value", "target", "verdict", "error budget", "requests",
                    "excluded", "outside hours", "source"],
                   [[r.name, r.wording, _sla_value_cell(r), _sla_target_cell(r), _verdict_word(r.met),
                     budget or ("none (a mean has no budget)" if r.metric == "mean" and r.samples else "n/a"),
                     f"{r.samples:,}", f"{r.excluded:,}", f"{r.outside_service_hours:,}",
                     "the probes" if r.data_source == "probe" else "the EPR's own timings"]
                    for r, budget in zip(report.slas, report.sla_budgets, strict=True)]))
    rows = []
    for o in report.objectives:
        for s in o.scopes.itertuples():
            rows.append([o.objective.name, report.site_title(str(s.site)), str(s.period), f"{s.runs:,}",
                         percent_text(s.share_good, 1), seconds_text(s.p50_s),
                         seconds_text(s.p90_s) + (" (few runs)" if s.p90_small_sample else ""),
                         f"{s.good_windows} of {s.windows}", percent_text(s.value, 1),
                         _verdict_word(s.met), str(s.apdex)])
    tables.append(("Experience objectives per site and period",
                   ["objective", "site", "period", "runs", "runs within T", "median", "90th percentile",
                    "good windows", "value", "verdict", "Apdex [T]"], rows))
    tables.append(("Apdex per workflow", ["workflow", "Apdex [T]", "runs", "rating"],
                   [[report.workflow_title(str(r.workflow)), str(r.apdex), f"{r.samples:,}",
                     str(r.rating or "NS (no samples)")] for r in report.apdex.itertuples()]))
    rows = []
    for number, story in enumerate(report.stories, start=1):
        for f in story.figures:
            rows.append([str(number), f.label, f.value, f.threshold or "", _samples(f.n), f.verdict or ""])
    tables.append(("Findings: the figures behind each",
                   ["finding", "figure", "value", "against", "samples", "verdict"], rows))
    rows = []
    for number, story in enumerate(report.stories, start=1):
        for lens in story.lenses:
            rows.append([str(number), lens.title, lens.sla or "", lens.text])
    tables.append(("Lenses: why the SLA could not see it", ["finding", "lens", "SLA", "figures"], rows))
    rows = []
    for change, impact in zip(report.change_events, report.changes, strict=True):
        if impact.empty:
            rows.append([change.title, NOT_ENOUGH_DATA, "", "0 / 0", "", "", "", "", ""])
        for c in impact.itertuples():
            rows.append([str(c.change), report.workflow_title(str(c.workflow)), report.site_title(str(c.site)),
                         f"{int(c.before_runs):,} / {int(c.after_runs):,}",
                         f"{_num(c.before_median_s)} → {_num(c.after_median_s)}",
                         f"{_num(c.before_p90_s)} → {_num(c.after_p90_s)}",
                         _num(c.cliffs_delta), _p_text(c.p_value),
                         "" if pd.isna(c.dominant_step) else step_title(str(c.dominant_step))])
    tables.append(("Changes: before and after",
                   ["change", "workflow", "site", "runs before / after", "median (s)",
                    "90th percentile (s)",
                    "Cliff's delta (-1 to +1: share of pairs slower after, less faster)",
                    "p (the chance of a shift this large if nothing changed)", "step that rose most"], rows))
    return tables


def _empty(report: Report) -> str:
    """What an empty table says: nothing to list, or nothing measured to list it from."""
    return "None." if report.has_data else "Not enough data."


def _title(report: Report) -> str:
    return f"Wardwatch report for {_month_name(report.month)}: SLA and experience"


def _subtitle(report: Report) -> str:
    so_far = (f", so far (the month is not over: figures to {_when_text(report.generated_at, report.timezone)})"
              if report.generated_at < report.end else "")
    return (f"{_month_name(report.month)} in {report.timezone}{so_far}; generated "
            f"{report.generated_at:%Y-%m-%d %H:%M} UTC.")


_SIMULATED_NOTE = ("Simulated: this month's data includes history simulated from the testbed's "
                   "latency model, not measurements of a real EPR.")
_FOOTNOTE = ("Percentiles by linear interpolation over pooled samples; Apdex as specification v1.1 "
             "(T in brackets, * fewer than 100 samples, NS no samples).")


def _month_lines(report: Report) -> list[str]:
    """The plain-words lines other than the findings (told above them) and the simulated note."""
    told = {s.headline for s in report.stories}
    return [line for line in report.headline
            if line not in told and not line.startswith("This month's data includes simulated")]


# -- Pictures: one small inline SVG per finding ---------------------------------------------------

_QUANTITY = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*(%|ms|s)(?![A-Za-z])")
_COLOURS = {"met": "#2e7d32", "breached": "#c62828", None: "#546e7a"}
_BEYOND = "#ef6c00"


def _quantity(text: str | None) -> tuple[float, str] | None:
    """``84%`` as (0.84, "%"), ``710 ms`` as (0.71, "s"), ``≤ 2 s`` as (2.0, "s")."""
    match = _QUANTITY.search(text or "")
    if match is None:
        return None
    number = float(match.group(1).replace(",", ""))
    unit = match.group(2)
    return (number / 100, "%") if unit == "%" else (number / 1000 if unit == "ms" else number, "s")


_LABEL_CHARS = 56  # a label line that fits the 440 px before the bars at 13 px


def _label_lines(label: str) -> list[str]:
    """A figure's label on one line, or two at a space (the second cut short with "…")."""
    if len(label) <= _LABEL_CHARS:
        return [label]
    cut = label.rfind(" ", 0, _LABEL_CHARS + 1)
    cut = cut if cut > 0 else _LABEL_CHARS
    first, rest = label[:cut], label[cut:].strip()
    return [first, rest if len(rest) <= _LABEL_CHARS else rest[:_LABEL_CHARS - 1] + "…"]


def story_svg(story: Story) -> str:
    """The finding's figures as bars against their thresholds (the SLA's view first, then the
    clinicians'), as a self-contained SVG; "" when no figure has a number to draw."""
    rows = []
    for figure in story.figures:
        value = _quantity(figure.value)
        if value is None:
            continue
        threshold = _quantity(figure.threshold)
        rows.append((figure, value, threshold if threshold and threshold[1] == value[1] else None))
    if not rows:
        return ""
    label_w, bar_x, bar_w = 440, 450, 260
    lines = [_label_lines(figure.label) for figure, _, _ in rows]
    row_h = 30 if all(len(parts) == 1 for parts in lines) else 40
    width, height = bar_x + bar_w + 150, row_h * len(rows) + 26
    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" font-family="Helvetica,Arial,sans-serif" '
           f'font-size="13"><title>{e(story.headline)}</title>']
    for i, (figure, (value, unit), threshold) in enumerate(rows):
        y = 6 + i * row_h
        # A share is drawn on 0-100%; a time on its own scale, its target two thirds of the way.
        scale = 1.0 if unit == "%" else max(value, 1.5 * threshold[0] if threshold else value) * 1.05 or 1.0
        length = max(1.0, min(1.0, value / scale) * bar_w)
        n = f" (n={figure.n:,})" if figure.n else ""
        first_y = y + 17 - 7 * (len(lines[i]) - 1)
        out.append(f'<text x="{label_w}" y="{first_y}" text-anchor="end" fill="#222">'
                   + "".join(f'<tspan x="{label_w}" dy="{0 if j == 0 else 15}">{e(part)}</tspan>'
                             for j, part in enumerate(lines[i])) + "</text>")
        out.append(f'<rect x="{bar_x}" y="{y + 4}" width="{bar_w}" height="18" fill="#eceff1"/>')
        colour = _COLOURS.get(figure.verdict, _COLOURS[None])
        if figure.verdict is None and threshold is not None and (
                value < threshold[0] if unit == "%" else value > threshold[0]):
            colour = _BEYOND  # past its mark, though no agreed objective judges it
        out.append(f'<rect x="{bar_x}" y="{y + 4}" width="{length:.1f}" height="18" fill="{colour}"/>')
        out.append(f'<text x="{bar_x + bar_w + 6}" y="{y + 17}" fill="#222">{e(figure.value)}'
                   f'<tspan fill="#666" font-size="11">{e(n)}</tspan></text>')
        if threshold is not None:
            x = bar_x + min(1.0, threshold[0] / scale) * bar_w
            out.append(f'<line x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + 25}" stroke="#000" '
                       f'stroke-width="2"/>')
    out.append(f'<text x="{bar_x + bar_w}" y="{height - 4}" text-anchor="end" fill="#666" font-size="11">green met, red breached, '
               'orange past the mark; the black mark is the target or the usual</text>')
    out.append("</svg>")
    return "".join(out)


# -- Markdown, HTML, JSON, CSV -------------------------------------------------------------------


def _story_lines_md(number: int, story: Story, report: Report) -> list[str]:
    out = [f"### {number}. {story.headline}", ""]
    if story.since_text:
        out += [f"*{story.since_text[0].upper()}{story.since_text[1:]}.*", ""]
    out += ["| figure | value | against | samples | verdict |", "|---|---|---|---|---|"]
    out += [f"| {f.label} | {f.value} | {f.threshold or ''} | {_samples(f.n)} | {f.verdict or ''} |"
            for f in story.figures]
    out.append("")
    if story.blame:
        out += [f"Where the time went: {story.blame}.", ""]
    if story.lenses:
        out += ["Why the SLA could not see it:", ""]
        out += [f"- **{lens.title}**" + (f" (“{lens.sla}”)" if lens.sla else "") + f": {lens.text}"
                for lens in story.lenses]
        out.append("")
    if story.suggestion_yaml:
        out += ["An objective the trust might add:", "", "```yaml", story.suggestion_yaml.rstrip(), "```", ""]
    return out


def to_markdown(report: Report) -> str:
    """The report as Markdown: the verdict, the findings, the month in words, then the figures."""
    out = [f"# {_title(report)}", "", _subtitle(report), ""]
    if report.simulated:
        out += [f"> {_SIMULATED_NOTE}", ""]
    out += [f"**{report.verdict}**", ""]
    if report.stories:
        out += ["## What was found", ""]
        for number, story in enumerate(report.stories, start=1):
            out += _story_lines_md(number, story, report)
    out += ["## The month in plain words", ""]
    out += [f"- {line}" for line in _setup_words(report) + _month_lines(report)] + [""]
    if report.setup:
        out += ["```yaml", report.setup, "```", ""]
    out += ["## Appendix: the figures", ""]
    for title, header, rows in _tables(report):
        out += [f"### {title}", ""]
        if not rows:
            out += [_empty(report), ""]
            continue
        cells = [[c.replace("|", "\\|") for c in row] for row in rows]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(row) + " |" for row in cells]
        out.append("")
    out.append(_FOOTNOTE)
    return "\n".join(out) + "\n"


_STYLE = (
    "body{font-family:Helvetica,Arial,sans-serif;max-width:60em;margin:1.5em auto;padding:0 1em;"
    "color:#222;line-height:1.4}"
    ".verdict{font-size:1.35em;font-weight:bold;border-left:6px solid #c62828;padding:.4em .8em;"
    "background:#fff5f5}"
    ".verdict.calm{border-color:#2e7d32;background:#f4fbf4}.verdict.quiet{border-color:#90a4ae;"
    "background:#f5f7f8}"
    ".simulated{color:#6d4c41;background:#fff8e1;padding:.3em .6em}"
    ".story{border-top:1px solid #ddd;margin-top:1.2em;padding-top:.6em}.since{color:#555}"
    "table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:left;vertical-align:top}pre{background:#f5f5f5;padding:.6em;white-space:pre-wrap;"
    "overflow-wrap:anywhere}svg,img{max-width:100%;height:auto}"
    ".appendix{font-size:.9em;color:#333}"
)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</tbody></table>")


def _verdict_class(report: Report) -> str:
    if not report.has_data or (not report.slas and not report.objectives):
        return "verdict quiet"
    if any(s.kind != "reverse" for s in report.stories) or any(r.met is False for r in report.slas) \
            or any(o.met is False for o in report.objectives):
        return "verdict"
    return "verdict calm"


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page: inline styles and SVG pictures, no scripts, no
    external resources, so it reads the same when forwarded by e-mail."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(_title(report))}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(_title(report))}</h1>", f"<p>{e(_subtitle(report))}</p>"]
    if report.simulated:
        parts.append(f'<p class="simulated">{e(_SIMULATED_NOTE)}</p>')
    parts.append(f'<p class="{_verdict_class(report)}">{e(report.verdict)}</p>')
    if report.stories:
        parts.append('<h2 id="findings">What was found</h2>')
        for number, story in enumerate(report.stories, start=1):
            parts.append(f'<div class="story"><h3>{number}. {e(story.headline)}</h3>')
            if story.since_text:
                parts.append(f'<p class="since">{e(story.since_text[0].upper() + story.since_text[1:])}.</p>')
            picture = story_svg(story)
            if picture:
                parts.append(f"<div>{picture}</div>")
            if story.blame:
                parts.append(f"<p>Where the time went: {e(story.blame)}.</p>")
            if story.lenses:
                parts.append("<p>Why the SLA could not see it:</p><ul>")
                parts += [f"<li><b>{e(lens.title)}</b>" + (f" (“{e(lens.sla)}”)" if lens.sla else "")
                          + f": {e(lens.text)}</li>" for lens in story.lenses]
                parts.append("</ul>")
            if story.suggestion_yaml:
                parts.append(f"<p>An objective the trust might add:</p><pre>{e(story.suggestion_yaml.rstrip())}</pre>")
            parts.append("</div>")
    parts.append('<h2 id="month">The month in plain words</h2><ul>')
    parts += [f"<li>{e(line)}</li>" for line in _setup_words(report) + _month_lines(report)]
    parts.append("</ul>")
    if report.setup:
        parts.append(f"<pre>{e(report.setup)}</pre>")
    parts.append('<div class="appendix"><h2 id="appendix">Appendix: the figures</h2>')
    for title, header, rows in _tables(report):
        parts.append(f"<h3>{e(title)}</h3>")
        parts.append(_html_table(header, rows) if rows else f"<p>{_empty(report)}</p>")
    parts.append(f"<p>{e(_FOOTNOTE)}</p></div></body></html>")
    return "\n".join(parts) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) or math.isinf(float(value)) else float(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, dt.datetime | pd.Timestamp):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_plain(dict(row)) for row in frame.to_dict(orient="records")]


def _story_json(story: Story, report: Report) -> dict[str, Any]:
    """The story in the one JSON shape every reader gives it (``Story.to_json``), with the
    display names of its workflow and sites."""
    return {
        **story.to_json(),
        "workflow_title": report.workflow_title(story.workflow) if story.workflow else None,
        "site_titles": [report.site_title(s) for s in story.sites],
    }


def to_json(report: Report) -> str:
    """The report as JSON, every figure (NaN as ``null``, times as ISO 8601)."""
    m = report.measured
    document = {
        "month": report.month, "timezone": report.timezone, "start": report.start,
        "end": report.end, "generated_at": report.generated_at, "simulated": report.simulated,
        "has_data": report.has_data, "verdict": report.verdict, "headline": report.headline,
        "measured": {"runs": m.runs, "requests": m.requests, "days": m.days,
                     "workflows": list(m.workflows), "sites": list(m.sites), "first": m.first,
                     "last": m.last},
        "slas": [{
            "name": r.name, "wording": r.wording, "metric": r.metric, "value": r.value,
            "target": r.target, "met": r.met, "verdict": _verdict_word(r.met),
            "budget_remaining": r.budget_remaining, "budget_words": budget,
            "samples": r.samples, "excluded": r.excluded,
            "outside_service_hours": r.outside_service_hours, "data_source": r.data_source,
            "window_start": r.window_start, "window_end": r.window_end,
            "budgeting_method": r.budget.method if r.budget else None,
        } for r, budget in zip(report.slas, report.sla_budgets, strict=True)],
        "objectives": [{
            "name": o.objective.name, "workflow": o.objective.workflow,
            "threshold_s": o.objective.threshold_s, "target": o.objective.target,
            "budgeting_method": o.overall.method, "value": o.overall.value,
            "met": o.met, "verdict": _verdict_word(o.met), "samples": o.overall.samples,
            "apdex": o.apdex.display, "scopes": _records(o.scopes),
        } for o in report.objectives],
        "apdex": _records(report.apdex),
        "findings": [_story_json(s, report) for s in report.stories],
        "changes": [{"title": c.title, "at": c.at, "workflows": c.workflows,
                     "verdict": NOT_ENOUGH_DATA if i.empty else None,
                     "impact": _records(i)} for c, i in zip(report.change_events, report.changes,
                                                            strict=True)],
        "missed_slots": report.missed_slots,
        "setup_yaml": report.setup or None,
    }
    return json.dumps(_plain(document), indent=2, allow_nan=False) + "\n"


def to_csv(report: Report) -> str:
    """The report's figures (its appendix) as one CSV: a ``table`` column names each row's table."""
    out = io.StringIO()
    writer = csv.writer(out)
    for title, header, rows in _tables(report):
        writer.writerow(["table", *header])
        writer.writerows([title, *map(spreadsheet_safe, row)] for row in rows)  # no formulas run
        writer.writerow([])
    return out.getvalue()


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt``: ``md``, ``html``, ``json`` or ``csv``.

    Raises:
        ValueError: another format.
    """
    renderers = {"md": to_markdown, "html": to_html, "json": to_json, "csv": to_csv}
    if fmt not in renderers:
        raise ValueError(f"format is one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")
    return renderers[fmt](report)
