"""Status: a plain-language line per workflow and site, for clinicians and the service desk."""

from __future__ import annotations

import dash
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.notices import ALL_SITES, read_delivery, read_notices
from analysis.query.rows import current_status
from analysis.status import BETWEEN_CHECKS, FAILING, OVER_T, SLOW, SLOW_AT_TIMES, settled
from dashboard import ids
from dashboard.context import DashboardContext, current_context
from dashboard.figures import count_text
from dashboard.data import NoData, current_store, definitions
from dashboard.layout import page

dash.register_page(__name__, path="/status", name="Status", title="Wardwatch · Status", order=1)


def layout(**_query: str) -> html.Div:
    context = current_context()
    return page(
        "Status",
        html.Ul(id=ids.STATUS_LIST, style={"fontSize": "1.15em", "lineHeight": "1.6", "paddingLeft": "0"}),
        html.P(id=ids.STATUS_UPDATED, style={"color": "#555", "fontSize": "0.85em"}),
        html.H3("Notices"),
        html.Ul(id=ids.STATUS_NOTICES, style={"paddingLeft": "0"}),
        dcc.Interval(id=ids.REFRESH, interval=int(context.refresh_interval_s * 1000)),
        intro="How long common tasks take right now (the last 30 minutes), against each task's threshold and "
              "against the past week. Worst first; this page refreshes by itself.",
    )


@callback(Output(ids.STATUS_LIST, "children"), Output(ids.STATUS_UPDATED, "children"), Input(ids.REFRESH, "n_intervals"))
def refresh(_n: int | None) -> tuple[list[html.Li], str]:
    context = current_context()
    now = context.now()
    updated = f"Updated {pd.Timestamp(now).tz_convert(context.timezone):%H:%M:%S} ({context.timezone})."
    try:
        store = current_store()
        status = settled(store, current_status(store, definitions(context), now, thresholds=True), now)
    except NoData as exc:
        return [html.Li(str(exc))], updated
    if status.empty:
        return [html.Li("No runs in the past week: the probes have not reported yet.")], updated
    rows = sorted(status.itertuples(), key=lambda row: (_ORDER.index(shown_state(row)), row.workflow, row.site))
    return [html.Li(status_sentence(row, context, now), className=f"state-{shown_state(row).replace(' ', '-')}",
                    style={"listStyle": "none", "borderLeft": f"6px solid {_COLOURS[shown_state(row)]}",
                           "paddingLeft": "0.6em", "marginBottom": "0.3em"})
            for row in rows], updated


@callback(Output(ids.STATUS_NOTICES, "children"), Input(ids.REFRESH, "n_intervals"))
def notices(_n: int | None) -> list[html.Li]:
    """The newest notices to clinicians (from alerts firing and resolving, or an operator), newest first."""
    context = current_context()
    found = read_notices(context.data_dir, limit=10)
    undelivered = [html.Li(f"Alerts not yet delivered to {row['receiver']}: {count_text(row['waiting'])} waiting since "
                           f"{pd.Timestamp(row['since']).tz_convert(context.timezone):%a %d %b %H:%M}"
                           f" ({row['error'] or 'not answered'}); they are retried.",
                           className="undelivered", style={"listStyle": "none", "color": "#a40e26"})
                   for row in read_delivery(context.data_dir)]
    if not found:
        return [*undelivered, html.Li("No notices.", style={"listStyle": "none", "color": "#555"})]
    def updated(n) -> str:
        return f" (updated {pd.Timestamp(n.edited).tz_convert(context.timezone):%a %d %b %H:%M})" if n.edited else ""

    return undelivered + [html.Li([html.Strong(f"{'Every site' if n.site == ALL_SITES else context.site_title(n.site)}, "
                                 f"{pd.Timestamp(n.at).tz_convert(context.timezone):%a %d %b %H:%M}: "),
                                   n.text + updated(n) + (" (from the simulated history)" if n.source == "history" else "")],
                    style={"listStyle": "none", "marginBottom": "0.3em"}) for n in found]


_LAST_FAILED, _LAST_SLOW = "last check failed", "last check slow"
_ORDER = ["failing", _LAST_FAILED, "slow", _LAST_SLOW, "over threshold", "slow at times", "no recent runs",
          BETWEEN_CHECKS, "normal"]
_COLOURS = {"failing": "#a40e26", _LAST_FAILED: "#a40e26", "slow": "#cf222e", _LAST_SLOW: "#cf222e",
            "over threshold": "#cf222e", "slow at times": "#d4a72c", "no recent runs": "#999", BETWEEN_CHECKS: "#8fbf9a",
            "normal": "#1a7f37"}


