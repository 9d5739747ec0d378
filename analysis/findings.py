"""Findings as people read them: one :class:`Story` per thing worth saying about a window.

:func:`find_stories` is the one place findings are computed; the command-line report, the
dashboard's overview and report page and the notebooks all call it with the same inputs, so they
tell the same stories.

Its inputs are a :class:`FindingInputs`: the analysis sections of the configuration (SLAs,
objectives, periods, task volumes, changes) and, for display names and thresholds, the
workflows and sites as :class:`WorkflowLabel` and :class:`SiteLabel`. Analysis does not import
the collector: :meth:`FindingInputs.from_config` reads any object with those attributes (the
root ``WardwatchConfig``, or the dashboard's context).

Kinds of story:

- ``watermelon``: an SLA met and an experience objective breached in a scope (workflow x site x
  period), from :func:`analysis.watermelon.find_watermelons`;
- ``reverse``: an SLA breached while the experience objectives of its workflows are met (the
  nightly batch nobody waits on);

Every story carries its figures (the SLA's view first, then the clinicians'), each with its
threshold and sample count, the lenses that explain why the SLA could not see it (each lens once,
naming the SLA it explains), and a headline in plain words with display names.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.calendar import ClinicalCalendar
from analysis.config import (
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
)
from analysis.objectives import ALL_HOURS
from analysis.sla import SLAResult
from analysis.store import FrameCache, Store
from analysis.watermelon import Finding, Lens, find_watermelons

__all__ = [
    "DEFAULT_THRESHOLD_S",
    "Figure",
    "FindingInputs",
    "SiteLabel",
    "Story",
    "WorkflowLabel",
    "find_stories",
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
            ``event`` (an outage, failing runs) or ``change``.
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


# -- stories from the configured objectives ----------------------------------------------------

def _watermelon_story(f: Finding, inputs: FindingInputs) -> Story:
    workflow = inputs.workflow(f.workflow)
    site = inputs.site_title(f.site or "")
    objective = next((o for o in inputs.objectives if o.name == f.objective), None)
    t = objective.threshold_s if objective is not None else workflow.threshold_s
    runs, good = int(f.experience["runs"]), int(f.experience.get("good", 0) or 0)
    value = float(f.experience["value"])  # type: ignore[arg-type]
    target = float(f.experience["target"])  # type: ignore[arg-type]
    where = site if f.period == ALL_HOURS else f"{site} during {f.period}"
    headline = (
        f"{workflow.title} at {where}: {percent_text(value)} within {t:g} s against a target of "
        f"{percent_text(target)}, while {_sla_clause(f.slas, 'met')}."
    )
    figures = [sla_figure(r) for r in f.slas]
    figures.append(Figure(f"runs within {t:g} s" + ("" if f.period == ALL_HOURS else
                                                     f" during {f.period}"),
                          percent_text(value), f"target {percent_text(target)}", runs,
                          "breached"))
    figures.append(Figure("90th percentile waiting", seconds_text(f.experience.get("p90_s")),  # type: ignore[arg-type]
                          f"≤ {t:g} s", runs, None))
    blame = None
    if f.dominant_step is not None and not math.isnan(f.dominant_step_share):
        blame = f"the {f.dominant_step} step ({percent_text(f.dominant_step_share)} of the extra waiting)"
    lost = f.time_lost
    return Story(
        kind="watermelon", headline=headline, since=None, since_text="",
        workflow=f.workflow, sites=(f.site,) if f.site else (),
        period=None if f.period == ALL_HOURS else f.period, figures=tuple(figures),
        lenses=_lenses(f), blame=blame, suggestion_yaml=None,
        severity_s=lost.observed_s if lost is not None else 0.0,
        detail=_json({"objective": f.objective, "experience": dict(f.experience),
                      "good": good, "slas": [r.name for r in f.slas],
                      "dominant_step": f.dominant_step,
                      "dominant_step_share": f.dominant_step_share,
                      "time_lost_s": lost.observed_s if lost else None,
                      "time_lost_hours": lost.scaled_hours if lost else None,
                      "assumption": lost.assumption if lost else None,
                      "summary": f.summary}),  # type: ignore[arg-type]
    )


def _reverse_story(f: Finding, inputs: FindingInputs) -> Story:
    workflow = inputs.workflow(f.workflow)
    value = float(f.experience["value"])  # type: ignore[arg-type]
    target = float(f.experience["target"])  # type: ignore[arg-type]
    dilution = f.lens("time_dilution")
    when = ""
    if dilution is not None and "came " in dilution.text:
        when = " by requests " + dilution.text.split("came ", 1)[1].split(" (", 1)[0]
    headline = (
        f"SLA breached, nobody waiting: {_sla_clause(f.slas, 'breached')}{when}, yet "
        f"{workflow.title} met “{f.objective}” ({percent_text(value)} against "
        f"{percent_text(target)})."
    )
    figures = [sla_figure(r) for r in f.slas]
    figures.append(Figure(f"“{f.objective}”", percent_text(value),
                          f"target {percent_text(target)}", int(f.experience["runs"]),  # type: ignore[call-overload]
                          "met"))
    blame = (f"the {f.dominant_step} step ({percent_text(f.dominant_step_share)} of the slowness "
             f"the SLA counted)" if f.dominant_step is not None else None)
    return Story(
        kind="reverse", headline=headline, since=None, since_text="", workflow=f.workflow,
        sites=(), period=None, figures=tuple(figures), lenses=_lenses(f), blame=blame,
        suggestion_yaml=None, severity_s=0.0,
        detail=_json({"objective": f.objective, "experience": dict(f.experience),
                      "slas": [r.name for r in f.slas], "summary": f.summary}),  # type: ignore[arg-type]
    )


def find_stories(
    store: Store | FrameCache,
    config: FindingInputs,
    calendar: ClinicalCalendar | None,
    start: dt.datetime,
    end: dt.datetime,
    *,
    changes: Sequence[ChangeEventConfig] = (),
    base_dir: Path | None = None,
) -> list[Story]:
    """Every story worth telling about ``[start, end)``, most clinician time lost first.

    Args:
        store: the store (or a frame cache over it).
        config: the inputs (:meth:`FindingInputs.from_config`).
        calendar: the clinical calendar; ``None``: ``config.calendar()``.
        start: the window's start, timezone-aware.
        end: its end (exclusive).
        changes: change events to explain findings by; default ``config.changes``.
        base_dir: where relative exclusion files are read from.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    calendar = calendar if calendar is not None else config.calendar()
    changes = tuple(changes) or config.changes
    store = store if isinstance(store, FrameCache) else FrameCache(store)
    stories: list[Story] = []
    for finding in find_watermelons(store, config.slas, config.objectives, calendar,
                                    window=(start, end), task_volumes=config.task_volumes,
                                    base_dir=base_dir):
        if finding.kind == "watermelon":
            stories.append(_watermelon_story(finding, config))
        else:
            stories.append(_reverse_story(finding, config))
    return sorted(stories, key=lambda s: -s.severity_s)
