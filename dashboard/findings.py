"""The overview's findings for the selected window, looked for off the request.

``analysis.findings.find_stories`` reads every run and request of the window (a few seconds for a
month of the demo, longer on a large store), so the overview starts it as a job
(:mod:`dashboard.jobs`) when the page is asked for and shows "finding…" until it is done; the
page then polls and fills the section in by itself. A job is keyed by the window's name ("7d",
"2026-10") and versioned by the window's bounds and the quarter hour: the same view asked again
within a quarter hour is answered from the job, and a rolling window moves on every quarter hour.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

import pandas as pd

from analysis.changelog import effective_changes
from analysis.findings import FindingInputs, Story, find_stories, sla_figure
from analysis.objectives import ALL_HOURS, evaluate_objective
from analysis.sla import evaluate_sla
from analysis.store import FrameCache
from dashboard.board import MIN_RATED_RUNS
from dashboard.context import DashboardContext
from dashboard.data import NoData, open_data
from dashboard.figures import count_text
from dashboard.filters import Filters
from dashboard.jobs import Job, Jobs

__all__ = ["DEFAULT_SHARE_TARGET", "FindingsView", "ObjectiveScope", "SLAView", "findings_job", "inputs_of", "look_for_findings",
           "picture_cells"]

_QUARTER_S = 900
# Where no experience objective sets a target for a part of the day, the picture holds the share
# of runs within T against this (the demo's objectives all ask for 90%).
DEFAULT_SHARE_TARGET = 0.9
SLOW_HOURS = "hours where runs wait"


@dataclass(frozen=True)
class SLAView:
    """One SLA judged by its own formula over the window (its compliance window may be longer)."""

    name: str
    workflows: tuple[str, ...]  # () = every workflow
    value: str
    threshold: str | None
    n: int
    verdict: str | None  # "met", "breached", or None without requests


@dataclass(frozen=True)
class ObjectiveScope:
    """An experience objective judged at one site in one part of the day (one of its periods, or
    all hours when it names none) over the window: its own threshold and target."""

    name: str
    workflow: str
    site: str
    period: str
    threshold_s: float
    target: float
    runs: int
    good: int


@dataclass(frozen=True)
class FindingsView:
    """What the findings job found for one window."""

    stories: tuple[Story, ...]
    slas: tuple[SLAView, ...]
    start: dt.datetime
    end: dt.datetime
    elapsed_s: float
    objectives: tuple[ObjectiveScope, ...] = ()


def inputs_of(context: DashboardContext) -> FindingInputs:
    """The findings' inputs from the dashboard's context: the same sections the command line uses,
    with the changes recorded in the data directory read now (``wardwatch change add`` while the
    dashboard runs), as the month's report reads them."""
    inputs = FindingInputs.from_config(context, timezone=context.timezone)
    return replace(inputs, changes=tuple(effective_changes(context.changes, context.data_dir)))


def look_for_findings(context: DashboardContext, start: dt.datetime, end: dt.datetime) -> FindingsView | str:
    """The window's stories and each SLA's figure over it (on a job's thread), or why there are none."""
    began = dt.datetime.now(dt.UTC)
    inputs = inputs_of(context)
    try:
        with open_data(context) as store:
            cache = FrameCache(store)
            stories = find_stories(cache, inputs, context.calendar(), start, end, base_dir=context.config_dir,
                                   now=context.now())
            slas = []
            for sla in context.slas:
                figure = sla_figure(evaluate_sla(cache, sla, start, end, base_dir=context.config_dir))
                slas.append(SLAView(sla.name, tuple(sla.workflows or ()), figure.value, figure.threshold,
                                    int(figure.n or 0), figure.verdict))
            objectives = [ObjectiveScope(o.name, o.workflow, str(row.site), str(row.period), float(o.threshold_s),
                                         float(o.target), int(row.runs), int(row.good))
                          for o in context.objectives
                          for row in evaluate_objective(cache, o, context.calendar(), start, end).scopes.itertuples()]
    except NoData as exc:
        return str(exc)
    elapsed_s = (dt.datetime.now(dt.UTC) - began).total_seconds()
    return FindingsView(tuple(stories), tuple(slas), start, end, elapsed_s, tuple(objectives))


