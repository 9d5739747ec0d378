"""Findings as people read them: one :class:`Story` per thing worth saying about a window.

:func:`find_stories` is the one place findings are computed; the command-line report, the
dashboard's overview and report page and the notebooks all call it with the same inputs, so they
tell the same stories.

Its inputs are a :class:`FindingInputs`: the analysis sections of the configuration (SLAs,
objectives, periods, task volumes, changes) and, for display names and thresholds, the
workflows and sites as :class:`WorkflowLabel` and :class:`SiteLabel`. Analysis does not import
the collector: :meth:`FindingInputs.from_config` reads any object with those attributes (the
root ``WardwatchConfig``, or the dashboard's context).

Kinds of story (docs/findings.md has every threshold and default):

- ``watermelon``: an SLA met and an experience objective breached in a scope (workflow x site x
  period), from :func:`analysis.watermelon.find_watermelons`;
- ``unwatched_wait``: a recurring wait no objective covers, found over the hours of the week
  (:func:`analysis.discovery.recurring_waits`), merged across sites and workflows, with the
  objective a trust might add; or a site behind a slow link (:func:`analysis.discovery.site_gaps`);
- ``reverse``: an SLA breached while the experience objectives of its workflows are met, told
  with the wait outside every clinical period that explains it (the nightly batch nobody waits
  on);
- ``event``: runs failing together, with the time and duration the runs bound
  (:func:`analysis.discovery.failure_episodes`);
- ``change``: a configured change after which a workflow waits longer
  (:func:`analysis.changes.change_impact`); for a browser workflow, with the lens "the API was
  fast, the screen was not" (:func:`analysis.screen.screen_change`);
- ``server_time``: where the EPR's own server spans join the probe's steps, a step whose wait grew
  while its server time did not (or did), compared between the window's first and last thirds
  (:mod:`analysis.server_time`);
- ``quiet_site``: a site that has gone quiet (:func:`analysis.site_health.site_health`), when
  the window reaches the present: "Ward 7 has not reported since 08:12".

The step a story blames is the one whose own time grew against its own baseline (before the
change, or outside the period or band), "the X step" only of a majority of the growth
(:func:`analysis.discovery.step_growth`). Runs the probe stopped itself (``interrupted``) are
never judged.

Every story carries its figures (the SLA's view first, then the clinicians'), each with its
threshold and sample count, the lenses that explain why the SLA could not see it (each lens once,
naming the SLA it explains), and a headline in plain words with display names.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.calendar import ClinicalCalendar
from analysis.changes import change_impact
from analysis.config import (
    WEEKDAYS,
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
)
from analysis.discovery import (
    BIN_MINUTES,
    EVERY_DAY_SHARE,
    USUAL_FACTOR,
    Band,
    FailureEpisode,
    SiteGap,
    StepGrowth,
    failure_episodes,
    PHASES,
    gap_runs,
    growth_from_medians,
    local_runs,
    recurring_waits,
    site_gaps,
)
from analysis.medians import exact_medians
from analysis.names import step_title
from analysis.objectives import ALL_HOURS, judged_runs
from analysis.query.dialect import count_distinct_dense
from analysis.screen import screen_change
from analysis.server_time import MIN_STEPS, PartGrew, compared_windows, parts_grown, server_time
from analysis.site_health import DEFAULT_QUIET_AFTER_S, site_health
from analysis.sla import SLAResult, counted_requests, evaluate_sla
from analysis.store import FrameCache, Store, to_pandas
from analysis.watermelon import Finding, Lens, TimeLost, duration_text, find_watermelons

__all__ = [
    "DEFAULT_THRESHOLD_S",
    "Figure",
    "FindingInputs",
    "SiteLabel",
    "Story",
    "WorkflowLabel",
    "find_stories",
    "percent_text",
    "seconds_text",
    "share_text",
    "sla_figure",
    "time_lost_figure",
]

# Without an objective, a workflow is judged against this (a task, not a single click: several
# seconds of waiting in series already break a clinician's flow).
DEFAULT_THRESHOLD_S = 3.0


@dataclass(frozen=True)
class Figure:
    """One number a reader needs, always with its threshold and sample count.

    Attributes:
        label: what it is ("runs within 3 s", "supplier's mean response time").
        value: formatted, with units; percentages, not ratios ("84%", "0.71 s").
        threshold: what it is held against ("target 90%", "≤ 2 s"), or ``None``.
        n: the sample count behind the value.
        verdict: ``met``, ``breached`` or ``None``.
    """

    label: str
    value: str
    threshold: str | None = None
    n: int | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class Story:
    """One finding as people read it.

    Attributes:
        kind: ``watermelon`` (SLA met, objective breached), ``unwatched_wait`` (no objective
            covers it; a recurring wait discovered), ``reverse`` (SLA breached, nobody waiting),
            ``event`` (an outage, failing runs), ``change``, ``server_time`` (the wait grew, and
            which part: the EPR's servers or the rest) or ``quiet_site`` (a site stopped
            reporting).
        headline: one plain sentence with display names.
        since: UTC: the first window it appeared in, or the change's time; ``None`` if unknown.
        since_text: "since Mon 2 Nov", "after Release 24.3 (Sat 14 Nov 06:00)", or "".
        workflow: the workflow's id (for filters and links).
        sites: the sites' ids; ``()`` means every site.
        period: the clinical period's name, or ``None``.
        figures: the SLA's view first, then the clinicians'.
        lenses: why the SLA could not see it; each lens once, ``Lens.sla`` naming the SLA it
            explains.
        blame: the step (and layer) whose time grew, in words, or ``None``.
        suggestion_yaml: the objective a trust might add, as YAML for the ``objectives``
            section, or ``None``.
        severity_s: ordering key, clinician seconds lost (or an equivalent); larger first.
        detail: every number behind it, JSON-able.
    """

    kind: str
    headline: str
    since: dt.datetime | None
    since_text: str
    workflow: str | None
    sites: tuple[str, ...]
    period: str | None
    figures: tuple[Figure, ...]
    lenses: tuple[Lens, ...]
    blame: str | None
    suggestion_yaml: str | None
    severity_s: float
    detail: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The story as JSON-ready data (``--format json``): every field, instants in ISO 8601,
        lenses with their plain titles."""
        return _json({  # type: ignore[return-value]
            "kind": self.kind, "headline": self.headline, "since": self.since,
            "since_text": self.since_text, "workflow": self.workflow, "sites": list(self.sites),
            "period": self.period,
            "figures": [{"label": f.label, "value": f.value, "threshold": f.threshold, "n": f.n,
                         "verdict": f.verdict} for f in self.figures],
            "lenses": [{"name": lens.name, "title": lens.title, "text": lens.text,
                        "figures": dict(lens.figures), "sla": lens.sla} for lens in self.lenses],
            "blame": self.blame, "suggestion_yaml": self.suggestion_yaml,
            "severity_s": self.severity_s, "detail": self.detail,
        })


@dataclass(frozen=True)
class WorkflowLabel:
    """A workflow as findings name and judge it.

    Attributes:
        name: its id.
        title: its display name ("Open patient record").
        threshold_s: T, the waiting a clinician accepts: the first objective's on the workflow,
            else :data:`DEFAULT_THRESHOLD_S`.
        threshold_source: ``objective 'NAME'`` or ``default``.
    """

    name: str
    title: str
    threshold_s: float = DEFAULT_THRESHOLD_S
    threshold_source: str = "default"


@dataclass(frozen=True)
class SiteLabel:
    """A site as findings name it: its id, display name and IANA time zone."""

    name: str
    title: str
    timezone: str = "UTC"


