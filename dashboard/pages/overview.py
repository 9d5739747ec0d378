"""Overview: each workflow at each site, the experience as users feel it, in plain words first."""

from __future__ import annotations

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

import analysis
from analysis.rollup_queries import FRUSTRATED_SHARE, HOUR_MIN_RUNS, ask, board_scopes, simulated_share
from dashboard import ids
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, current_snapshot, open_data, simulated_text, store_version
from dashboard.filters import Filters, filter_bar
from dashboard.board import scope_words, worst_scopes
from dashboard.jobs import jobs
from dashboard.layout import banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/", name="Overview", title="Wardwatch · Overview", order=0)


_PAGE = "overview"


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query, context)
    bar = filter_bar(filters, context, show=("window", "workflow", "site", "live"))
    intro = (
        f"Runs in the {filters.describe_window()}. A run is good when it was ok and its waiting time "
        "(the sum of its steps) was within the workflow's threshold T; Apdex uses the same T."
    )
    month = filters.window if filters.window[:4].isdigit() else f"{context.now():%Y-%m}"
    return page(
        "Overview",
        bar,
        html.H3("Where the SLA looks fine while users wait"),
        html.Button(f"Find them for {month}", id=ids.FINDINGS_BUILD, n_clicks=0),
        dcc.Store(id=ids.FINDINGS_MONTH, data=month),
        dcc.Interval(id=ids.FINDINGS_POLL, interval=1000, disabled=True),
        html.Div(id=ids.FINDINGS),
        *live_section(_PAGE, filters, context, body(filters, context)),
        intro=intro,
    )


# Live mode: the board again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(filters, context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """Each workflow at each site, rated by its worst part of the day, worst first."""
    try:
        answer = ask(current_snapshot(), filters.run_filter(context.now(), context.timezone))
        scopes = board_scopes(answer, calendar=context.calendar())
        note = simulated_text(*simulated_share(answer))
    except NoData as exc:
        return [explain(str(exc))]
    if scopes.empty:
        return [explain("No runs in this window: widen it, or start a probe.")]
    return [
        banner(note),
        html.H3("Each workflow at each site, worst first"),
        board_table(scopes, context, filters),
        html.P(
            f"A row is rated by its lowest Apdex among all hours, each clinical period at the site, and the hours "
            f"of the day (site-local, {HOUR_MIN_RUNS} runs or more) in which at least {FRUSTRATED_SHARE:.0%} of runs "
            "were frustrated (over 4T, or failed). Where even that reads Good while one run in ten somewhere waits "
            "four times T or more, the row is flagged instead. "
            "* fewer than 100 runs: a small group, as the Apdex specification marks it.",
            style={"fontSize": "0.85em", "color": "#555"}),
    ]


_COLUMNS = ("workflow", "site", "T", "all hours: within T", "Apdex [T]", "worst part of the day", "within T there",
            "frustrated there", "Apdex there", "rating", "runs (n)", "failed")


def board_table(scopes: pd.DataFrame, context: DashboardContext, filters: Filters) -> html.Table:
    """The board as a plain table (it paints without loading a grid component)."""
    cell = {"padding": "0.25em 0.6em", "borderBottom": "1px solid #e5e5e5", "textAlign": "left"}
    number = {**cell, "textAlign": "right", "fontVariantNumeric": "tabular-nums", "whiteSpace": "nowrap"}
    colours = {"Excellent": "#1a7f37", "Good": "#1a7f37", "Fair": "#9a6700", "Flagged": "#9a6700",
               "Poor": "#cf222e", "Unacceptable": "#a40e26"}
    body = []
    for row in worst_scopes(scopes).itertuples():
        pooled, worst = row.pooled, row.worst
        workflow = context.workflow(row.workflow)
        href = "/workflow" + filters.query_string(workflow=row.workflow, site=row.site, order=None, trace=None,
                                                  period=worst["scope"] if worst["kind"] == "period" else None)
        where = scope_words(worst)
        rating = row.rating
        if rating == "Flagged":
            rating = f"Flagged: {worst['frustrated_share']:.0%} of runs over {4 * workflow.threshold_s:g} s {where}"
        elif worst["kind"] != "all":
            rating = f"{rating} {where}"
        values = [
            (dcc.Link(workflow.title, href=href, className="board-link"), cell, "workflow"),
            (context.site_title(row.site), cell, "site"),
            (f"{workflow.threshold_s:g} s", number, "threshold"),
            (f"{pooled['share_under']:.0%}", number, "share_under"),
            (str(pooled["apdex"]), number, "apdex"),
            ("" if worst["kind"] == "all" else where.removeprefix("at ").removeprefix("during "), cell, "worst"),
            ("" if worst["kind"] == "all" else f"{worst['share_under']:.0%} of {int(worst['samples'])}", number,
             "worst_share_under"),
            ("" if worst["kind"] == "all" else f"{worst['frustrated_share']:.0%}", number, "worst_frustrated"),
            ("" if worst["kind"] == "all" else str(worst["apdex"]), number, "worst_apdex"),
            (rating, {**cell, "color": colours.get(row.rating, "#333"), "fontWeight": "600"},
             "rating"),
            (str(int(pooled["samples"])), number, "runs"),
            (str(int(pooled["not_ok"])), number, "not_ok"),
        ]
        body.append(html.Tr([html.Td(text, style=style, className=name) for text, style, name in values]))
    return html.Table(
        [html.Thead(html.Tr([html.Th(c, style={**cell, "borderBottom": "2px solid #999"}) for c in _COLUMNS])),
         html.Tbody(body)],
        id=ids.BOARD, style={"borderCollapse": "collapse", "width": "100%", "margin": "0.5em 0"},
    )