def findings_job(registry: Jobs, context: DashboardContext, filters: Filters) -> Job:
    """The findings job for the filters' window: started now, or the one already running or done."""
    now = context.now()
    start, end = filters.bounds(now, context.timezone)
    version = (start, end, math.floor(now.timestamp() / _QUARTER_S))
    return registry.start(("findings", filters.window), version, lambda: look_for_findings(context, start, end))


def picture_cells(slas: tuple[SLAView, ...], scopes: pd.DataFrame, context: DashboardContext,
                  objectives: tuple[ObjectiveScope, ...] = ()) -> pd.DataFrame:
    """The cells (and columns' rank) of :func:`dashboard.figures.sla_beside_experience_figure`: per
    workflow at a site, each SLA that covers the workflow (its figure and verdict over the window),
    then the clinicians' share of runs in all hours, each clinical period and the hours where runs
    wait (the board's scopes, :func:`analysis.query.figures.board_scopes`).

    Where an experience objective judges the workflow at that site in that part of the day
    (``objectives``, the findings job's), the cell is the objective's own figure: its runs within
    its threshold, against its target, as its finding reads. Elsewhere it is the runs within the
    workflow's T against :data:`DEFAULT_SHARE_TARGET`."""
    judged = {}
    for o in objectives:  # the first objective configured for a part of the day speaks for it
        judged.setdefault((o.workflow, o.site, o.period), o)
    cells = []  # a figure, then its words, a line each: cells stay narrow enough for their column
    order = {p.name: i for i, p in enumerate(context.periods)}
    for (workflow, site), part in scopes.groupby(["workflow", "site"], sort=True):
        info = context.workflow(workflow)
        row = f"{info.title} · {context.site_title(site)}"
        for sla in slas:
            if sla.workflows and workflow not in sla.workflows:
                continue
            good = math.nan if sla.verdict is None else float(sla.verdict == "met")
            cells.append({"row": row, "column": sla.name, "side": "sla", "good": good,
                          "text": f"<b>{sla.value}</b><br>{sla.verdict or 'no requests'}<br>{sla.threshold or ''}",
                          "hover": f"{sla.name}: {sla.value} ({sla.threshold or 'no target'}, n = {count_text(sla.n)}): "
                                   f"{sla.verdict or 'no requests'}"})
        ranked = sorted(part.itertuples(), key=lambda r: (r.kind != "all", r.kind == "hours", order.get(r.scope, 0)))
        for scope in ranked:
            column = {"all": "all hours", "hours": SLOW_HOURS}.get(scope.kind, scope.scope)
            objective = (judged.get((workflow, site, scope.scope if scope.kind == "period" else ALL_HOURS))
                         if scope.kind != "hours" else None)
            if objective is not None and objective.runs:
                share, n, threshold_s, target = (objective.good / objective.runs, objective.runs,
                                                 objective.threshold_s, objective.target)
                whose = f"objective \u201c{objective.name}\u201d, target {target:.0%}"
            else:
                share, n, threshold_s, target = (scope.share_under, scope.samples, info.threshold_s,
                                                 DEFAULT_SHARE_TARGET)
                whose = f"the workflow's T; target {target:.0%}, as no objective sets one here"
            where = f" at {scope.scope}" if scope.kind == "hours" else ""
            hours = scope.scope.replace(", ", "<br>") + "<br>" if scope.kind == "hours" else ""
            # Too few runs to judge, as the board below rates them: shown, neither green nor red.
            few = n < MIN_RATED_RUNS
            cells.append({
                "row": row, "column": column, "side": "clinicians", "good": math.nan if few else float(share >= target),
                "text": f"<b>{share:.0%}</b><br>within {threshold_s:g} s<br>{hours}n = {count_text(n)}"
                        + ("<br>(too few to judge)" if few else ""),
                "hover": f"{row}, {column}{where}: {share:.0%} of {count_text(n)} runs within {threshold_s:g} s "
                         f"({whose}); {scope.frustrated_share:.0%} over {4 * info.threshold_s:g} s or failed",
            })
    frame = pd.DataFrame(cells, columns=["row", "column", "side", "good", "text", "hover"])
    ranks = {name: i for i, name in enumerate([*(s.name for s in slas), "all hours", *order, SLOW_HOURS])}
    return frame.assign(rank=[ranks.get(c, len(ranks)) for c in frame["column"]])
