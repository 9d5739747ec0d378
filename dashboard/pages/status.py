"""Status: a plain-language line per workflow and site, for clinicians and the service desk."""

from __future__ import annotations

import dash
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.rollup_queries import current_status
from dashboard import ids
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, current_snapshot
from dashboard.layout import page

dash.register_page(__name__, path="/status", name="Status", title="Wardwatch · Status", order=1)


def layout(**_query: str) -> html.Div:
    context = current_context()
    return page(
        "Status",
        html.Ul(id=ids.STATUS_LIST, style={"fontSize": "1.15em", "lineHeight": "1.8"}),
        html.P(id=ids.STATUS_UPDATED, style={"color": "#555", "fontSize": "0.85em"}),
        dcc.Interval(id=ids.REFRESH, interval=int(context.refresh_interval_s * 1000)),
        intro="How long common tasks take right now, compared with the past week. This page refreshes by itself.",
    )


@callback(Output(ids.STATUS_LIST, "children"), Output(ids.STATUS_UPDATED, "children"), Input(ids.REFRESH, "n_intervals"))
def refresh(_n: int | None) -> tuple[list[html.Li], str]:
    context = current_context()
    now = context.now()
    updated = f"Updated {pd.Timestamp(now).tz_convert(context.timezone):%H:%M:%S} ({context.timezone})."
    try:
        status = current_status(current_snapshot(), now)
    except NoData as exc:
        return [html.Li(str(exc))], updated
    if status.empty:
        return [html.Li("No runs in the past week: the probes have not reported yet.")], updated
    return [html.Li(status_sentence(row, context), className=f"state-{row.state.replace(' ', '-')}")
            for row in status.itertuples()], updated


def status_sentence(row, context: DashboardContext) -> str:
    """One line without jargon: "Open patient record at Ward 7: slow since 08:14, typically 6 s"."""
    where = f"{context.workflow(row.workflow).title} at {context.site_title(row.site)}"
    zone = context.site_timezone(row.site)

    def clock(moment) -> str:
        return f"{pd.Timestamp(moment).tz_convert(zone):%H:%M}"

    def seconds(value) -> str:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"

    if row.state == "normal":
        return f"{where}: normal, typically {seconds(row.typical_s)}."
    if row.state == "slow":
        usual = f" (usually {seconds(row.baseline_s)})" if pd.notna(row.baseline_s) else ""
        return f"{where}: slow since {clock(row.since)}, typically {seconds(row.typical_s)}{usual}."
    if row.state == "failing":
        return (f"{where}: failing since {clock(row.since)} — {row.recent_failed} of the last "
                f"{row.recent_samples} attempts did not complete.")
    last = f"; last check {clock(row.last_run)}" if pd.notna(row.last_run) else ""
    return f"{where}: no recent checks (the probe may be stopped{last})."