@callback(
    Output(ids.FINDINGS, "children"),
    Output(ids.FINDINGS_POLL, "disabled"),
    Input(ids.FINDINGS_BUILD, "n_clicks"),
    State(ids.FINDINGS_MONTH, "data"),
    prevent_initial_call=True,
)
def find(_clicks: int, month: str) -> tuple[object, bool]:
    """Start looking for the month's findings off the request (or find them found); the poll shows them."""
    context = current_context()
    if not context.slas or not context.objectives:
        return explain("Findings need both SLAs and experience objectives in the configuration."), True
    job = jobs().start(("findings", month), store_version(), lambda: _findings(context, month))
    return _looking(month, job.elapsed_s()), False


@callback(
    Output(ids.FINDINGS, "children", allow_duplicate=True),
    Output(ids.FINDINGS_POLL, "disabled", allow_duplicate=True),
    Input(ids.FINDINGS_POLL, "n_intervals"),
    State(ids.FINDINGS_MONTH, "data"),
    prevent_initial_call=True,
)
def show_findings(_ticks: int, month: str) -> tuple[object, bool]:
    """The month's watermelon (and reverse) findings in plain words, each with its lenses, once found."""
    job = jobs().get(("findings", month))
    if job is None:
        return no_update, True
    if not job.done.is_set():
        return _looking(month, job.elapsed_s()), False
    if job.error is not None:
        return explain(f"The findings could not be computed: {job.error}"), True
    if isinstance(job.result, str):  # why there are none
        return explain(job.result), True
    items = []
    for finding in job.result:
        query = Filters(window=month, workflow=finding.workflow, site=finding.site,
                        period=None if finding.period == "all hours" else finding.period).query_string()
        label = "SLA met, users waiting" if finding.kind == "watermelon" else "SLA breached, nobody waiting"
        items.append(html.Li([
            html.Strong(f"{label}: "),
            dcc.Link(finding.summary, href="/workflow" + query, className="finding"),
            html.Ul([html.Li(f"{lens.name.replace('_', ' ')}: {lens.text}") for lens in finding.lenses],
                    style={"fontSize": "0.9em", "color": "#444"}),
        ], style={"marginBottom": "0.8em"}))
    return html.Ul(items), True


def _findings(context: DashboardContext, month: str) -> list | str:
    """The month's findings (on a job's thread), or a sentence saying why there are none."""
    try:
        with open_data(context) as store:
            findings = analysis.find_watermelons(
                store, context.slas, context.objectives, context.calendar(), month=month,
                task_volumes=context.task_volumes, base_dir=context.config_dir,
            )
    except NoData as exc:
        return str(exc)
    if not findings:
        return f"No findings for {month}: wherever an SLA was met, the experience objectives were met too."
    return findings


def _looking(month: str, elapsed_s: float) -> html.P:
    return html.P(f"Looking for {month}'s findings: this reads the whole month, so it can take a minute on a "
                  f"large store ({elapsed_s:.0f} s so far).", className="building")
