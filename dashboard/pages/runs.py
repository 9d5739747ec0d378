"""Recent runs: a list, and each run's waiting time split by step."""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dash_table, dcc, html

from dashboard import figures, ids
from dashboard.context import current_context
from dashboard.data import RecentRuns, load_recent_runs

dash.register_page(__name__, path="/", name="Runs", title="Wardwatch · Runs", order=0)

_COLUMNS = [
    {"id": "start_local", "name": "start"},
    {"id": "workflow", "name": "workflow"},
    {"id": "site", "name": "site"},
    {"id": "status", "name": "status"},
    {"id": "error_type", "name": "error"},
    {"id": "waiting_s", "name": "waiting (s)", "type": "numeric", "format": {"specifier": ".3f"}},
    {"id": "wall_s", "name": "wall (s)", "type": "numeric", "format": {"specifier": ".3f"}},
]


def layout(**_query: str) -> html.Div:
    context = current_context()
    return html.Div(
        [
            html.H2("Recent runs"),
            html.P(id=ids.SIMULATED_BANNER),
            html.P(id=ids.RUNS_SUMMARY),
            dcc.Graph(id=ids.STEP_CHART, config={"displaylogo": False}),
            dash_table.DataTable(
                id=ids.RUNS_TABLE,
                columns=_COLUMNS,
                sort_action="native",
                page_size=25,
                style_cell={"fontFamily": "inherit", "padding": "4px 8px", "textAlign": "left"},
                style_data_conditional=[
                    {"if": {"filter_query": '{status} != "ok"'}, "backgroundColor": "#fde8e8"}
                ],
            ),
            dcc.Interval(id=ids.REFRESH, interval=int(context.refresh_interval_s * 1000)),
        ]
    )


@callback(
    Output(ids.RUNS_TABLE, "data"),
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
