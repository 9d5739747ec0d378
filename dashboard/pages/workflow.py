"""Workflow: how long one workflow makes users wait, which step, and since when."""

from __future__ import annotations

from dataclasses import replace

import dash
import pandas as pd
from dash import dcc, html

from analysis.apdex import Apdex
from analysis.query import figures as q
from dashboard import figures, ids
from dashboard.figures import count_text
from dashboard.board import all_hours_line, apdex_rating, worst_scopes
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, question, simulated_text
from dashboard.filters import Filters, filter_bar
from dashboard.layout import PERCENTILE_NOTE, banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/workflow", name="Workflow", title="Wardwatch · Workflow", order=3)

_BUCKETS_S = {"1d": 900, "7d": 3600}  # timeline buckets; longer windows: 6 hours
_PAGE = "workflow"


def _chosen(filters: Filters, context: DashboardContext) -> Filters:
    if filters.workflow is None and context.workflows:
        return replace(filters, workflow=context.workflows[0].name)
    return filters


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = _chosen(Filters.from_query(query, context), context)
    workflow = context.workflow(filters.workflow)
    bar = filter_bar(filters, context)
    intro = (
        f"{(workflow.description or workflow.title).rstrip('.')}. Waiting time is the sum of the steps a clinician waits for "
        f"(think time excluded); T = {workflow.threshold_s:g} s from {workflow.threshold_origin}."
    )
    if not filters.workflow:
        return page("Workflow", bar, explain("No workflows are configured."), intro=intro)
    return page(f"Workflow: {workflow.title}", bar, *live_section(_PAGE, filters, context, body(filters, context)),
                intro=intro)


# Live mode: the workflow's figures again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(_chosen(filters, context), context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """Apdex, the waiting-time distribution, the step breakdown and the timeline."""
    workflow = context.workflow(filters.workflow)
    runs = filters.run_filter(context.now(), context.timezone)
    t = workflow.threshold_s
    try:
        asked = question(runs)
        dist = _distribution(asked, filters, context)
        steps = q.steps(asked)
        timeline = q.timeline(asked, bucket_s=_BUCKETS_S.get(filters.window, 6 * 3600))
        note = simulated_text(*q.simulated_share(asked))
        # the overview's rating of the same runs, so the page can say why it may read worse
        worst = None if filters.period else worst_scopes(q.board_scopes(asked, calendar=context.calendar()))
    except NoData as exc:
        return [explain(str(exc))]
    failed = dist.samples - dist.ok
    score = Apdex(
        score=(dist.satisfied + dist.tolerating / 2) / dist.samples if dist.samples else float("nan"),
        t_s=float(t), samples=dist.samples, satisfied=dist.satisfied, tolerating=dist.tolerating,
        frustrated=dist.samples - dist.satisfied - dist.tolerating, failed=failed,
    )
    scope = f" during {filters.period}" if filters.period else ""
    headline = (
        f"Apdex {score} ({apdex_rating(score)}) over {count_text(score.samples)} "
        f"run{'' if score.samples == 1 else 's'}{scope}; "
        f"{count_text(failed)} did not complete."
    )
    under = dist.satisfied / dist.ok if dist.ok else 0.0
    return [
        banner(note),
        html.P(headline, id=ids.APDEX, style={"fontSize": "1.1em"}),
        html.P(period_note(filters, context), id="workflow-period-note") if filters.period else None,
        html.P(all_hours_line(worst, t, context.site_title), id="workflow-worst-part")
        if worst is not None and not worst.empty else None,
        dcc.Link("See these runs, slowest first", href="/runs" + filters.query_string(period=None),
                 id="workflow-runs-link"),
        dcc.Graph(id=ids.ECDF, figure=figures.ecdf_histogram_figure(
            dist.values_s, dist.counts, thresholds={"T": (t, under)}, relative_error=dist.relative_error,
            title=f"Waiting time of completed runs{scope}")),
        dcc.Graph(id=ids.STEP_BREAKDOWN, figure=figures.step_breakdown_figure(steps)),
        html.P("Share of excess: over runs slower than T, each step's time above its own median, as a share "
               "of that excess over all steps (all hours). " + PERCENTILE_NOTE,
               style={"fontSize": "0.85em", "color": "#555"}),
        dcc.Graph(id=ids.TIMELINE, figure=figures.timeline_figure(
            timeline, threshold_s=t, timezone=context.timezone,
            changes=_changes(context, filters.workflow, runs.start, runs.end))),
    ]


def period_note(filters: Filters, context: DashboardContext) -> str:
    """What a chosen period applies to on this page, and why it may hold no runs: "Outpatient
    clinic has no ward rounds in its calendar (they are kept at Ward 7 and Community hospital)."."""
    parts = [f"{filters.period.capitalize()} applies to the Apdex and the distribution; the step durations "
             "and the waiting time over time below are over all hours of the window."]
    period = next((p for p in context.periods if p.name == filters.period), None)
    if period is not None and period.sites and filters.site and filters.site not in period.sites:
        kept = [context.site_title(s) for s in period.sites]
        where = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
        parts.insert(0, f"{context.site_title(filters.site)} has no {filters.period} in its calendar "
                        f"(they are kept at {where}), so no run falls in them.")
    return " ".join(parts)


def _distribution(asked: q.Question, filters: Filters, context: DashboardContext) -> q.Distribution:
    """Judged against the workflow's T; a period that does not start and end on 15-minute
    boundaries is asked of exact rows."""
    calendar = context.calendar()
    if filters.period is not None and not q.period_aligned(calendar, filters.period):
        asked = question(asked.runs, exact=True)
    return q.waiting_distribution(asked, period=filters.period, calendar=calendar)


def _changes(context, workflow: str, start, end) -> pd.DataFrame:
    """The change events that touch this workflow inside the window, for the timeline."""
    rows = [
        {"time": change.at, "title": change.title}
        for change in context.changes
        if (not change.workflows or workflow in change.workflows) and start <= change.at < end
    ]
    return pd.DataFrame(rows, columns=["time", "title"])