def _title_from_name(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").capitalize()


@dataclass(frozen=True)
class FindingInputs:
    """Everything :func:`find_stories` reads besides the store and the calendar.

    Attributes:
        workflows: the configured workflows (display names, thresholds).
        sites: the configured sites (display names, time zones).
        slas, objectives, periods, task_volumes, changes: the analysis sections.
        timezone: the zone dates are written in when a story spans sites.
    """

    workflows: tuple[WorkflowLabel, ...] = ()
    sites: tuple[SiteLabel, ...] = ()
    slas: tuple[SLAConfig, ...] = ()
    objectives: tuple[ObjectiveConfig, ...] = ()
    periods: tuple[PeriodConfig, ...] = ()
    task_volumes: tuple[TaskVolumeConfig, ...] = ()
    changes: tuple[ChangeEventConfig, ...] = ()
    timezone: str = "Europe/London"

    @classmethod
    def from_config(cls, config: Any, timezone: str | None = None) -> FindingInputs:
        """The inputs from the root configuration (or any object with its attributes:
        ``workflows`` and ``sites`` with ``name`` and optional ``title``/``timezone``, and the
        analysis sections)."""
        objectives = tuple(getattr(config, "objectives", ()) or ())
        thresholds: dict[str, tuple[float, str]] = {}
        for objective in objectives:
            thresholds.setdefault(objective.workflow,
                                  (objective.threshold_s, f"objective '{objective.name}'"))
        workflows = tuple(
            WorkflowLabel(w.name, getattr(w, "title", None) or _title_from_name(w.name),
                          *thresholds.get(w.name, (DEFAULT_THRESHOLD_S, "default")))
            for w in getattr(config, "workflows", ()) or ())
        sites = tuple(SiteLabel(s.name, getattr(s, "title", None) or s.name,
                                getattr(s, "timezone", None) or "UTC")
                      for s in getattr(config, "sites", ()) or ())
        if timezone is None:
            dashboard = getattr(config, "dashboard", None)
            timezone = (getattr(dashboard, "timezone", None) or getattr(config, "timezone", None)
                        or "Europe/London")
        return cls(workflows=workflows, sites=sites,
                   slas=tuple(getattr(config, "slas", ()) or ()), objectives=objectives,
                   periods=tuple(getattr(config, "periods", ()) or ()),
                   task_volumes=tuple(getattr(config, "task_volumes", ()) or ()),
                   changes=tuple(getattr(config, "changes", ()) or ()), timezone=timezone)

    def workflow(self, name: str) -> WorkflowLabel:
        """The named workflow; one known only from the data gets a title from its id."""
        for label in self.workflows:
            if label.name == name:
                return label
        for objective in self.objectives:
            if objective.workflow == name:
                return WorkflowLabel(name, _title_from_name(name), objective.threshold_s,
                                     f"objective '{objective.name}'")
        return WorkflowLabel(name, _title_from_name(name))

    def site_title(self, name: str) -> str:
        return next((s.title for s in self.sites if s.name == name), name)

    def display_name(self, name: str) -> str:
        """A site's or a workflow's display name, by its id (the id when neither knows it)."""
        site = self.site_title(name)
        if site != name:
            return site
        return next((w.title for w in self.workflows if w.name == name), name)

    def calendar(self) -> ClinicalCalendar:
        """The clinical calendar these inputs describe."""
        return ClinicalCalendar(list(self.periods), {s.name: s.timezone for s in self.sites},
                                default_timezone=self.timezone)


# -- formatting -------------------------------------------------------------------------------

def _nan(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def seconds_text(value: float | None) -> str:
    """0.71 s, 2.8 s, 20 s; milliseconds below 0.1 s."""
    if _nan(value):
        return "n/a"
    assert value is not None
    if value < 0.1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s" if value < 1 else f"{value:.1f} s"
    return f"{value:.0f} s"


def percent_text(ratio: float | None, digits: int = 0) -> str:
    if _nan(ratio):
        return "n/a"
    assert ratio is not None
    return f"{ratio * 100:.{digits}f}%"


def share_text(ratio: float) -> str:
    """A share in words' figures: "76%", and "99.7%" rather than a rounded "100%"."""
    return percent_text(ratio, 1 if 0.99 <= ratio < 1 else 0)


def _json(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json(value.item())
    return value


def sla_figure(result: SLAResult) -> Figure:
    """The SLA's own figure as the contract computes it, with its target and verdict."""
    verdict = None if result.met is None else ("met" if result.met else "breached")
    if result.metric in ("mean", "percentile"):
        return Figure(result.name, seconds_text(result.value), f"≤ {result.target:g} s",
                      result.samples, verdict)
    digits = 1 if result.target >= 0.99 else 0
    return Figure(result.name, percent_text(result.value, digits + 1 if digits else 1),
                  f"target {percent_text(result.target, digits + 1 if digits else 0)}",
                  result.samples, verdict)


def _sla_clause(results: Sequence[SLAResult], verb: str) -> str:
    parts = [f"“{r.name}” ({sla_figure(r).value})" for r in results]
    if len(parts) == 1:
        return f"the SLA {parts[0]} was {verb}"
    return f"the SLAs {', '.join(parts[:-1])} and {parts[-1]} were {verb}"


def _lenses(finding: Finding) -> tuple[Lens, ...]:
    """Each lens once: the first SLA's, naming the SLA it explains (a lens that does not depend
    on an SLA explains the finding's first)."""
    out: dict[str, Lens] = {}
    for lens in finding.lenses:
        if lens.name in out:
            continue
        out[lens.name] = lens if lens.sla is not None else Lens(
            lens.name, lens.text, lens.figures, finding.sla.name)
    return tuple(out.values())


# -- times and places in words ------------------------------------------------------------------

_COUNT_WORDS = {2: "both", 3: "all three", 4: "all four", 5: "all five", 6: "all six"}


def _clock(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _hours_text(start_min: int, end_min: int) -> str:
    return f"{_clock(start_min)}–{'24:00' if end_min == 1440 else _clock(end_min)}"


def _day_text(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b}"


def _when_text(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b} {local:%H:%M}"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]



def _chance_text(p_value: float) -> str:
    """How likely chance alone made the difference (a Mann-Whitney p-value), in words."""
    if p_value < 0.001:
        return "chance alone: under 1 in 1,000"
    return f"chance alone: about 1 in {max(1, round(1 / p_value)):,}" if p_value > 0 else "chance alone: nil"


def _layer_text(layer: str | None) -> str:
    return {"network": "network: DNS, connect and TLS", "server": "server: time to first byte",
            "transfer": "transfer of the response"}.get(layer or "", "")


def _blame_text(growth: StepGrowth, baseline: str) -> tuple[str | None, str | None]:
    """(the blame in words, the blamed step): a step only when it holds most of the growth."""
    if growth.step is None:
        return None, None
    layer = _layer_text(growth.layer)
    layer = f"; {layer}" if layer else ""
    if growth.majority:
        return (f"the {step_title(growth.step)} step (+{seconds_text(growth.growth_s)} against its own median "
                f"{baseline}, {share_text(growth.share)} of the increase{layer})", growth.step)
    return (f"no single step: every step waited longer (the largest, {step_title(growth.step)}, "
            f"+{seconds_text(growth.growth_s)}, {share_text(growth.share)} of the increase"
            f"{layer})", None)


# A run's steps start after it: those of a run that began just before the window's end are read
# up to this much later.
STEP_SLACK = dt.timedelta(hours=1)


# -- the computation's shared state -------------------------------------------------------------

@dataclass
class _Context:
    store: FrameCache
    inputs: FindingInputs
    calendar: ClinicalCalendar
    start: dt.datetime
    end: dt.datetime
    base_dir: Path | None
    changes: tuple[ChangeEventConfig, ...]
    thresholds: dict[str, tuple[float, str]]
    frame: pd.DataFrame  # the window's judged runs, as discovery.local_runs gives them
    sla_results: dict[str, SLAResult] = field(default_factory=dict)
    gaps: dict[tuple[str, str], SiteGap] = field(default_factory=dict)  # (workflow, site)

    def trace_ids(self, rows: np.ndarray) -> pa.Array:
        """The trace ids of the runs at ``rows`` (positions, or a mask, over :attr:`frame`), as
        Arrow strings for DuckDB (never a Python string per run)."""
        return pa.array(self.frame["trace_id"].array[rows])

    def growth(self, affected: np.ndarray, baseline: np.ndarray) -> StepGrowth:
        """:func:`analysis.discovery.step_growth` computed in DuckDB over the store's steps (a
        month of steps is never loaded into memory). ``affected`` and ``baseline`` are masks
        over :attr:`frame`; a run in both is affected.

        A run has one step span per step (step names are unique within a workflow), so the
        per-run time of a step is its span's: no per-run sums are grouped (2.8 million groups
        at 10M spans), and the medians are found by rank (:mod:`analysis.medians`) rather than
        held whole."""
        baseline = baseline & ~affected
        rows = np.flatnonzero(affected | baseline)
        if not len(rows):
            return growth_from_medians(pd.DataFrame(columns=["role", "step", "duration_s", *PHASES]))
        roles = pa.table({"trace_id": self.trace_ids(rows), "role": pa.array(affected[rows], pa.bool_())})
        # Only the steps of the compared runs' workflows and sites, from an hour before the first
        # to an hour after the last (STEP_SLACK), are read and joined to them: a watermelon's
        # runs are one workflow at one site, a ninth of the month's steps here.
        compared = self.frame.iloc[rows]
        params: list[object] = [
            max(self.start, (compared["start"].min() - STEP_SLACK).to_pydatetime()),
            min(self.end, compared["start"].max().to_pydatetime()) + STEP_SLACK]
        where = ""
        for column in ("workflow", "site"):
            if not compared[column].isna().any():
                where += f" AND list_contains(?, s.{column})"
                params.append(sorted(str(v) for v in compared[column].unique()))
        columns = ["duration_s", *PHASES]
        source = f"""
            SELECT r.role, s.step, {", ".join(f"s.{c}" for c in columns)}
            FROM steps AS s JOIN roles AS r USING (trace_id)
            WHERE s.start >= ? AND s.start < ?{where} AND s.step IS NOT NULL"""
        return growth_from_medians(exact_medians(
            self.store, source, params, ["role", "step"], columns,
            tables={"roles": roles}))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.inputs.timezone)

    def sla(self, sla: SLAConfig) -> SLAResult:
        if sla.name not in self.sla_results:
            self.sla_results[sla.name] = evaluate_sla(self.store, sla, self.start, self.end,
                                                      base_dir=self.base_dir)
        return self.sla_results[sla.name]

    def latency_slas(self, workflows: Sequence[str]) -> list[SLAResult]:
        """The judged latency SLAs that count some of ``workflows``' requests."""
        out = []
        for sla in self.inputs.slas:
            if sla.metric == "availability":
                continue
            if sla.workflows and not set(sla.workflows) & set(workflows):
                continue
            result = self.sla(sla)
            if result.met is not None:
                out.append(result)
        return out

    def availability_slas(self) -> list[SLAResult]:
        return [r for r in (self.sla(s) for s in self.inputs.slas if s.metric == "availability")
                if r.met is not None]

    def sites_of(self, workflow: str) -> list[str]:
        return sorted(str(s) for s in self.frame.loc[self.frame["workflow"] == workflow, "site"].unique())

    def sites_text(self, sites: Sequence[str], of: Sequence[str]) -> str:
        sites = sorted(set(sites))
        if len(of) > 1 and set(sites) >= set(of):
            return f"at {_COUNT_WORDS.get(len(of), f'all {len(of)}')} sites"
        return "at " + _and([self.inputs.site_title(s) for s in sites])

    def title(self, workflow: str) -> str:
        return self.inputs.workflow(workflow).title

    def change_before(self, first: dt.datetime | None, observed_from: dt.datetime | None,
                      workflows: Sequence[str] = ()) -> ChangeEventConfig | None:
        """The change (to one of ``workflows``, or to every workflow) that came between the
        first run observed without the story and its first appearance (within a day), if any."""
        if first is None or observed_from is None:
            return None
        for change in sorted(self.changes, key=lambda c: c.at, reverse=True):
            at = change.at.astimezone(dt.UTC)
            if change.workflows and workflows and not set(change.workflows) & set(workflows):
                continue
            if observed_from < at <= first and first - at <= dt.timedelta(days=1):
                return change
        return None

    def since_text(self, first: dt.datetime | None, observed_from: dt.datetime | None = None,
                   workflows: Sequence[str] = ()) -> str:
        """"since Mon 12 Oct", or "after Release 24.3 (...)" when a change came between the
        first run observed without it and its first appearance."""
        if first is None:
            return ""
        change = self.change_before(first, observed_from, workflows)
        if change is not None:
            return f"after {change.title} ({_when_text(change.at, self.zone)})"
        day = _day_text(first, self.zone)
        # On the window's first day with runs, what came before is unseen: it may be older.
        if day == _day_text(self.frame["start"].min(), self.zone):
            first_of = "the window's" if day == _day_text(self.start, self.zone) else "the data's"
            return f"since {day} or before ({first_of} first day)"
        return f"since {day}"


def _categorical(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with its names (workflow, site, status, error type) as categories in sorted
    order: a byte a run instead of a string, grouped in the same order as the strings."""
    for column in ("workflow", "site", "status", "error_type"):
        runs[column] = runs[column].astype(pd.CategoricalDtype(sorted(runs[column].dropna().unique())))
    return runs


def _sites(runs: pd.DataFrame) -> set[str]:
    return {str(s) for s in runs["site"].dropna().unique()}


def _thresholds(inputs: FindingInputs, runs: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """Each workflow's T: its objective's, else ``DEFAULT_THRESHOLD_S``, or twice its median at
    its quickest site when that is longer (a 40-request handover list is not one click)."""
    out: dict[str, tuple[float, str]] = {}
    ok = (runs["status"] == "ok").to_numpy(dtype=bool, na_value=False)
    medians = runs.loc[ok, ["workflow", "site", "waiting_s"]].groupby(["workflow", "site"])["waiting_s"].median()
    workflows = {str(w) for w in runs["workflow"].dropna().unique()} | {w.name for w in inputs.workflows}
    for workflow in sorted(workflows):
        label = inputs.workflow(workflow)
        if label.threshold_source != "default":
            out[workflow] = (label.threshold_s, label.threshold_source)
            continue
        quickest = float(medians.loc[workflow].min()) if workflow in medians.index else math.nan
        if not math.isnan(quickest) and 2 * quickest > DEFAULT_THRESHOLD_S:
            out[workflow] = (round(2 * quickest, 1),
                             "default: twice its median at its quickest site")
        else:
            out[workflow] = (DEFAULT_THRESHOLD_S, f"default: {DEFAULT_THRESHOLD_S:g} s")
    return out


# -- stories from the configured objectives ----------------------------------------------------

def _objective_since(ctx: _Context, objective: ObjectiveConfig, site: str, period: str
                     ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(the start of the first local day the scope missed its target, the first run judged)."""
    frame = ctx.frame[(ctx.frame["workflow"] == objective.workflow) & (ctx.frame["site"] == site)]
    if period != ALL_HOURS and not frame.empty:
        frame = frame[frame[f"in {period}"].to_numpy()]
    if frame.empty:
        return None, None
    good = frame["ok"] & (frame["waiting_s"].astype(float) <= objective.threshold_s)
    daily = good.groupby(frame["date"]).mean()
    missed = daily[daily < objective.target]
    if missed.empty:
        return None, pd.Timestamp(frame["start"].min()).to_pydatetime()
    day = missed.index[0]
    first = frame.loc[frame["date"] == day, "start"].min()
    return pd.Timestamp(first).to_pydatetime(), pd.Timestamp(frame["start"].min()).to_pydatetime()


def _spread(scope: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` over the rows ``scope`` selects, as a mask over all rows."""
    out = np.zeros(len(scope), dtype=bool)
    out[scope] = mask
    return out


def time_lost_figure(lost: TimeLost, threshold_s: float) -> Figure:
    """Clinician time lost, with the assumption it rests on where a figure has its threshold:
    scaled to the clinicians' tasks where a task volume is configured, else the probe's own runs'
    waiting beyond the threshold they were judged by."""
    if lost.scaled_hours is not None and not math.isnan(lost.scaled_hours):
        return Figure("clinician time lost", duration_text(lost.scaled_hours), lost.assumption,
                      lost.runs, None)
    return Figure(f"the probe's runs waited beyond {threshold_s:g} s", duration_text(lost.observed_s / 3600),
                  lost.assumption, lost.runs, None)


def _judged_in(experience: Mapping[str, object], objective: ObjectiveConfig | None) -> tuple[str, int]:
    """What an objective's value is a share of, in words for a figure's label, and how many: its
    runs (Occurrences), or its windows (Timeslices, RatioTimeslices: 96% is of the windows)."""
    windows = experience.get("windows")
    if experience.get("method", "Occurrences") == "Occurrences" or windows is None or objective is None:
        return "", int(experience["runs"])  # type: ignore[call-overload]
    return f", judged in {objective.window_minutes}-minute windows", int(windows)  # type: ignore[call-overload]


def _watermelon_story(ctx: _Context, f: Finding) -> Story:
    inputs = ctx.inputs
    workflow = inputs.workflow(f.workflow)
    site = inputs.site_title(f.site or "")
    objective = next((o for o in inputs.objectives if o.name == f.objective), None)
    t = objective.threshold_s if objective is not None else workflow.threshold_s
    runs = int(f.experience["runs"])  # type: ignore[call-overload]
    value = float(f.experience["value"])  # type: ignore[arg-type]
    target = float(f.experience["target"])  # type: ignore[arg-type]
    during = "" if f.period == ALL_HOURS else f" during {f.period}"
    p90 = f.experience.get("p90_s")
    headline = (
        f"{workflow.title} at {site}{during}: {percent_text(value)} of runs within {t:g} s "
        f"against a target of {percent_text(target)} (the slowest tenth over "
        f"{seconds_text(p90)}), while {_sla_clause(f.slas, 'met')}."  # type: ignore[arg-type]
    )
    figures = [sla_figure(r) for r in f.slas]
    judged, counted = _judged_in(f.experience, objective)
    figures.append(Figure(f"runs within {t:g} s{during}{judged}", percent_text(value),
                          f"target {percent_text(target)}", counted, "breached"))
    if f.time_lost is not None and f.time_lost.runs:  # before the tail: the overview shows a finding's first four
        figures.append(time_lost_figure(f.time_lost, t))
    figures.append(Figure(f"9 in 10 runs{during} waited at most", seconds_text(p90),  # type: ignore[arg-type]
                          f"≤ {t:g} s", runs, None))
    # Blame what grew against its own baseline: the same site's runs outside the period.
    scope = (ctx.frame["workflow"] == f.workflow).to_numpy() & (ctx.frame["site"] == f.site).to_numpy()
    frame = ctx.frame[scope]
    inside = (frame[f"in {f.period}"].to_numpy(dtype=bool) if f.period != ALL_HOURS
              else np.ones(len(frame), dtype=bool))
    slow = inside & (frame["waiting_s"].to_numpy(dtype=float) > t) & frame["ok"].to_numpy()
    baseline = ~inside & frame["ok"].to_numpy()
    if f.period == ALL_HOURS:
        baseline = frame["ok"].to_numpy() & ~slow
    growth = ctx.growth(_spread(scope, slow), _spread(scope, baseline))
    blame, blamed = _blame_text(growth, f"outside {f.period}" if f.period != ALL_HOURS
                                else "in the runs within T")
    since, observed = (_objective_since(ctx, objective, f.site or "", f.period)
                       if objective is not None else (None, None))
    period_step = growth.step if growth.majority else None
    change = ctx.change_before(since, observed, [f.workflow])
    if change is not None:
        # It followed a change: what grew since then, in the period, is to blame first; what
        # makes the period differ from the rest of the day is said after it.
        later = (pd.to_datetime(frame["start"]) >= pd.Timestamp(change.at)).to_numpy()
        before = inside & frame["ok"].to_numpy() & ~later
        by_change = ctx.growth(_spread(scope, slow & later), _spread(scope, before))
        if by_change.majority:
            period_blame = blame if growth.majority and growth.step != by_change.step else None
            growth = by_change
            blame, blamed = _blame_text(growth, f"before {change.title}")
            if period_blame:
                blame += f"; in {f.period}, {period_blame}"
    gap = ctx.gaps.get((f.workflow, f.site or ""))
    if blamed is None and gap is not None:
        # Nothing grew in the period or since a change: what sets the site apart is its link.
        blame = (f"the network: about {seconds_text(gap.per_request_gap_s)} more on each of its "
                 f"{gap.requests_per_run:.0f} requests in series than at "
                 f"{_and([inputs.site_title(o) for o in gap.others])} "
                 f"({percent_text(gap.share)} of its waiting)")
        growth = replace(growth, layer="network")
    lost = f.time_lost
    return Story(
        kind="watermelon", headline=headline, since=since,
        since_text=ctx.since_text(since, observed, [f.workflow]), workflow=f.workflow,
        sites=(f.site,) if f.site else (), period=None if f.period == ALL_HOURS else f.period,
        figures=tuple(figures), lenses=_lenses(f), blame=blame, suggestion_yaml=None,
        severity_s=lost.observed_s if lost is not None else 0.0,
        detail=_json({"objective": f.objective, "experience": dict(f.experience),
                      "slas": [r.name for r in f.slas], "blame_step": blamed,
                      "blame_layer": growth.layer, "step_growth_s": growth.steps,
                      "period_step": period_step,
                      "time_lost_s": lost.observed_s if lost else None,
                      "time_lost_hours": lost.scaled_hours if lost else None,
                      "assumption": lost.assumption if lost else None,
                      "summary": f.summary}),  # type: ignore[arg-type]
    )


# "Nobody waiting" is said of an SLA's breach only when this share of its bad requests came outside
# every clinical period; from half to this, the headline says how much came inside them.
NOBODY_WAITING_SHARE = 0.8


def _nobody_waiting(detail: Mapping[str, object]) -> tuple[str, str]:
    """The head of a reverse story's headline and what it adds of the SLA's bad requests that came
    at other hours than those it names, or inside clinical periods (from the story's ``detail``:
    ``share_in_top_hours``, ``share_outside_periods``; None: not known)."""
    def share(key: str) -> float:
        value = detail.get(key)
        return math.nan if value is None else float(value)  # type: ignore[arg-type]

    outside, in_hours = share("share_outside_periods"), share("share_in_top_hours")
    head, tail = "SLA breached, nobody waiting", ""
    if not math.isnan(in_hours) and in_hours < NOBODY_WAITING_SHARE:
        tail = (f" Only {percent_text(in_hours)} of its bad requests came in those hours; the other "
                f"{percent_text(1 - in_hours)} at other hours.")
    if not math.isnan(outside) and outside < NOBODY_WAITING_SHARE:
        head = f"SLA breached, {percent_text(outside)} of it while nobody waits"
        tail += (f" {percent_text(1 - outside)} of its bad requests came inside clinical periods, when "
                 f"clinicians wait.")
    return head, tail


def _reverse_story(ctx: _Context, findings: Sequence[Finding], outage: bool) -> Story | None:
    """SLA breached, nobody waiting: the reverse findings of one SLA (or set of SLAs), one per
    objective met, told once. With ``outage`` (failing runs are an event of their own), an
    availability SLA's breach is left to that event: the story is told of the others, if any.
    When most of the SLA's bad requests came inside a clinical period, somebody was waiting
    where no objective watches: an ``unwatched_wait``, not "nobody waiting"."""
    f = findings[0]
    slas = [r for r in f.slas if not (outage and r.metric == "availability")]
    if not slas:
        return None
    dilution = f.lens("time_dilution") if f.sla in slas else None  # the first SLA's hours
    when = ""
    if dilution is not None and "came " in dilution.text:
        when = " by requests " + dilution.text.split("came ", 1)[1].split(" (", 1)[0]
    outside = dilution.figures.get("share_outside_periods", math.nan) if dilution else math.nan
    by_workflow: dict[str, list[str]] = {}
    for g in findings:
        by_workflow.setdefault(g.workflow, []).append(
            f"“{g.objective}” ({percent_text(float(g.experience['value']))} against "  # type: ignore[arg-type]
            f"{percent_text(float(g.experience['target']))})")  # type: ignore[arg-type]
    met = _and([f"{ctx.title(w)} met {_and(parts)}" for w, parts in by_workflow.items()])
    watched = not math.isnan(outside) and outside < 0.5
    if watched:
        headline = _capital(
            f"{_sla_clause(slas, 'breached')}{when}, mostly inside clinical periods that no "
            f"objective watches, while {met}.")
    else:
        head, tail = _nobody_waiting({"share_outside_periods": outside,
                                      "share_in_top_hours": dilution.figures.get("share_in_top_hours")
                                      if dilution else None})
        headline = f"{head}: {_sla_clause(slas, 'breached')}{when}, yet {met}.{tail}"
    figures = [sla_figure(r) for r in slas]
    for g in findings:
        judged, counted = _judged_in(g.experience, next((o for o in ctx.inputs.objectives if o.name == g.objective), None))
        figures.append(Figure(f"“{g.objective}”{judged}", percent_text(float(g.experience["value"])),  # type: ignore[arg-type]
                              f"target {percent_text(float(g.experience['target']))}",  # type: ignore[arg-type]
                              counted, "met"))
    blame = None
    if f.dominant_step is not None and f.dominant_step_share > 0.5:
        blame = (f"the {step_title(f.dominant_step)} step ({share_text(f.dominant_step_share)} of the "
                 f"slowness the SLA counted)")
    elif f.dominant_step is not None:
        blame = (f"no single step (the largest, {step_title(f.dominant_step)}, has "
                 f"{share_text(f.dominant_step_share)} of the slowness the SLA counted)")
    since, bad_minutes = None, {}
    for result in slas:
        sla = next(s for s in ctx.inputs.slas if s.name == result.name)
        bad = counted_requests(ctx.store, sla, ctx.start, ctx.end, ctx.base_dir, only_bad=True)
        if len(bad):
            first = pd.Timestamp(bad["start"].min()).to_pydatetime()
            since = first if since is None else min(since, first)
        # The half hours of the day (the SLA's zone) holding half its bad requests or more.
        local = pd.to_datetime(bad["start"]).dt.tz_convert(sla.timezone)
        counts = ((local.dt.hour * 60 + local.dt.minute) // BIN_MINUTES).value_counts()
        bins = counts.index[(counts.cumsum() - counts) < 0.5 * counts.sum()].tolist()
        bad_minutes[result.name] = sorted(int(b) * BIN_MINUTES for b in bins)
    return Story(
        kind="unwatched_wait" if watched else "reverse", headline=headline, since=since,
        since_text=ctx.since_text(since), workflow=f.workflow, sites=(), period=None,
        figures=tuple(figures), lenses=_lenses(f), blame=blame, suggestion_yaml=None,
        severity_s=0.0,
        detail=_json({"pattern": "sla_breached_in_periods" if watched else "nobody_waiting",
                      "objective": f.objective, "objectives": [g.objective for g in findings],
                      "experience": dict(f.experience), "slas": [r.name for r in slas],
                      "blame_step": f.dominant_step if f.dominant_step_share > 0.5 else None,
                      "bad_request_minutes": bad_minutes, "share_outside_periods": outside,
                      "share_in_top_hours": dilution.figures.get("share_in_top_hours") if dilution else None,
                      "summary": f.summary}),  # type: ignore[arg-type]
    )


# -- discovered waits ---------------------------------------------------------------------------

def _covered(ctx: _Context, band: Band) -> bool:
    """Whether an objective on the band's workflow judges most of its runs (it speaks for them)."""
    for objective in ctx.inputs.objectives:
        if objective.workflow != band.workflow or (objective.sites and band.site not in objective.sites):
            continue
        if not objective.periods:
            return True
        inside = np.zeros(len(band.rows), dtype=bool)
        for period in objective.periods:
            if period in ctx.calendar.period_names:
                inside |= ctx.frame[f"in {period}"].to_numpy(dtype=bool)[band.rows]
        if inside.mean() >= 0.5:
            return True
    return False


def _in_periods(ctx: _Context, rows: np.ndarray) -> tuple[float, list[str]]:
    """The share of these runs (positions in :attr:`_Context.frame`, each once) inside some
    clinical period at their site, and the periods that hold most of them."""
    if not len(rows) or not ctx.calendar.period_names:
        return 0.0, []
    inside = np.zeros(len(rows), dtype=bool)
    holding = []
    for period in ctx.calendar.period_names:
        mask = ctx.frame[f"in {period}"].to_numpy(dtype=bool)[rows]
        inside |= mask
        if mask.mean() >= 0.5:
            holding.append(period)
    return float(inside.mean()), holding


@dataclass
class _Pattern:
    """Bands of one or more workflows and sites at about the same hours of the same days."""

    day_class: str
    start_min: int
    end_min: int
    bands: list[Band]

    @property
    def workflows(self) -> list[str]:
        """By clinician time lost, largest first."""
        lost: dict[str, float] = {}
        for band in self.bands:
            lost[band.workflow] = lost.get(band.workflow, 0.0) + band.excess_s
        return sorted(lost, key=lambda w: -lost[w])

    @property
    def sites(self) -> list[str]:
        return sorted({b.site for b in self.bands})

    @property
    def excess_s(self) -> float:
        return sum(b.excess_s for b in self.bands)

    @property
    def lost_s(self) -> float:
        """Clinician time lost, as a watermelon's: the runs' waiting beyond T, summed."""
        return sum(b.lost_s for b in self.bands)

    @property
    def first(self) -> dt.datetime:
        return min(b.first for b in self.bands)

    def overlaps(self, band: Band) -> bool:
        if self.day_class != "day" and band.day_class != self.day_class:
            return False
        shared = min(self.end_min, band.end_min) - max(self.start_min, band.start_min)
        return shared >= 0.5 * min(self.end_min - self.start_min, band.end_min - band.start_min)


def _patterns(bands: Sequence[Band]) -> list[_Pattern]:
    """Bands at about the same hours (overlapping by half the shorter) on the same days, across
    sites and workflows: one pattern each, its hours those of the band with most runs."""
    patterns: list[_Pattern] = []
    # "Every day" bands first, so a weekday or weekend band at their hours joins them.
    for band in sorted(bands, key=lambda b: (b.day_class != "day", -b.runs)):
        home = next((p for p in patterns if p.overlaps(band)), None)
        if home is None:
            patterns.append(_Pattern(band.day_class, band.start_min, band.end_min, [band]))
        else:
            home.bands.append(band)
    return patterns


def _days_text(pattern: _Pattern) -> str:
    affected = {d for b in pattern.bands for d in b.days_affected}
    # Counted from its first day: a wait that began mid-window is "every weekday" since then.
    observed = {d for b in pattern.bands for d in b.days_observed if d >= min(affected)}
    every = len(affected) >= EVERY_DAY_SHARE * len(observed)
    return {("weekday", True): "every weekday", ("weekday", False): "on most weekdays",
            ("weekend", True): "every weekend day", ("weekend", False): "on most weekend days",
            ("day", True): "every day", ("day", False): "on most days"}[(pattern.day_class, every)]


def _periodic_text(pattern: _Pattern) -> str:
    shapes = [b.periodic for b in pattern.bands if b.periodic is not None]
    if len(shapes) < max(1, len(pattern.bands) / 2):
        return ""
    every = max({s.every_min for s in shapes}, key=[s.every_min for s in shapes].count)
    shapes = [s for s in shapes if s.every_min == every]
    cycle = "every half hour" if every == 30 else "every hour"
    durations = [s.duration_min for s in shapes if s.duration_min is not None]
    if durations:
        return f"for about {round(float(np.median(durations)))} minutes {cycle}"
    first = shapes[0].first_minute
    minutes = sorted({(first + k) % 60 for k in range(0, 60, every)})
    return f"{cycle} (the runs at {_and([f':{m:02d}' for m in minutes])})"


def _wait_phrase(ctx: _Context, pattern: _Pattern, workflow: str) -> str:
    bands = [b for b in pattern.bands if b.workflow == workflow]
    slow = sum(b.slow for b in bands)
    typical = sum(b.slow_median_s * b.slow for b in bands) / slow
    usual = float(np.median([b.usual_s for b in bands]))
    where = ctx.sites_text([b.site for b in bands], ctx.sites_of(workflow))
    threshold = bands[0].threshold_s
    if typical > threshold:
        return f"{ctx.title(workflow)} takes about {seconds_text(typical)} {where}"
    times = typical / usual if usual > 0 else math.nan
    how = "twice" if 1.8 <= times < 2.3 else f"{times:.1f} times"
    return (f"{ctx.title(workflow)} takes about {seconds_text(typical)} {where}, {how} its "
            f"usual {seconds_text(usual)}")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else " " for ch in text.lower()).split()


def _suggestion(ctx: _Context, pattern: _Pattern) -> str:
    """The objective(s) a trust might add for the pattern, as YAML for ``periods:`` and
    ``objectives:`` (an existing period with these hours and sites is reused)."""
    weekdays = {"weekday": list(WEEKDAYS[:5]), "weekend": list(WEEKDAYS[5:]),
                "day": list(WEEKDAYS)}[pattern.day_class]
    start, end = _clock(pattern.start_min), "23:59" if pattern.end_min >= 1440 else _clock(pattern.end_min)
    reuse = next((p for p in ctx.inputs.periods
                  if p.start.strftime("%H:%M") == start and p.end.strftime("%H:%M") == end
                  and list(p.weekdays) == weekdays
                  and (not p.sites or set(pattern.sites) <= set(p.sites))), None)
    doc: dict[str, object] = {}
    if reuse is not None:
        period_name = reuse.name
    else:
        period_name = f"{'weekdays' if pattern.day_class == 'weekday' else 'weekends' if pattern.day_class == 'weekend' else 'every day'} {start}-{end}"
        doc["periods"] = [{"name": period_name, "weekdays": weekdays, "start": start, "end": end,
                           "sites": pattern.sites}]
    objectives = []
    for workflow in pattern.workflows:
        bands = [b for b in pattern.bands if b.workflow == workflow]
        beyond = sum(b.beyond for b in bands) >= sum(b.slow for b in bands) / 2
        threshold = bands[0].threshold_s if beyond else max(
            0.5, math.ceil(2 * max(b.usual_s * USUAL_FACTOR for b in bands)) / 2)
        objectives.append({
            "name": f"{' '.join(_slug(ctx.title(workflow)))} within {threshold:g} s, {period_name}",
            "workflow": workflow, "threshold_s": threshold, "target": 0.9,
            "periods": [period_name], "sites": sorted({b.site for b in bands}),
        })
    doc["objectives"] = objectives
    lines = ["# Add to wardwatch.yaml (merge into its periods: and objectives: sections)"]
    for section, items in doc.items():
        lines.append(f"{section}:")
        lines += [f"  - {_flow(item)}" for item in items]  # type: ignore[attr-defined]
    return "\n".join(lines) + "\n"


_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # YAML 1.1 reads these


def _flow(value: object) -> str:
    """``value`` as a one-line YAML flow node, as the example configuration writes sections:
    strings quoted (JSON strings are YAML), so times and names read back as written."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str):
        plain = re.fullmatch(r"[a-z][a-z0-9_-]*", value) and value not in _YAML_WORDS
        return value if plain else json.dumps(value, ensure_ascii=False)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lens_sla(ctx: _Context, pattern: _Pattern) -> tuple[SLAResult, float] | None:
    """The SLA a discovered wait's lenses explain (the first met latency SLA on its lead
    workflow, else the first), and the limit its requests are held to."""
    slas = ctx.latency_slas(pattern.workflows[:1])
    if not slas:
        return None
    sla = next((r for r in slas if r.met), slas[0])
    config = next(c for c in ctx.inputs.slas if c.name == sla.name)
    return sla, float(config.threshold_s if config.threshold_s is not None else config.target)


def _band_request_figures(ctx: _Context, patterns: Sequence[_Pattern]) -> pd.DataFrame:
    """For every pattern's lead workflow, its requests' figures (all and the slow runs'), in one
    DuckDB query: ``pattern, slow, requests, runs, mean_s, p95_s, within``."""
    rows, index, slow, limits = [], [], [], []
    for i, pattern in enumerate(patterns):
        chosen = _lens_sla(ctx, pattern)
        if chosen is None:
            continue
        bands = [b for b in pattern.bands if b.workflow == pattern.workflows[0]]
        band_rows = np.concatenate([b.rows for b in bands])
        rows.append(band_rows)
        index.append(np.full(len(band_rows), i, dtype=np.int64))
        slow.append(np.isin(band_rows, np.concatenate([b.slow_rows for b in bands])))
        limits.append(np.full(len(band_rows), chosen[1], dtype=float))
    if not rows:
        return pd.DataFrame(columns=["pattern", "slow", "requests", "runs", "mean_s", "p95_s",
                                     "within"])
    table = pa.table({"trace_id": ctx.trace_ids(np.concatenate(rows)),
                      "pattern": pa.array(np.concatenate(index)), "slow": pa.array(np.concatenate(slow)),
                      "limit_s": pa.array(np.concatenate(limits))})
    return ctx.store.sql("""
        SELECT b.pattern, b.slow, count(*) AS requests, count(DISTINCT q.trace_id) AS runs,
               avg(q.duration_s) AS mean_s, quantile_cont(q.duration_s, 0.95) AS p95_s,
               count(*) FILTER (WHERE q.duration_s <= b.limit_s) AS within
        FROM requests AS q JOIN band AS b USING (trace_id)
        WHERE q.start >= ? AND q.start < ? AND q.source = 'probe' AND q.span_type <> 'auth'
        GROUP BY b.pattern, b.slow""", [ctx.start, ctx.end], tables={"band": table})


def _band_lenses(ctx: _Context, pattern: _Pattern, figures: pd.DataFrame, days: str,
                 hours: str) -> tuple[Lens, ...]:
    """Why the SLA could not see the wait, for its lead workflow: the SLA over all its hours
    against these hours' requests, each request against the whole task, the average against the
    slow runs. Each lens once, explaining the first SLA that was met (else the first).

    ``figures``: the pattern's rows of :func:`_band_request_figures`."""
    chosen = _lens_sla(ctx, pattern)
    if chosen is None or figures.empty:
        return ()
    sla, limit = chosen
    workflow = pattern.workflows[0]
    bands = [b for b in pattern.bands if b.workflow == workflow]
    slow = np.unique(np.concatenate([b.slow_rows for b in bands]))
    ids = np.unique(np.concatenate([b.rows for b in bands]))
    rows = {bool(r["slow"]): r for r in figures.to_dict("records")}
    everyone = figures[["requests", "runs", "within"]].sum()
    mean_all = float((figures["mean_s"] * figures["requests"]).sum() / everyone["requests"])
    title = ctx.title(workflow)
    lenses = [Lens("time_dilution", (
        f"“{sla.name}” counts {sla.samples:,} requests over all its hours: "
        f"{sla_figure(sla).value}; {days} {hours}, the requests of {title} runs: mean "
        f"{seconds_text(mean_all)}, {percent_text(everyone['within'] / everyone['requests'])} "
        f"within {limit:g} s (n={int(everyone['requests']):,})"),
        {"sla_value": sla.value, "sla_requests": sla.samples, "band_mean_s": mean_all,
         "band_requests": int(everyone["requests"])}, sla.name)]
    if True in rows:
        slow_row = rows[True]
        per_run = slow_row["requests"] / slow_row["runs"]
        lenses.append(Lens("per_request", (
            f"each request of the slow runs: {seconds_text(slow_row['mean_s'])} on average, 95 in 100 within "
            f"{seconds_text(slow_row['p95_s'])} (n={int(slow_row['requests']):,}); a run makes "
            f"{per_run:.0f} in series, so the task waits about "
            f"{seconds_text(slow_row['mean_s'] * per_run)}"),
            {"request_mean_s": slow_row["mean_s"], "request_p95_s": slow_row["p95_s"],
             "requests_per_run": per_run}, sla.name))
        runs = sum(b.runs for b in bands)
        share = len(slow) / runs
        waits = ctx.frame["waiting_s"].iloc[ids[ctx.frame["ok"].to_numpy()[ids]]]
        mean_run = float(waits.mean())
        lenses.append(Lens("mean_vs_tail", (
            f"{days} {hours} the average run waits {seconds_text(mean_run)}, but "
            f"{share_text(share)} of runs (n={runs:,}) wait about "
            f"{seconds_text(float(np.median([b.slow_median_s for b in bands])))}"),
            {"mean_s": mean_run, "slow_share": share, "runs": runs}, sla.name))
    return tuple(lenses)


def _pattern_story(ctx: _Context, pattern: _Pattern, request_figures: pd.DataFrame) -> Story:
    workflows = pattern.workflows
    days = _days_text(pattern)
    hours = _hours_text(pattern.start_min, pattern.end_min)
    periodic = _periodic_text(pattern)
    share_in, periods = _in_periods(ctx, np.unique(np.concatenate([b.rows for b in pattern.bands])))
    outside = ctx.calendar.period_names and share_in < 0.1
    when = f"{days} {hours}" + (f", {periodic}" if periodic else "")
    if outside:
        when += ", outside every clinical period"
    elif periods:
        when += f" ({_and(periods)})"
    waits = [_wait_phrase(ctx, pattern, w) for w in workflows]
    slas = ctx.latency_slas(workflows)
    met = [r for r in slas if r.met]
    sla_text = f"; {_sla_clause(met, 'met')}" if met else ""
    also = f" (also: {'; '.join(waits[1:])})" if len(waits) > 1 else ""
    headline = _capital(f"{when}, {waits[0]}") + f"{also}{sla_text}."
    lead = workflows[0]
    lead_bands = [b for b in pattern.bands if b.workflow == lead]
    # Against the lead workflow's ok runs outside its bands.
    slow, in_band = (np.zeros(len(ctx.frame), dtype=bool) for _ in range(2))
    for band in lead_bands:
        slow[band.slow_rows] = True
        in_band[band.rows] = True
    baseline = (ctx.frame["workflow"] == lead).to_numpy() & ctx.frame["ok"].to_numpy() & ~in_band
    growth = ctx.growth(slow, baseline)
    blame, blamed = _blame_text(growth, "outside these hours")
    figures = [sla_figure(r) for r in slas]
    for workflow in workflows:
        bands = [b for b in pattern.bands if b.workflow == workflow]
        n, beyond = sum(b.runs for b in bands), sum(b.beyond for b in bands)
        slow = sum(b.slow for b in bands)
        t = bands[0].threshold_s
        figures.append(Figure(f"{ctx.title(workflow)} runs within {t:g} s, {days} {hours}",
                              percent_text(1 - beyond / n), "90%, as an objective would ask", n,
                              None))
        figures.append(Figure(f"{ctx.title(workflow)}, its slow runs' median",
                              seconds_text(sum(b.slow_median_s * b.slow for b in bands) / slow),
                              f"usual {seconds_text(float(np.median([b.usual_s for b in bands])))}",
                              slow, None))
    runs = sum(b.runs for b in pattern.bands)
    thresholds = {b.threshold_s for b in pattern.bands}
    beyond = f"{thresholds.pop():g} s" if len(thresholds) == 1 else "each workflow's T"
    figures.append(Figure(f"the probe's runs waited beyond {beyond}", duration_text(pattern.lost_s / 3600),
                          f"{runs:,} probe runs in these hours, not scaled to clinicians' tasks (task "
                          "volumes are configured per clinical period)", runs, None))
    first = pattern.first
    # A change explains the pattern only if its hours were observed before, without it.
    observed = min(d for b in pattern.bands for d in b.days_observed)
    affected = min(d for b in pattern.bands for d in b.days_affected)
    observed_from = (dt.datetime.combine(observed, dt.time(), tzinfo=ctx.zone)
                     if observed < affected else None)
    return Story(
        kind="unwatched_wait", headline=headline, since=first,
        since_text=ctx.since_text(first, observed_from, workflows),
        workflow=lead if len(workflows) == 1 else None,
        sites=tuple(pattern.sites) if set(pattern.sites) != _sites(ctx.frame) else (),
        period=periods[0] if len(periods) == 1 else None, figures=tuple(figures),
        lenses=_band_lenses(ctx, pattern, request_figures, days, hours), blame=blame,
        suggestion_yaml=_suggestion(ctx, pattern),
        # Ranked by time lost beyond T, as every story: a wait that departs from the usual
        # but keeps within T is no worse than an objective breached beyond it.
        severity_s=pattern.lost_s,
        detail=_json({
            "pattern": "recurring_wait", "days": pattern.day_class, "start": _clock(pattern.start_min),
            "end": _clock(pattern.end_min) if pattern.end_min < 1440 else "24:00",
            "periodic": periodic, "outside_clinical_periods": bool(outside),
            "time_lost_s": pattern.lost_s,
            "workflows": workflows, "sites": pattern.sites, "blame_step": blamed,
            "blame_layer": growth.layer, "step_growth_s": growth.steps,
            "thresholds_s": {w: ctx.thresholds[w][0] for w in workflows},
            "threshold_sources": {w: ctx.thresholds[w][1] for w in workflows},
            "bands": [{"workflow": b.workflow, "site": b.site, "days": b.day_class,
                       "start": _clock(b.start_min), "end": _clock(b.end_min) if b.end_min < 1440 else "24:00",
                       "runs": b.runs, "slow_runs": b.slow, "beyond_threshold": b.beyond,
                       "slow_median_s": b.slow_median_s, "usual_s": b.usual_s,
                       "days_observed": len(b.days_observed), "days_affected": len(b.days_affected),
                       "first": b.first, "excess_s": b.excess_s,
                       "every_min": b.periodic.every_min if b.periodic else None,
                       "spell_min": b.periodic.duration_min if b.periodic else None}
                      for b in pattern.bands]}),  # type: ignore[arg-type]
    )


def _explains(pattern: _Pattern, reverse: Story) -> list[str]:
    """The breached SLAs of a reverse story whose bad requests came in the pattern's hours."""
    minutes: dict[str, list[int]] = reverse.detail.get("bad_request_minutes", {})  # type: ignore[assignment]
    return [name for name, starts in minutes.items()
            if any(pattern.start_min <= m < pattern.end_min for m in starts)]


def _absorb(ctx: _Context, reverse: Story, patterns: list[_Pattern]) -> Story:
    """A reverse story told with the waits outside every clinical period that explain it (the
    largest first)."""
    patterns = sorted(patterns, key=lambda p: -p.excess_s)
    pattern = patterns[0]
    waits = [_wait_phrase(ctx, pattern, w) for w in pattern.workflows]
    when = f"{_days_text(pattern)} {_hours_text(pattern.start_min, pattern.end_min)}"
    explained = {name for p in patterns for name in _explains(p, reverse)}
    slas = [f for f in reverse.figures if f.verdict == "breached" and f.label in explained]
    names = _and([f"“{f.label}” ({f.value})" for f in slas])
    met = [f for f in reverse.figures if f.verdict == "met" and f.label.startswith("“")]
    head, tail = _nobody_waiting(reverse.detail)
    headline = (f"{head}: {when}, outside every clinical period, "
                f"{_and(waits)}; the SLA{'s' if len(slas) > 1 else ''} {names} "
                f"{'were' if len(slas) > 1 else 'was'} breached by it, yet "
                + (_and([f'{f.label.split(", judged in")[0]} was met ({f.value})' for f in met]) if met
                   else "no clinician was waiting") + "." + tail)
    detail = dict(reverse.detail)
    detail["nobody_waiting"] = _json([
        {"days": p.day_class, "start": _clock(p.start_min), "end": _clock(p.end_min),
         "workflows": p.workflows, "sites": p.sites, "excess_s": p.excess_s} for p in patterns])
    first = min(p.first for p in patterns)
    first = min(first, reverse.since) if reverse.since else first
    return replace(reverse, headline=headline, since=first, since_text=ctx.since_text(first),
                   detail=detail)


# -- a site behind a slow link ------------------------------------------------------------------

def _gap_story(ctx: _Context, site: str, gaps: list[SiteGap]) -> Story:
    gaps = sorted(gaps, key=lambda g: -g.runs * g.per_request_gap_s * g.requests_per_run)
    lead = gaps[0]
    per_request = float(np.median([g.per_request_gap_s for g in gaps]))
    name = ctx.inputs.site_title(site)
    others = _and([ctx.inputs.site_title(s) for s in lead.others])
    extra = lead.per_request_gap_s * lead.requests_per_run
    headline = (
        f"At {name} every request takes about {seconds_text(per_request)} longer than at "
        f"{'the other sites' if len(lead.others) > 1 else others}, whatever the request and the "
        f"hour: {ctx.title(lead.workflow)} makes {lead.requests_per_run:.0f} requests in series, "
        f"so it waits {seconds_text(extra)} longer ({seconds_text(lead.site_median_s)} against "
        f"{seconds_text(lead.others_median_s)}), {percent_text(lead.share)} of its waiting."
    )
    measured = not math.isnan(lead.network_s) and lead.network_s > 0.5 * lead.per_request_gap_s
    blame = (f"the network: {seconds_text(lead.network_s)} more DNS, connect and TLS per request"
             if measured else
             f"the network: the same {seconds_text(per_request)} on every one of "
             f"{lead.request_types} kinds of request (a server slowdown grows with the work a "
             f"request asks for; a link's round trip does not)")
    figures = []
    for g in gaps:
        figures.append(Figure(f"{ctx.title(g.workflow)}, median waiting at {name}",
                              seconds_text(g.site_median_s),
                              f"{seconds_text(g.others_median_s)} at "
                              f"{_and([ctx.inputs.site_title(s) for s in g.others])}", g.runs,
                              None))
        # n is the runs compared, as for every figure; the kinds of request go in the label.
        figures.append(Figure(f"{ctx.title(g.workflow)}, extra time per request at {name} (the median "
                              f"over {g.request_types} kinds of request)",
                              seconds_text(g.per_request_gap_s), None, g.runs, None))
    return Story(
        kind="unwatched_wait", headline=headline, since=lead.first,
        since_text=ctx.since_text(lead.first),
        workflow=lead.workflow if len(gaps) == 1 else None, sites=(site,), period=None,
        figures=tuple(figures), lenses=(), blame=blame, suggestion_yaml=None,
        severity_s=sum(g.per_request_gap_s * g.requests_per_run * g.runs for g in gaps),
        detail=_json({"pattern": "site_gap", "blame_layer": "network", "blame_step": None,
                      "per_request_gap_s": per_request,
                      "gaps": [{"workflow": g.workflow, "site_median_s": g.site_median_s,
                                "others_median_s": g.others_median_s,
                                "per_request_gap_s": g.per_request_gap_s, "spread": g.spread,
                                "requests_per_run": g.requests_per_run, "runs": g.runs,
                                "network_s": g.network_s} for g in gaps]}),  # type: ignore[arg-type]
    )


# -- events -------------------------------------------------------------------------------------

def _minutes_text(delta: dt.timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes < 10:
        return f"about {max(1, round(minutes))} minute{'s' if round(minutes) != 1 else ''}"
    if minutes < 120:
        return f"about {int(5 * round(minutes / 5))} minutes"
    return f"about {minutes / 60:.1f} hours"


def _to_minute(moment: dt.datetime) -> dt.datetime:
    """To the nearest minute (an estimate is not worth its seconds)."""
    return (moment + dt.timedelta(seconds=30)).replace(second=0, microsecond=0)


def _event_story(ctx: _Context, episode: FailureEpisode) -> Story:
    zone = ctx.zone
    start, end = _to_minute(episode.start), _to_minute(episode.end)
    span = f"{_when_text(start, zone)}–{end.astimezone(zone):%H:%M}"
    every = episode.failed == episode.runs
    who = ctx.sites_text(list(episode.sites), sorted(_sites(ctx.frame)))
    why = (f"HTTP {episode.statuses[0]}" if episode.statuses
           else (episode.error_types[0].replace("_", " ") if episode.error_types else "an error"))
    availability = ctx.availability_slas()
    after = ""
    if availability:
        met = [r for r in availability if r.met]
        if met:
            after = f"; {_sla_clause(met, 'met')} all the same"
        else:
            after = f"; {_sla_clause(availability, 'breached')}"
    headline = _capital(
        f"{span}: {'every' if every else 'most'} run{'' if every else 's'} failed ({why}) for "
        f"{_minutes_text(episode.duration)} {who}, {episode.failed} run"
        f"{'s' if episode.failed != 1 else ''} of {_and([ctx.title(w) for w in episode.workflows])}"
        f"{after}.")
    bounds = (f"first failed run {episode.first_failure.astimezone(zone):%H:%M:%S}, last "
              f"{episode.last_failure.astimezone(zone):%H:%M:%S}")
    if episode.last_ok_before is not None:
        bounds += f"; last success before {episode.last_ok_before.astimezone(zone):%H:%M:%S}"
    if episode.first_ok_after is not None:
        bounds += f", first after {episode.first_ok_after.astimezone(zone):%H:%M:%S}"
    figures = [sla_figure(r) for r in availability]
    figures.append(Figure("runs that failed", percent_text(episode.failed / episode.runs),
                          None, episode.runs, None))
    figures.append(Figure("how long", _minutes_text(episode.duration), bounds, episode.failed,
                          None))
    return Story(
        kind="event", headline=headline, since=start, since_text=_when_text(start, zone),
        workflow=episode.workflows[0] if len(episode.workflows) == 1 else None,
        sites=episode.sites if len(episode.sites) < len(_sites(ctx.frame)) else (),
        period=None, figures=tuple(figures), lenses=(), blame=None, suggestion_yaml=None,
        severity_s=episode.duration.total_seconds() * len(episode.sites),
        detail=_json({"pattern": "failures", "start": start, "end": end,
                      "duration_s": episode.duration.total_seconds(),
                      "first_failure": episode.first_failure, "last_failure": episode.last_failure,
                      "last_ok_before": episode.last_ok_before,
                      "first_ok_after": episode.first_ok_after, "failed_runs": episode.failed,
                      "runs": episode.runs, "sites": list(episode.sites),
                      "workflows": list(episode.workflows), "http_statuses": list(episode.statuses),
                      "error_types": list(episode.error_types)}),  # type: ignore[arg-type]
    )


# -- changes ------------------------------------------------------------------------------------

CHANGE_MAX_SIDE = dt.timedelta(days=7)  # each side of a change compared, at most
CHANGE_MIN_SIDE = dt.timedelta(hours=6)  # and at least
CHANGE_MIN_RATIO = 1.1  # a change story needs the median this much higher after...
CHANGE_MIN_S = 0.1  # ...and this many seconds


def _change_story(ctx: _Context, change: ChangeEventConfig) -> Story | None:
    at = change.at.astimezone(dt.UTC)
    side = min(CHANGE_MAX_SIDE, at - ctx.start, ctx.end - at)
    if side < CHANGE_MIN_SIDE:
        return None
    impact = change_impact(ctx.store, change, window=side)
    slower = impact[impact["significant"]
                    & (impact["after_median_s"] >= impact["before_median_s"] * CHANGE_MIN_RATIO)
                    & (impact["after_median_s"] - impact["before_median_s"] >= CHANGE_MIN_S)]
    if slower.empty:
        return None
    delta = slower["after_median_s"] - slower["before_median_s"]
    slower = slower.assign(delta=delta, lost=delta * slower["after_runs"])
    by_workflow = slower.groupby("workflow")["lost"].sum().sort_values(ascending=False)
    parts, blames, blamed, grown = [], [], [], []
    for workflow in by_workflow.index:
        rows = slower[slower["workflow"] == workflow]
        where = ctx.sites_text(list(rows["site"]), ctx.sites_of(workflow))
        before = float(np.median(rows["before_median_s"]))
        after = float(np.median(rows["after_median_s"]))
        parts.append(f"{ctx.title(workflow)} takes {seconds_text(float(rows['delta'].median()))} "
                     f"longer {where} (median {seconds_text(before)} → {seconds_text(after)})")
        steps = rows["dominant_step"].dropna()
        if steps.empty:
            continue
        step = str(steps.mode().iloc[0])
        mine = rows[rows["dominant_step"] == step]
        share = float(mine["dominant_step_share"].median())
        grew = float(mine["dominant_step_delta_s"].median())
        layer = mine["dominant_layer"].dropna()
        layer_text = _layer_text(str(layer.mode().iloc[0])) if not layer.empty else ""
        if share > 0.5:
            blames.append(f"the {step_title(step)} step of {ctx.title(workflow)} (+{seconds_text(grew)} against "
                          f"its own median before, {share_text(share)} of the increase"
                          + (f"; {layer_text}" if layer_text else "") + ")")
            blamed.append(step)
            grown.append(f"its {step_title(step)} step grew by {seconds_text(grew)}, "
                         f"{share_text(share)} of the increase")
        else:
            blames.append(f"no single step of {ctx.title(workflow)} (the largest, {step_title(step)}, "
                          f"+{seconds_text(grew)}, {share_text(share)} of the increase)")
    when = _when_text(at, ctx.zone)
    headline = f"After {change.title} ({when}), {'; '.join(parts)}"
    headline += f": {grown[0]}." if grown and len(parts) == 1 else "."
    figures = []
    for row in slower.itertuples():
        figures.append(Figure(f"{ctx.title(row.workflow)} at {ctx.inputs.site_title(row.site)}, "
                              "median waiting after", seconds_text(row.after_median_s),
                              f"{seconds_text(row.before_median_s)} before "
                              f"(n={row.before_runs}; {_chance_text(row.p_value)})", int(row.after_runs),
                              None))
    # A browser workflow: the API's calls against the screen, before and after.
    lenses, screens = [], {}
    for workflow in by_workflow.index:
        screen = screen_change(ctx.store, str(workflow), at, window=side)
        if screen is not None and screen.after.screen_s > screen.before.screen_s:
            lenses.append(screen.as_lens())
            screens[str(workflow)] = screen.lens_figures
            if screen.cause:
                blames.append(f"in {ctx.title(str(workflow))}, {screen.cause}")
    lead = str(by_workflow.index[0])
    return Story(
        kind="change", headline=headline, since=at, since_text=f"after {change.title} ({when})",
        workflow=lead if len(by_workflow) == 1 else None,
        sites=tuple(sorted(set(slower["site"]))) if set(slower["site"]) != _sites(ctx.frame) else (),
        period=None, figures=tuple(figures), lenses=tuple(lenses), blame="; ".join(blames) or None,
        suggestion_yaml=None, severity_s=float(slower["lost"].sum()),
        detail=_json({"change": change.title, "at": at, "description": change.description,
                      "compared_days_each_side": side.total_seconds() / 86400,
                      "blame_step": blamed[0] if blamed else None, "screen": screens,
                      "impact": slower.drop(columns=["change"]).to_dict("records")}),  # type: ignore[arg-type]
    )


# -- the EPR's servers against the wait -----------------------------------------------------------

_PART_BLAME = {
    "network": "the network or the front end between {site} and the EPR, not the EPR's servers",
    "server": "the EPR's servers",
    "mostly_network": "mostly the network or the front end between {site} and the EPR",
}


def _server_time_lens(part: PartGrew, step: str, site: str) -> Lens:
    return Lens("server_time", (
        f"{_capital(part.clause(f'the wait for the {step_title(step)} step at {site}'))}. The rest of the wait "
        f"(network, front end, TLS, the client) went {seconds_text(part.rest_before_s)} → "
        f"{seconds_text(part.rest_after_s)} (medians; n = {part.n_before} steps before, {part.n_after} after)"),
        {"wait_before_s": part.wait_before_s, "wait_after_s": part.wait_after_s,
         "server_before_s": part.server_before_s, "server_after_s": part.server_after_s,
         "rest_before_s": part.rest_before_s, "rest_after_s": part.rest_after_s,
         "steps_before": part.n_before, "steps_after": part.n_after})


def _between_text(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> str:
    """"Mon 2 Nov 08:00–11:00", or "Mon 2 Nov 08:00–Wed 4 Nov 16:23" across days."""
    same_day = start.astimezone(zone).date() == end.astimezone(zone).date()
    return f"{_when_text(start, zone)}–{f'{end.astimezone(zone):%H:%M}' if same_day else _when_text(end, zone)}"


def _server_time_stories(ctx: _Context) -> list[Story]:
    """Per workflow x site, the steps whose wait grew between the window's first and last thirds,
    told with which part grew: the EPR's servers (their own spans) or the rest."""
    windows = compared_windows(ctx.store, ctx.start, ctx.end)
    if windows is None:
        return []
    before, after = (server_time(ctx.store, *w) for w in windows)
    grown = parts_grown(before[before["n"] >= MIN_STEPS], after[after["n"] >= MIN_STEPS])
    by_scope: dict[tuple[str, str], list[PartGrew]] = {}
    for part in grown:
        by_scope.setdefault((part.workflow, part.site), []).append(part)
    zone = ctx.zone
    (b0, b1), (a0, a1) = windows
    stories = []
    for (workflow, site_id), parts in by_scope.items():
        lead, site = parts[0], ctx.inputs.site_title(site_id)
        title = ctx.title(workflow)
        headline = _capital(f"{title}, the {step_title(lead.step)} step: {lead.clause(f'the wait at {site}')}") + "."
        same = [step_title(p.step) for p in parts[1:] if p.part == lead.part]
        if same:
            headline += f" The {_and(same)} step{'s' if len(same) > 1 else ''} grew the same way."
        headline += "".join(f" The {step_title(p.step)} step: {p.clause()}." for p in parts[1:] if p.part != lead.part)
        figures = []
        for part in parts:
            where = f"{title}, {step_title(part.step)} step at {site}"
            figures += [
                Figure(f"{where}: median wait", seconds_text(part.wait_after_s),
                       f"{seconds_text(part.wait_before_s)} before (n={part.n_before})", part.n_after, None),
                Figure(f"{where}: median time in the EPR's servers", seconds_text(part.server_after_s),
                       f"{seconds_text(part.server_before_s)} before (n={part.n_before})", part.n_after, None),
                Figure(f"{where}: median rest (network, front end, client)", seconds_text(part.rest_after_s),
                       f"{seconds_text(part.rest_before_s)} before (n={part.n_before})", part.n_after, None)]
        blame = (f"{_PART_BLAME[lead.part].format(site=site)}: in the {step_title(lead.step)} step, the rest of the wait went "
                 f"{seconds_text(lead.rest_before_s)} → {seconds_text(lead.rest_after_s)}, the server's time "
                 f"{seconds_text(lead.server_before_s)} → {seconds_text(lead.server_after_s)}")
        stories.append(Story(
            kind="server_time", headline=headline, since=a0,
            since_text=f"comparing {_between_text(b0, b1, zone)} with {_between_text(a0, a1, zone)}",
            workflow=workflow,
            sites=(site_id,), period=None, figures=tuple(figures),
            lenses=tuple(_server_time_lens(p, p.step, site) for p in parts), blame=blame, suggestion_yaml=None,
            severity_s=sum(p.growth_s * p.n_after for p in parts),
            detail=_json({"pattern": "server_time", "part": lead.part, "blame_step": lead.step,
                          "blame_layer": "server" if lead.part == "server" else "network",
                          "compared": {"before": [b0, b1], "after": [a0, a1]},
                          "steps": [{"step": p.step, "part": p.part, "n_before": p.n_before, "n_after": p.n_after,
                                     "wait_before_s": p.wait_before_s, "wait_after_s": p.wait_after_s,
                                     "server_before_s": p.server_before_s, "server_after_s": p.server_after_s}
                                    for p in parts]}),  # type: ignore[arg-type]
        ))
    return stories


# -- a site gone quiet --------------------------------------------------------------------------

def _quiet_site_stories(store: FrameCache, inputs: FindingInputs, start: dt.datetime, end: dt.datetime,
                        now: dt.datetime, quiet_after_s: float) -> list[Story]:
    """The configured sites that have gone quiet, when the window reaches the present (a past
    window's "now" is gone) and some site has reported: its runs are missing from every figure."""
    if end < now - dt.timedelta(seconds=quiet_after_s) or not inputs.sites:
        return []
    zone = ZoneInfo(inputs.timezone)
    measured = store.sql("SELECT site, max(start) AS last, count(*) FILTER (WHERE start >= ?) AS runs "
                             "FROM runs WHERE NOT coalesce(simulated, false) GROUP BY site", [start])
    last_runs = {str(r.site): pd.Timestamp(r.last).to_pydatetime() for r in measured.itertuples()}
    counts = {str(r.site): int(r.runs) for r in measured.itertuples()}
    health = site_health(Path(store.path), [(s.name, s.title) for s in inputs.sites], now,
                         last_runs=last_runs, quiet_after_s=quiet_after_s, timezone=inputs.timezone)
    if all(h.last_heard is None for h in health):
        return []  # nothing has reported yet (simulated history only): not a deployment gone quiet
    stories = []
    for h in health:
        if not h.quiet:
            continue
        quiet_s = (now - h.last_heard).total_seconds() if h.last_heard else (now - start).total_seconds()
        spool = ""
        if h.spool_runs:
            held = "1 run" if h.spool_runs == 1 else f"{h.spool_runs:,} runs"
            spool = f"; its spool held {held} at its last report"
        headline = (f"{h.sentence[:-1]}: its runs are missing from every figure since then (the probe, its "
                    f"link or the observatory is down, not necessarily the EPR){spool}.")
        figures = [Figure("last heard", _when_text(h.last_heard, zone) if h.last_heard else "never",
                          f"quiet after {quiet_after_s / 60:g} min", None, None),
                   Figure("measured runs in the window", f"{counts.get(h.site, 0):,}", None,
                          counts.get(h.site, 0), None)]
        if h.clock_offset_s is not None:
            figures.append(Figure("its clock against the observatory's", f"{h.clock_offset_s:+.1f} s", None, None, None))
        stories.append(Story(
            kind="quiet_site", headline=headline, since=h.last_heard,
            since_text=f"since {_when_text(h.last_heard, zone)}" if h.last_heard else "never reported",
            workflow=None, sites=(h.site,), period=None, figures=tuple(figures), lenses=(),
            blame=None, suggestion_yaml=None, severity_s=max(0.0, quiet_s),
            detail=_json({"pattern": "quiet_site", "last_heard": h.last_heard, "last_run": h.last_run,
                          "quiet_after_s": quiet_after_s, "spool_runs": h.spool_runs,
                          "spool_oldest_age_s": h.spool_oldest_age_s, "clock_offset_s": h.clock_offset_s,
                          "probe_version": h.probe_version}),  # type: ignore[arg-type]
        ))
    return stories


def _request_medians(ctx: _Context) -> tuple[pd.DataFrame, dict[tuple[str, str], float]]:
    """In the runs a site gap compares, in DuckDB: per workflow, site and request type, the
    median time of the probe's successful requests and how many of them a run makes; and per
    workflow and site, the median network time (DNS, connect, TLS) of a step timed in phases."""
    chosen = gap_runs(ctx.frame)
    if chosen.empty:
        return pd.DataFrame(columns=["workflow", "site", "url_template", "median_s", "per_run"]), {}
    # Each run also numbered 0..n-1, so its requests' distinct runs are counted in a bitmap per
    # group: a month's count(DISTINCT trace_id) held a hash set of every run (1.6 GB at 10M spans).
    table = pa.table({"trace_id": ctx.trace_ids(chosen.index.to_numpy()),
                      "run_no": pa.array(np.arange(len(chosen), dtype=np.int64))})
    # The medians are found through histograms (analysis.medians), not held whole by DuckDB.
    network = exact_medians(ctx.store, """
        SELECT s.workflow, s.site, coalesce(s.dns_s, 0) + coalesce(s.connect_s, 0) + coalesce(s.tls_s, 0) AS s
        FROM steps AS s JOIN gap_runs USING (trace_id)
        WHERE s.start >= ? AND s.start < ? AND s.ttfb_s IS NOT NULL
          AND (s.dns_s IS NOT NULL OR s.connect_s IS NOT NULL OR s.tls_s IS NOT NULL)""",
        [ctx.start, ctx.end + STEP_SLACK], ["workflow", "site"], ["s"], tables={"gap_runs": table})
    timed = {(str(r.workflow), str(r.site)): float(r.s) for r in network.itertuples()}
    medians = exact_medians(ctx.store, """
        SELECT q.workflow, q.site, q.url_template, q.duration_s, gap_runs.run_no
        FROM requests AS q JOIN gap_runs USING (trace_id)
        WHERE q.start >= ? AND q.start < ? AND q.source = 'probe' AND q.status = 'ok'
          AND q.span_type <> 'auth' AND q.url_template IS NOT NULL""",
        [ctx.start, ctx.end + STEP_SLACK], ["workflow", "site", "url_template"], ["duration_s"],
        tables={"gap_runs": table},
        also=[f"count(*) / {count_distinct_dense('run_no', str(len(chosen) - 1))} AS per_run"])
    return medians.rename(columns={"duration_s": "median_s"}), timed


# -- the one entry point ------------------------------------------------------------------------

def find_stories(
    store: Store | FrameCache,
    config: FindingInputs,
    calendar: ClinicalCalendar | None,
    start: dt.datetime,
    end: dt.datetime,
    *,
    changes: Sequence[ChangeEventConfig] = (),
    base_dir: Path | None = None,
    now: dt.datetime | None = None,
    quiet_after_s: float = DEFAULT_QUIET_AFTER_S,
) -> list[Story]:
    """Every story worth telling about ``[start, end)``, largest clinician time lost first.

    Args:
        store: the store (or a frame cache over it).
        config: the inputs (:meth:`FindingInputs.from_config`).
        calendar: the clinical calendar; ``None``: ``config.calendar()``.
        start: the window's start, timezone-aware.
        end: its end (exclusive).
        changes: change events to compare before and after; default ``config.changes``.
        base_dir: where relative exclusion files are read from.
        now: the present (default: the clock), for sites gone quiet: a window that reaches it
            tells of each configured site not heard from for ``quiet_after_s``.
        quiet_after_s: how long a site may stay silent before it is a story.

    Raises:
        ValueError: naive bounds.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    calendar = calendar if calendar is not None else config.calendar()
    cache = store if isinstance(store, FrameCache) else FrameCache(store)
    now = now if now is not None else dt.datetime.now(dt.UTC)
    quiet = _quiet_site_stories(cache, config, start, end, now, quiet_after_s)
    # Only the columns the findings read (a month at 10M spans is 1.25M runs).
    runs = judged_runs(_categorical(to_pandas(cache.arrow(
        "SELECT trace_id, start, workflow, site, status, error_type, waiting_s FROM runs "
        "WHERE start >= ? AND start < ?", [start, end], order_by=["start", "trace_id"]))))
    if runs.empty:
        return quiet
    thresholds = _thresholds(config, runs)
    ctx = _Context(
        store=cache, inputs=config, calendar=calendar, start=start, end=end, base_dir=base_dir,
        changes=tuple(changes) or config.changes, thresholds=thresholds,
        frame=local_runs(runs, calendar, {w: t for w, (t, _) in thresholds.items()}))
    del runs
    for period in calendar.period_names:  # each period's mask once, for every question after
        ctx.frame[f"in {period}"] = calendar.mask(ctx.frame[["start", "site"]], period).to_numpy()
    by_site: dict[str, list[SiteGap]] = {}
    request_medians, network = _request_medians(ctx)
    for gap in site_gaps(ctx.frame, request_medians, network):
        by_site.setdefault(gap.site, []).append(gap)
        ctx.gaps[(gap.workflow, gap.site)] = gap
    episodes: list[FailureEpisode] = []
    if not ctx.frame["ok"].all():
        failed = cache.sql(
            "SELECT trace_id, http_status FROM requests WHERE start >= ? AND start < ? "
            "AND source = 'probe' AND status <> 'ok'", [start, end])
        episodes = failure_episodes(ctx.frame, failed)
    stories: list[Story] = []
    by_slas: dict[tuple[str, ...], list[Finding]] = {}
    for finding in find_watermelons(cache, config.slas, config.objectives, calendar,
                                    window=(start, end), task_volumes=config.task_volumes,
                                    base_dir=base_dir, names=config.display_name):
        if finding.kind == "watermelon":
            stories.append(_watermelon_story(ctx, finding))
        else:
            by_slas.setdefault(tuple(r.name for r in finding.slas), []).append(finding)
    reverses: list[Story] = []
    for findings in by_slas.values():
        reverse = _reverse_story(ctx, findings, bool(episodes))
        if reverse is None:
            continue
        if reverse.kind == "reverse":
            reverses.append(reverse)
        else:
            stories.append(reverse)

    nobody: dict[int, list[_Pattern]] = {}
    patterns = _patterns([b for b in recurring_waits(ctx.frame) if not _covered(ctx, b)])
    request_figures = _band_request_figures(ctx, patterns)
    for i, pattern in enumerate(patterns):
        story = _pattern_story(ctx, pattern, request_figures[request_figures["pattern"] == i])
        # A wait outside every clinical period, at the hours a breached SLA's bad requests came:
        # the reverse finding's evidence, not a story of its own.
        home = next((n for n, r in enumerate(reverses) if story.detail.get("outside_clinical_periods")
                     and _explains(pattern, r)), None)
        if home is None:
            stories.append(story)
        else:
            nobody.setdefault(home, []).append(pattern)
    for home, patterns in nobody.items():
        reverses[home] = _absorb(ctx, reverses[home], patterns)
    stories += reverses

    stories += [_gap_story(ctx, site, gaps) for site, gaps in sorted(by_site.items())]
    stories += [_event_story(ctx, e) for e in episodes]
    for change in ctx.changes:
        if start <= change.at.astimezone(dt.UTC) < end:
            story = _change_story(ctx, change)
            if story is not None:
                stories.append(story)
    stories += _server_time_stories(ctx)
    stories += quiet
    return sorted(stories, key=lambda s: -s.severity_s)
