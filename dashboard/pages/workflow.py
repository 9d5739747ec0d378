"""Workflow: how long one workflow makes users wait, which step, and since when."""

from __future__ import annotations

from dataclasses import replace

import dash
import pandas as pd
from dash import dcc, html

import analysis
from analysis.aggregates import step_summary, waiting_timeline
from dashboard import figures, ids
from dashboard.context import current_context
from dashboard.data import NoData, open_data, simulated_note
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page

dash.register_page(__name__, path="/workflow", name="Workflow", title="Wardwatch · Workflow", order=3)

_BUCKETS = {"1d": "15 minutes", "7d": "1 hour"}


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    if filters.workflow is None and context.workflows:
        filters = replace(filters, workflow=context.workflows[0].name)
    workflow = context.workflow(filters.workflow)
    bar = filter_bar(filters, context)
    intro = (
        f"{(workflow.description or workflow.title).rstrip('.')}. Waiting time is the sum of the steps a clinician waits for "
        f"(think time excluded); T = {workflow.threshold_s:g} s from {workflow.threshold_source}."
    )
    if not filters.workflow:
        return page("Workflow", bar, explain("No workflows are configured."), intro=intro)
    runs = filters.run_filter(context.now(), context.timezone)
    try:
        with open_data(context) as store:
            frame = store.runs(start=runs.start, end=runs.end, workflow=filters.workflow, site=filters.site,
                               period=filters.period)
            steps = step_summary(store, runs, threshold_s=workflow.threshold_s)
            timeline = waiting_timeline(store, runs, bucket=_BUCKETS.get(filters.window, "6 hours"))
            note = simulated_note(store, runs.start, runs.end)
    except NoData as exc:
        return page("Workflow", bar, explain(str(exc)), intro=intro)
    ok = frame[frame["status"] == "ok"]
    score = analysis.apdex(frame["waiting_s"].fillna(float("nan")), workflow.threshold_s,
                           failed=frame["status"] != "ok")
    scope = f" during {filters.period}" if filters.period else ""
    headline = (
        f"Apdex {score} ({score.rating or 'no samples'}) over {score.samples} runs{scope}; "
        f"{len(frame) - len(ok)} did not complete."
    )
    return page(
        f"Workflow: {workflow.title}",
        bar,
        banner(note),
        html.P(headline, id=ids.APDEX, style={"fontSize": "1.1em"}),
        dcc.Link("See these runs, slowest first", href="/runs" + filters.query_string(period=None), id="workflow-runs-link"),
        dcc.Graph(id=ids.ECDF, figure=figures.ecdf_figure(
            ok["waiting_s"], thresholds_s={"T": workflow.threshold_s}, title=f"Waiting time of completed runs{scope}")),
        dcc.Graph(id=ids.STEP_BREAKDOWN, figure=figures.step_breakdown_figure(steps)),
        html.P("Share of excess: over runs slower than T, each step's time above its own median, as a share "
               "of that excess over all steps (all hours).", style={"fontSize": "0.85em", "color": "#555"}),
        dcc.Graph(id=ids.TIMELINE, figure=figures.timeline_figure(
            timeline, threshold_s=workflow.threshold_s, timezone=context.timezone,
            changes=_changes(context, filters.workflow, runs.start, runs.end))),
        intro=intro,
    )


def _changes(context, workflow: str, start, end) -> pd.DataFrame:
    """The change events that touch this workflow inside the window, for the timeline."""
    rows = [
        {"time": change.at, "title": change.title}
        for change in context.changes
        if (not change.workflows or workflow in change.workflows) and start <= change.at < end
    ]
    return pd.DataFrame(rows, columns=["time", "title"])