def shown_state(row) -> str:
    """The state a row is shown in: against its own past first (failing, slow), then against its
    threshold (over threshold, slow at times), else normal, between checks (as its last check
    went) or no recent runs."""
    if row.state == BETWEEN_CHECKS:
        return {FAILING: _LAST_FAILED, SLOW: _LAST_SLOW}.get(getattr(row, "last_state", None), BETWEEN_CHECKS)
    if row.state in ("failing", "slow", "no recent runs"):
        return row.state
    return {OVER_T: "over threshold", SLOW_AT_TIMES: "slow at times"}.get(getattr(row, "t_state", None), "normal")


def seconds(value: float) -> str:
    """850 ms, 2.4 s, 21 s."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def every(gap_s: float) -> str:
    """A cadence in words: "5 min", "2 h", "90 s"."""
    if gap_s >= 3600:
        return f"{gap_s / 3600:.1f}".removesuffix(".0") + " h"
    return f"{gap_s / 60:.0f} min" if gap_s >= 60 else f"{gap_s:.0f} s"


def moment_text(moment, zone: str, now) -> str:
    """"08:14" today (in the site's time zone), "Sun 06 Dec 22:00" on another day."""
    local, today = pd.Timestamp(moment).tz_convert(zone), pd.Timestamp(now).tz_convert(zone)
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%a %d %b %H:%M}"


def status_sentence(row, context: DashboardContext, now=None) -> str:
    """One line without jargon: "Open patient record at Ward 7: slow since 08:14, typically 6.0 s"."""
    where = f"{context.workflow(row.workflow).title} at {context.site_title(row.site)}"
    zone = context.site_timezone(row.site)
    now = context.now() if now is None else now

    def since(moment, open_: bool = False) -> str:
        """"since 02:00"; for a streak that began before the runs read back, how long it has lasted."""
        if open_:
            lasted_s = (pd.Timestamp(now) - pd.Timestamp(moment)).total_seconds()
            return f"for over {lasted_s // 3600:.0f} h" if lasted_s >= 7200 else f"for over {every(lasted_s)}"
        return f"since {moment_text(moment, zone, now)}"

    def clock(moment) -> str:
        return moment_text(moment, zone, now)

    state = shown_state(row)
    since_open, t_since_open = bool(getattr(row, "since_open", False)), bool(getattr(row, "t_since_open", False))
    t = getattr(row, "threshold_s", float("nan"))
    usual = f" (usually {seconds(row.baseline_s)})" if pd.notna(row.baseline_s) else ""
    if state == "failing":
        return (f"{where}: failing {since(row.since, since_open)} — {count_text(row.recent_failed)} of the last "
                f"{count_text(row.recent_samples)} attempts did not complete.")
    if state == "slow":
        over = f", over its {t:g} s threshold" if getattr(row, "t_state", None) == OVER_T else ""
        return f"{where}: slow {since(row.since, since_open)}, typically {seconds(row.typical_s)}{usual}{over}."
    if state == "over threshold":
        # "Not new" only with a past week to say so: a workflow probed since this morning has none.
        verdict = ("not new, but not normal either" if pd.notna(row.baseline_s)
                   else "no earlier week to compare it with")
        return (f"{where}: slower than its {t:g} s threshold {since(row.t_since, t_since_open)}, typically "
                f"{seconds(row.typical_s)}{usual}: {verdict}.")
    if state == "slow at times":
        return (f"{where}: slow at times since {clock(row.t_since)} — {count_text(row.very_slow)} of the last {count_text(row.judged)} checks "
                f"took over {4 * t:g} s or failed (the slowest {seconds(row.slowest_s)}); typically "
                f"{seconds(row.typical_s)}.")
    if state == "normal":
        within = f", within its {t:g} s threshold" if pd.notna(t) else ""
        return f"{where}: normal, typically {seconds(row.typical_s)}{within}."
    cadence = f"checked about every {every(row.usual_gap_s)}, so the next is not overdue"
    if state == _LAST_FAILED:
        return f"{where}: the last check, at {clock(row.last_run)}, did not complete; {cadence}."
    if state == _LAST_SLOW:
        return (f"{where}: the last check, at {clock(row.last_run)}, took {seconds(row.last_waiting_s)}{usual}; "
                f"{cadence}.")
    if state == BETWEEN_CHECKS:
        took = (f", when it took {seconds(row.last_waiting_s)}"
                if pd.notna(getattr(row, "last_waiting_s", float("nan"))) else "")
        return (f"{where}: last checked at {clock(row.last_run)}{took}{usual}; {cadence}.")
    last = f"; last check {clock(row.last_run)}" if pd.notna(row.last_run) else ""
    return f"{where}: no recent checks (the probe may be stopped{last})."
