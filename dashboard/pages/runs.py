"""Runs and traces: runs slowest (or newest) first, each run's steps, and one run's waterfall."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from analysis import rollup_queries as rq
from analysis.aggregates import run_waterfall
from analysis.rollup_queries import ask
from dashboard import figures, ids
from dashboard.context import DashboardContext, current_context
from dashboard.data import CHART_RUNS, NoData, current_snapshot, open_data, simulated_text
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page
from dashboard.live import live_section

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


_PAGE = "runs"


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    bar = filter_bar(filters, context, show=("window", "workflow", "site", "live"))
    order = filters.order or "slowest"
    intro = (
        f"Runs in the {filters.describe_window()}, {order} first (up to {context.recent_runs}). Waiting time is "
        "the sum of a run's steps; wall time includes think time. Choose a run to see its waterfall."
    )
    return page("Runs", bar, *live_section(_PAGE, filters, context, body(filters, context)), intro=intro)


@callback(
    Output({"type": ids.LIVE_BODY, "page": _PAGE}, "children"),
    Input({"type": ids.LIVE_TICK, "page": _PAGE}, "n_intervals"),
    State(ids.URL, "search"),
    prevent_initial_call=True,
)
def refresh(_n: int | None, search: str | None) -> list[object]:
    """Live mode: the list again, with the runs that landed since."""
    return body(Filters.from_search(search), current_context())


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """The runs listed, the chosen run's waterfall, the step chart and the missed slots."""
    order = filters.order or "slowest"
    runs = filters.run_filter(context.now(), context.timezone)
    try:
        snapshot = current_snapshot()
        answer = ask(snapshot, runs)
        listed = rq.slowest(snapshot, runs, limit=context.recent_runs, newest_first=order == "newest")
        chart_steps = rq.chart_steps(snapshot, listed["trace_id"].head(CHART_RUNS).tolist())
        waterfall = _waterfall(snapshot, listed, filters.trace, context) if filters.trace else pd.DataFrame()
        missed = rq.missed_slots(snapshot, runs)
        note = simulated_text(*rq.simulated_share(answer))
    except NoData as exc:
        return [explain(str(exc))]
    if listed.empty:
        return [explain(f"No runs in the {filters.describe_window()} yet: start a probe (wardwatch probe -c FILE).")]
    rows = listed.assign(
        start_local=listed["start"].dt.tz_convert(context.timezone).dt.strftime("%Y-%m-%d %H:%M:%S"),
        error_type=listed["error_type"].fillna(""),
    )
    keep = ["trace_id", "start_local", "workflow", "site", "status", "error_type", "waiting_s", "wall_s"]
    rows = rows[keep].astype(object).where(rows[keep].notna(), None).to_dict("records")
    other = "newest" if order == "slowest" else "slowest"
    return [
        banner(note),
        dcc.Link(f"show {other} first", href=filters.query_string(order="newest" if other == "newest" else None),
                 id="runs-order"),
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
    ]


def _waterfall(snapshot, listed: pd.DataFrame, trace: str, context: DashboardContext) -> pd.DataFrame:
    """The chosen run's spans, read from the segments its time span touches when it is listed
    (else from the whole store: a run shared as a link from another window)."""
    chosen = listed[listed["trace_id"] == trace]
    if not chosen.empty:
        return run_waterfall(rq.SegmentReader(snapshot, rq.run_segments(snapshot, chosen)), trace)
    with open_data(context) as store:
        return run_waterfall(store, trace)


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
    return Filters.from_search(search).query_string(trace=cell["rowId"])
