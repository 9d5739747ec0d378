"""Time of day: when in the week users wait, in the site's local time, with clinical periods outlined."""

from __future__ import annotations

from dataclasses import replace

import dash
from dash import dcc, html

from analysis.config import WEEKDAYS
from analysis.findings import seconds_text
from analysis.percentiles import few_samples
from analysis.query import figures as q
from dashboard import figures, ids
from dashboard.figures import count_text
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, question, simulated_text
from dashboard.filters import WINDOWS, Filters, filter_bar
from dashboard.layout import PERCENTILE_NOTE, banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/time-of-day", name="Time of day", title="Wardwatch · Time of day", order=2)


_PAGE = "time-of-day"


# A weekday x hour cell needs several weeks of a probe's runs: a run every 15 minutes gives a cell
# 4 runs a week, under MIN_RUNS. Without a window in the URL this page shows DEFAULT_WINDOW.
DEFAULT_WINDOW = "28d"
MIN_RUNS = 5


def _chosen(filters: Filters, context: DashboardContext) -> Filters:
    if filters.workflow is None and context.workflows:
        filters = replace(filters, workflow=context.workflows[0].name)
    if not filters.window_given:
        filters = replace(filters, window=DEFAULT_WINDOW)
    return filters


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = _chosen(Filters.from_query(query, context), context)
    workflow = context.workflow(filters.workflow)
    zone = context.site_timezone(filters.site)
    bar = filter_bar(filters, context, show=("window", "workflow", "site", "live"))
    intro = (
        f"Share of {workflow.title.lower()} runs within {workflow.threshold_s:g} s "
        f"(T from {workflow.threshold_origin}), by weekday and hour in {zone}, over the {filters.describe_window()}. "
        f"Cells with fewer than {MIN_RUNS} runs are blank."
    )
    return page("Time of day", bar, *live_section(_PAGE, filters, context, body(filters, context)), intro=intro)


# Live mode: the heatmap again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(_chosen(filters, context), context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """The weekday x hour heatmap and each clinical period against the rest."""
    workflow = context.workflow(filters.workflow)
    zone = context.site_timezone(filters.site)
    try:
        asked = question(filters.run_filter(context.now(), context.timezone))
        cells = q.time_of_day(asked, timezone=zone)  # within the chosen workflow's T
        comparison = _period_comparison(asked, filters, context, workflow.threshold_s)
        note = simulated_text(*q.simulated_share(asked))
    except NoData as exc:
        return [explain(str(exc))]
    cells = cells.rename(columns={"share_under": "value"})
    fig = figures.time_of_day_figure(
        cells, value_label=f"share within {workflow.threshold_s:g} s", periods=period_boxes(context, filters.site),
        zmax=1.0, min_samples=MIN_RUNS,
    )
    return [banner(note), *_sparse_note(cells, filters), dcc.Graph(id=ids.HEATMAP, figure=fig),
            html.Div(comparison, id=ids.PERIOD_COMPARISON)]


def _sparse_note(cells, filters: Filters) -> list[object]:
    """When most cells that have runs hold too few to be shown, say so and how to fill them."""
    seen = cells[cells["samples"] > 0]
    blank = int((seen["samples"] < MIN_RUNS).sum())
    if seen.empty or blank * 2 < len(seen):
        return []
    wider = [key for key in ("7d", "28d") if _days(key) > _days(filters.window)]
    how = (["Choose a longer window: ", dcc.Link(f"the {WINDOWS[wider[-1]]}", id=ids.HEATMAP_WIDER,
                                                   href="/time-of-day" + filters.query_string(window=wider[-1])),
            ", or all sites."] if wider else ["Choose all sites, or wait for more runs."])
    return [html.P([f"{count_text(blank)} of the {count_text(len(seen))} hours with runs hold fewer than {MIN_RUNS} runs in the "
                    f"{filters.describe_window()}, so they are blank. ", *how],
                   className="sparse-note", style={"color": "#8a4b00"})]


def _days(window: str) -> int:
    return {"1d": 1, "7d": 7, "28d": 28}.get(window, 28)


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


def _period_comparison(asked: q.Question, filters: Filters, context: DashboardContext, threshold_s: float) -> list:
    """Each clinical period against the rest of the hours: pre-aggregated buckets serve a period
    that starts and ends on 15-minute boundaries, exact rows any other."""
    if not context.periods:
        return [explain("No clinical periods are configured, so there is nothing to compare.")]
    calendar = context.calendar()
    exact = None
    items = []
    for period in context.periods:
        if filters.site is not None and period.sites and filters.site not in period.sites:
            continue  # not a period at this site
        if not q.period_aligned(calendar, period.name):
            exact = exact or question(asked.runs, exact=True)
        split = q.period_split(asked if q.period_aligned(calendar, period.name) else exact,
                               calendar=calendar, period=period.name)
        if all(n == 0 for _, n, _, _ in split):
            return [explain("No runs in this window.")]
        parts = [f"{label}: no runs" if n == 0 else
                 f"{label}: {good:.0%} within {threshold_s:g} s, p90 {seconds_text(p90)}"
                 f"{' (few runs)' if few_samples(n, 0.9) else ''} (n = {count_text(n)})"
                 for label, n, good, p90 in split]
        items.append(html.Li("; ".join(parts)))
    if not items:
        return [explain(f"No clinical period is configured at {context.site_title(filters.site or '')}.")]
    return [html.H3("Clinical periods against the rest"), html.Ul(items),
            html.P(PERCENTILE_NOTE, style={"fontSize": "0.85em", "color": "#555"})]
