"""Recent runs: a list, and each run's waiting time split by step."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
from dash import Input, Output, callback, dcc, html

from dashboard import figures, ids
from dashboard.context import current_context
from dashboard.data import RecentRuns, load_recent_runs

dash.register_page(__name__, path="/", name="Runs", title="Wardwatch · Runs", order=0)

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


def layout(**_query: str) -> html.Div:
    context = current_context()
    return html.Div(
        [
            html.H2("Recent runs"),
            html.P(id=ids.SIMULATED_BANNER),
            html.P(id=ids.RUNS_SUMMARY),
            dcc.Graph(id=ids.STEP_CHART, config={"displaylogo": False}),
            dag.AgGrid(
                id=ids.RUNS_TABLE,
                columnDefs=_COLUMNS,
                defaultColDef={"sortable": True, "filter": True, "resizable": True},
                dashGridOptions={"pagination": True, "paginationPageSize": 25, "paginationPageSizeSelector": [25, 50, 100], "animateRows": False},
                getRowStyle={
                    "styleConditions": [
                        {"condition": "params.data.status != 'ok'", "style": {"backgroundColor": "#fde8e8"}}
                    ]
                },
                columnSize="sizeToFit",
                style={"height": "600px"},
            ),
            dcc.Interval(id=ids.REFRESH, interval=int(context.refresh_interval_s * 1000)),
        ]
    )


@callback(
    Output(ids.RUNS_TABLE, "rowData"),
    Output(ids.STEP_CHART, "figure"),
    Output(ids.RUNS_SUMMARY, "children"),
    Output(ids.SIMULATED_BANNER, "children"),
    Input(ids.REFRESH, "n_intervals"),
)
def refresh(_n_intervals: int | None) -> tuple[list[dict], object, str, str]:
    context = current_context()
    recent = load_recent_runs(context.data_dir, limit=context.recent_runs, chart_runs=30)
    return (
        recent.table_rows(context.timezone),
        figures.step_duration_figure(recent.chart_steps, timezone=context.timezone),
        _summary(recent, context.timezone),
        "Includes simulated history (from the testbed's latency model)." if recent.simulated else "",
    )


def _summary(recent: RecentRuns, timezone: str) -> str:
    if recent.message:
        return recent.message
    n = len(recent.runs)
    failed = int((recent.runs["status"] != "ok").sum())
    return (
        f"The {n} most recent runs (times in {timezone}); {failed} not ok. "
        "Waiting time is the sum of a run's steps; wall time includes think time."
    )
