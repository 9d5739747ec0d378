"""Time of day: when in the week users wait, in the site's local time, with clinical periods outlined."""

from __future__ import annotations

from dataclasses import replace

import dash
from dash import dcc, html

from analysis.aggregates import time_of_day
from analysis.config import WEEKDAYS
from dashboard import figures, ids
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, open_data, simulated_note
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page

dash.register_page(__name__, path="/time-of-day", name="Time of day", title="Wardwatch · Time of day", order=2)


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    if filters.workflow is None and context.workflows:
        filters = replace(filters, workflow=context.workflows[0].name)
    workflow = context.workflow(filters.workflow)
    zone = context.site_timezone(filters.site)
    bar = filter_bar(filters, context, show=("window", "workflow", "site"))
    intro = (
        f"Share of {workflow.title.lower()} runs within {workflow.threshold_s:g} s "
        f"(T from {workflow.threshold_source}), by weekday and hour in {zone}. Cells with fewer than 5 runs are blank."
    )
    try:
        with open_data(context) as store:
            runs = filters.run_filter(context.now(), context.timezone)
            cells = time_of_day(store, runs, timezone=zone, threshold_s=workflow.threshold_s)
            comparison = _period_comparison(store, filters, context, workflow.threshold_s)
            note = simulated_note(store, runs.start, runs.end)
    except NoData as exc:
        return page("Time of day", bar, explain(str(exc)), intro=intro)
    cells = cells.rename(columns={"share_under": "value"})
    fig = figures.time_of_day_figure(
        cells, value_label=f"share within {workflow.threshold_s:g} s", periods=period_boxes(context, filters.site),
        zmax=1.0,
    )
    return page("Time of day", bar, banner(note), dcc.Graph(id=ids.HEATMAP, figure=fig),
                html.Div(comparison, id=ids.PERIOD_COMPARISON), intro=intro)


def period_boxes(context: DashboardContext, site: str | None) -> list[figures.PeriodBox]:
    """The clinical periods of ``site`` (or of every site) as cells on the weekday x hour grid."""
    boxes = []
    for period in context.periods:
        if site is not None and period.sites and site not in period.sites:
            continue
        for day in period.weekdays:
            boxes.append(figures.PeriodBox(
                weekday=WEEKDAYS.index(day),
                start_hour=period.start.hour + period.start.minute / 60,
                end_hour=period.end.hour + period.end.minute / 60,
            ))
    return boxes


def _period_comparison(store, filters: Filters, context: DashboardContext, threshold_s: float) -> list:
    """Each clinical period against the rest of the hours, from the runs themselves."""
    if not context.periods:
        return [explain("No clinical periods are configured, so there is nothing to compare.")]
    runs = filters.run_filter(context.now(), context.timezone)
    frame = store.runs(start=runs.start, end=runs.end, workflow=filters.workflow, site=filters.site)
    if frame.empty:
        return [explain("No runs in this window.")]
    items = []
    calendar = context.calendar()
    for period in context.periods:
        inside = calendar.mask(frame, period.name)
        parts = []
        for label, part in (("during " + period.name, frame[inside]), ("the rest of the week", frame[~inside])):
            if part.empty:
                parts.append(f"{label}: no runs")
                continue
            good = ((part["status"] == "ok") & (part["waiting_s"] <= threshold_s)).mean()
            p90 = part.loc[part["status"] == "ok", "waiting_s"].quantile(0.9)
            parts.append(f"{label}: {good:.0%} within {threshold_s:g} s, p90 {p90:.1f} s (n = {len(part)})")
        items.append(html.Li("; ".join(parts)))
    return [html.H3("Clinical periods against the rest"), html.Ul(items)]
