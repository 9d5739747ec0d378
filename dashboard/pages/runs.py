"""Runs and traces: runs slowest (or newest) first, each run's steps, and one run's waterfall."""

from __future__ import annotations

from urllib.parse import parse_qsl

import dash
import dash_ag_grid as dag
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from analysis.aggregates import run_waterfall, slowest_runs
from dashboard import figures, ids
from dashboard.context import current_context
from dashboard.data import NoData, open_data, simulated_note
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page

dash.register_page(__name__, path="/runs", name="Runs", title="Wardwatch · Runs", order=5)

_SECONDS = {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}
_COLUMNS = [
    {"field": "start_local", "headerName": "start"},
    {"field": "workflow"},
    {"field": "site"},
    {"field": "status"},
    {"field": "error_type", "headerName": "error"},
    {"field": "waiting_s", "headerName": "waiting (s)", "type": "numericColumn", "valueFormatter": _SECONDS},
    {"field": "wall_s", "headerName": "wall (s)", "type": "numericColumn", "valueFormatter": _SECONDS},
]
_CHART_RUNS = 30


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    bar = filter_bar(filters, context, show=("window", "workflow", "site"))
    order = "newest" if query.get("order") == "newest" else "slowest"
    intro = (
        f"Runs in the {filters.describe_window()}, {order} first (up to {context.recent_runs}). Waiting time is "
        "the sum of a run's steps; wall time includes think time. Choose a run to see its waterfall."
    )
    runs = filters.run_filter(context.now(), context.timezone)
    try:
        with open_data(context) as store:
            listed = slowest_runs(store, runs, limit=context.recent_runs, newest_first=order == "newest")
            chart_steps = store.sql(
                "SELECT trace_id, start, site, step, step_index, duration_s FROM steps WHERE list_contains(?, trace_id)",
                [listed["trace_id"].head(_CHART_RUNS).tolist()],
            )
            waterfall = run_waterfall(store, filters.trace) if filters.trace else pd.DataFrame()
            missed = store.missed_slots(start=runs.start, end=runs.end, workflow=filters.workflow, site=filters.site)
            note = simulated_note(store, runs.start, runs.end)
    except NoData as exc:
        return page("Runs", bar, explain(str(exc)), intro=intro)
    if listed.empty:
        return page("Runs", bar, explain(
            f"No runs in the {filters.describe_window()} yet: start a probe (wardwatch probe -c FILE)."), intro=intro)
    rows = listed.assign(
        start_local=listed["start"].dt.tz_convert(context.timezone).dt.strftime("%Y-%m-%d %H:%M:%S"),
        error_type=listed["error_type"].fillna(""),
    )
    keep = ["trace_id", "start_local", "workflow", "site", "status", "error_type", "waiting_s", "wall_s"]
    rows = rows[keep].astype(object).where(rows[keep].notna(), None).to_dict("records")
    other = "newest" if order == "slowest" else "slowest"
    return page(
        "Runs",
        bar,
        banner(note),
        dcc.Link(f"show {other} first", href=filters.query_string() + ("&" if filters.query_string() else "?")
                 + f"order={other}", id="runs-order"),
        html.P(f"{len(listed)} runs listed; {int((listed['status'] != 'ok').sum())} not ok; "
               f"{len(missed)} missed slots in this window.", id=ids.RUNS_SUMMARY),
        dcc.Graph(id=ids.WATERFALL, figure=figures.waterfall_figure(waterfall)) if filters.trace else None,
        dag.AgGrid(
            id=ids.RUNS_TABLE,
            rowData=rows,
            columnDefs=_COLUMNS,
            getRowId="params.data.trace_id",
            defaultColDef={"sortable": True, "filter": True, "resizable": True},
            dashGridOptions={"pagination": True, "paginationPageSize": 25,
                             "paginationPageSizeSelector": [25, 50, 100], "rowSelection": "single"},
            getRowStyle={"styleConditions": [
                {"condition": "params.data.status != 'ok'", "style": {"backgroundColor": "#fde8e8"}}]},
            columnSize="sizeToFit",
            style={"height": "420px"},
        ),
        dcc.Graph(id=ids.STEP_CHART,
                  figure=figures.step_duration_figure(chart_steps, timezone=context.timezone)),
        _missed_table(missed, context.timezone),
        intro=intro,
    )


def _missed_table(missed: pd.DataFrame, timezone: str) -> html.Div:
    if missed.empty:
        return html.Div(id=ids.MISSED_SLOTS)
    recent = missed.sort_values("slot", ascending=False).head(20)
    items = [
        html.Li(f"{pd.Timestamp(r.slot).tz_convert(timezone):%Y-%m-%d %H:%M} {r.workflow} at {r.site}: {r.reason}")
        for r in recent.itertuples()
    ]
    return html.Div([html.H3("Missed slots (gaps in coverage)"), html.Ul(items)], id=ids.MISSED_SLOTS)


@callback(
    Output(ids.URL, "search", allow_duplicate=True),
    Input(ids.RUNS_TABLE, "cellClicked"),
    State(ids.URL, "search"),
    prevent_initial_call=True,
)
def choose_run(cell: dict | None, search: str | None) -> str:
    """A clicked run becomes ``?trace=`` in the URL, so its waterfall can be shared as a link."""
    if not cell or not cell.get("rowId"):
        return no_update
    query = dict(parse_qsl((search or "").lstrip("?")))
    order = query.get("order")
    new = Filters.from_query(query).query_string(trace=cell["rowId"])
    if order:
        new += ("&" if new else "?") + f"order={order}"
    return new
