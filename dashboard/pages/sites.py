"""Sites side by side, with request phases so that network cost is visible."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
from dash import dcc, html

from analysis.aggregates import phase_summary, site_summary
from dashboard import figures, ids
from dashboard.context import current_context
from dashboard.data import NoData, open_data, simulated_note
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page

dash.register_page(__name__, path="/sites", name="Sites", title="Wardwatch · Sites", order=4)


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    workflow = context.workflow(filters.workflow)
    bar = filter_bar(filters, context, show=("window", "workflow"))
    threshold_s = workflow.threshold_s if filters.workflow else 3.0
    intro = (
        f"Whole runs per site ({'all workflows' if not filters.workflow else workflow.title}), judged against "
        f"{threshold_s:g} s; below, where each request's time goes: DNS, connect, TLS, time to first byte "
        "(mostly the EPR's server time) and transfer."
    )
    runs = filters.run_filter(context.now(), context.timezone)
    try:
        with open_data(context) as store:
            sites = site_summary(store, runs, threshold_s=threshold_s)
            phases = phase_summary(store, runs)
            note = simulated_note(store, runs.start, runs.end)
    except NoData as exc:
        return page("Sites", bar, explain(str(exc)), intro=intro)
    if sites.empty:
        return page("Sites", bar, explain("No runs in this window."), intro=intro)
    rows = [
        {"site": context.site_title(r.site), "runs": int(r.samples), "failed": int(r.not_ok),
         "share_under": r.share_under, "p50_s": r.p50_s, "p90_s": r.p90_s}
        for r in sites.itertuples()
    ]
    fmt = {"function": "params.value == null ? '' : d3.format('.2f')(params.value)"}
    grid = dag.AgGrid(
        id=ids.SITES_TABLE,
        rowData=rows,
        columnDefs=[
            {"field": "site"}, {"field": "runs", "headerName": "runs (n)"}, {"field": "failed"},
            {"field": "share_under", "headerName": f"share within {threshold_s:g} s",
             "valueFormatter": {"function": "d3.format('.1%')(params.value)"}},
            {"field": "p50_s", "headerName": "median (s)", "valueFormatter": fmt},
            {"field": "p90_s", "headerName": "p90 (s)", "valueFormatter": fmt},
        ],
        columnSize="sizeToFit",
        dashGridOptions={"domLayout": "autoHeight"},
    )
    phases = phases.assign(site=phases["site"].map(context.site_title))
    return page("Sites", bar, banner(note), grid, dcc.Graph(id=ids.PHASES, figure=figures.phases_figure(phases)),
                intro=intro)
