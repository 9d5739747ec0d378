"""SLA report: the month's report from the analysis layer, printable, downloadable as HTML and CSV."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

import analysis
from dashboard import ids
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, open_data, store_version
from dashboard.filters import Filters, filter_bar, is_month
from dashboard.jobs import jobs
from dashboard.layout import explain, page

dash.register_page(__name__, path="/report", name="SLA report", title="Wardwatch · SLA report", order=6)


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query)
    if not filters.window[:4].isdigit():  # the report is for a calendar month
        filters = Filters(window=f"{context.now():%Y-%m}")
    intro = (
        f"The report for {filters.window} ({context.timezone}): the SLAs as the contract computes them beside the "
        "experience users had: a verdict first, one picture per finding, then every figure with its sample count. "
        "Building it reads the whole month, so it takes a moment."
    )
    return page(
        "SLA report",
        filter_bar(filters, context, show=("window",)),
        html.Button("Build the report", id=ids.REPORT_BUILD, n_clicks=0),
        html.Button("Download HTML", id=ids.REPORT_DOWNLOAD_HTML, disabled=True, style={"marginLeft": "1em"}),
        html.Button("Download CSV", id=ids.REPORT_DOWNLOAD_CSV, disabled=True, style={"marginLeft": "0.5em"}),
        dcc.Store(id=ids.REPORT_MONTH, data=filters.window),
        dcc.Store(id=ids.REPORT_DATA),
        dcc.Download(id=ids.REPORT_DOWNLOAD),
        dcc.Interval(id=ids.REPORT_POLL, interval=1000, disabled=True),
        html.Div(id=ids.REPORT_VIEW, style={"marginTop": "1em"}),
        intro=intro,
    )


@callback(
    Output(ids.REPORT_VIEW, "children"),
    Output(ids.REPORT_POLL, "disabled"),
    Input(ids.REPORT_BUILD, "n_clicks"),
    State(ids.REPORT_MONTH, "data"),
    prevent_initial_call=True,
)
def build(_clicks: int, month: str) -> tuple[object, bool]:
    """Start building the month's report off the request (or find it built); the poll shows it."""
    month = month if is_month(month) else f"{current_context().now():%Y-%m}"  # the page's store, tampered with
    context = current_context()
    # Built again once new spans land or a change is recorded.
    version = (store_version(), _changes_version(context))
    job = jobs().start(("report", month), version, lambda: _report(context, month))
    return _building(month, job.elapsed_s()), False


@callback(
    Output(ids.REPORT_VIEW, "children", allow_duplicate=True),
    Output(ids.REPORT_DATA, "data"),
    Output(ids.REPORT_DOWNLOAD_HTML, "disabled"),
    Output(ids.REPORT_DOWNLOAD_CSV, "disabled"),
    Output(ids.REPORT_POLL, "disabled", allow_duplicate=True),
    Input(ids.REPORT_POLL, "n_intervals"),
    State(ids.REPORT_MONTH, "data"),
    prevent_initial_call=True,
)
def poll(_ticks: int, month: str) -> tuple[object, dict | None, bool, bool, bool]:
    """The report once it is built (the downloads enabled), else how long it has been building."""
    month = month if is_month(month) else f"{current_context().now():%Y-%m}"  # the page's store, tampered with
    job = jobs().get(("report", month))
    if job is None:
        return explain("Choose \u201cBuild the report\u201d to build it."), None, True, True, True
    if not job.done.is_set():
        return _building(month, job.elapsed_s()), no_update, True, True, False
    if job.error is not None:
        return explain(f"The report could not be built: {job.error}"), None, True, True, True
    if isinstance(job.result, str):  # why there is nothing to report
        return explain(job.result), None, True, True, True
    page_html, csv = job.result
    view = html.Iframe(srcDoc=page_html, id=ids.REPORT_FRAME, style={"width": "100%", "height": "900px",
                                                                    "border": "1px solid #ccc"})
    return view, {"month": month, "html": page_html, "csv": csv}, False, False, True


def _changes_version(context: DashboardContext) -> float | None:
    from analysis.changelog import CHANGES_FILE

    try:
        return (context.data_dir / CHANGES_FILE).stat().st_mtime
    except OSError:
        return None


def report_for(context: DashboardContext, month: str) -> analysis.Report:
    """The month's report exactly as ``wardwatch report`` builds it: the same inputs (the
    configuration's sections and the changes recorded in the store, read now) and the same call.

    Raises:
        NoData: the data directory holds no store.
    """
    from analysis.findings import FindingInputs
    from analysis.report import month_report

    with open_data(context) as store:
        return month_report(store, FindingInputs.from_config(context), month, base_dir=context.config_dir)


def _report(context: DashboardContext, month: str) -> tuple[str, str] | str:
    """The month's report as HTML and CSV (on a job's thread), or why there is none."""
    try:
        report = report_for(context, month)
    except NoData as exc:
        return str(exc)
    return analysis.to_html(report), analysis.render(report, "csv")


def _building(month: str, elapsed_s: float) -> html.P:
    return html.P(f"Building the report for {month}: it reads the whole month, so it can take a minute on a "
                  f"large store ({elapsed_s:.0f} s so far).", className="building")


@callback(
    Output(ids.REPORT_DOWNLOAD, "data"),
    Input(ids.REPORT_DOWNLOAD_HTML, "n_clicks"),
    Input(ids.REPORT_DOWNLOAD_CSV, "n_clicks"),
    State(ids.REPORT_DATA, "data"),
    prevent_initial_call=True,
)
def download(_html_clicks: int | None, _csv_clicks: int | None, data: dict | None) -> dict:
    if not data:
        return no_update
    kind = "csv" if dash.ctx.triggered_id == ids.REPORT_DOWNLOAD_CSV else "html"
    return dcc.send_string(data[kind], f"wardwatch-report-{data['month']}.{kind}")
