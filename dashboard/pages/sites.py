"""Sites side by side, with request phases so that network cost is visible."""

from __future__ import annotations

import dash
import pandas as pd
from dash import dcc, html

from analysis import rollup_queries as rq
from analysis.rollup_queries import ask
from dashboard import figures, ids
from dashboard.context import DEFAULT_THRESHOLD_S, DashboardContext, current_context
from dashboard.data import NoData, current_snapshot, simulated_text
from dashboard.filters import Filters, filter_bar
from dashboard.layout import PERCENTILE_NOTE, banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/sites", name="Sites", title="Wardwatch · Sites", order=4)


_PAGE = "sites"


def _threshold_s(filters: Filters, context: DashboardContext) -> float:
    return context.workflow(filters.workflow).threshold_s if filters.workflow else DEFAULT_THRESHOLD_S


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query, context)
    workflow = context.workflow(filters.workflow)
    bar = filter_bar(filters, context, show=("window", "workflow", "live"))
    intro = (
        f"Whole runs per site ({'all workflows' if not filters.workflow else workflow.title}), judged against "
        f"{_threshold_s(filters, context):g} s; below, where each request's time goes: DNS, connect, TLS, time to first byte "
        "(mostly the EPR's server time) and transfer."
    )
    return page("Sites", bar, *live_section(_PAGE, filters, context, body(filters, context)), intro=intro)


# Live mode: the sites again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(filters, context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """The sites side by side, and their request phases."""
    threshold_s = _threshold_s(filters, context)
    try:
        answer = ask(current_snapshot(), filters.run_filter(context.now(), context.timezone))
        site_rows = rq.sites(answer, threshold_s=threshold_s)
        phases = rq.phases(answer)
        note = simulated_text(*rq.simulated_share(answer))
    except NoData as exc:
        return [explain(str(exc))]
    if site_rows.empty:
        return [explain("No runs in this window.")]
    grid = _sites_table(site_rows, context, threshold_s)
    phases = phases.assign(site=phases["site"].map(context.site_title))
    return [banner(note), grid, html.P(PERCENTILE_NOTE, style={"fontSize": "0.85em", "color": "#555"}),
            dcc.Graph(id=ids.PHASES, figure=figures.phases_figure(phases))]


def _sites_table(site_rows: pd.DataFrame, context: DashboardContext, threshold_s: float) -> html.Table:
    """The sites side by side, as a plain table."""
    cell = {"padding": "0.25em 0.8em", "borderBottom": "1px solid #e5e5e5", "textAlign": "left"}
    number = {**cell, "textAlign": "right", "fontVariantNumeric": "tabular-nums"}
    heads = ["site", "runs (n)", "failed", f"share within {threshold_s:g} s", "median (s, ±1%)", "p90 (s, ±1%)"]

    def seconds(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.2f}"

    body = [
        html.Tr([
            html.Td(context.site_title(r.site), style=cell, className="site"),
            html.Td(str(int(r.samples)), style=number, className="runs"),
            html.Td(str(int(r.not_ok)), style=number, className="failed"),
            html.Td(f"{r.share_under:.1%}", style=number, className="share_under"),
            html.Td(seconds(r.p50_s), style=number, className="p50_s"),
            html.Td(seconds(r.p90_s), style=number, className="p90_s"),
        ])
        for r in site_rows.itertuples()
    ]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h, style={**cell, "borderBottom": "2px solid #999"}) for h in heads])),
         html.Tbody(body)],
        id=ids.SITES_TABLE, style={"borderCollapse": "collapse", "width": "100%", "margin": "0.5em 0"},
    )
