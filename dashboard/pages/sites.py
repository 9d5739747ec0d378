"""Sites side by side, with request phases so that network cost is visible."""

from __future__ import annotations

import dash
import pandas as pd
from dash import dcc, html

from analysis.query import figures as q
from dashboard import figures, ids
from dashboard.figures import count_text
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, question, simulated_text
from dashboard.filters import Filters, filter_bar
from dashboard.layout import PERCENTILE_NOTE, banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/sites", name="Sites", title="Wardwatch · Sites", order=4)


_PAGE = "sites"


def _threshold_s(filters: Filters, context: DashboardContext) -> float | None:
    """The chosen workflow's T; None (each workflow its own T) for all workflows."""
    return context.workflow(filters.workflow).threshold_s if filters.workflow else None


def _judged_against(filters: Filters, context: DashboardContext) -> str:
    if filters.workflow:
        workflow = context.workflow(filters.workflow)
        return f"{workflow.title}, judged against its T of {workflow.threshold_s:g} s"
    own = ", ".join(f"{w.title.lower()} {w.threshold_s:g} s" for w in context.workflows)
    return f"all workflows, each judged against its own T ({own})" if own else "all workflows"


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query, context)
    bar = filter_bar(filters, context, show=("window", "workflow", "live"))
    intro = (
        f"Whole runs per site ({_judged_against(filters, context)}); below, where each request's time goes: "
        "DNS, connect, TLS, time to first byte (the EPR's server time and the link's round trip) and transfer, "
        "compared like for like on the steps the sites share."
    )
    return page("Sites", bar, *live_section(_PAGE, filters, context, body(filters, context)), intro=intro)


# Live mode: the sites again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(filters, context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """The sites side by side, and their request phases like for like."""
    threshold_s = _threshold_s(filters, context)
    try:
        asked = question(filters.run_filter(context.now(), context.timezone))
        site_rows = q.sites(asked)  # each run within its own workflow's T (the chosen one's, when one is)
        phases = q.site_phases(asked)
        simulated, runs = q.simulated_share(asked)
    except NoData as exc:
        return [explain(str(exc))]
    if site_rows.empty:
        return [explain("No runs in this window.")]
    grid = _sites_table(site_rows, context, threshold_s)
    note = PERCENTILE_NOTE if threshold_s is not None else (
        "A site's waiting times are not shown over all workflows: their mix differs from site to site "
        "(a site that charts more looks quicker), so choose a workflow to compare the sites' median and 90th "
        "percentile. The share within T judges each run by its own workflow's T.")
    out = [banner(simulated_text(simulated, runs)), grid,
           html.P(note, style={"fontSize": "0.85em", "color": "#555"}),
           html.H3("Where each request's time goes, by site")]
    if phases.empty:
        return [*out, explain("No steps that several sites make in this window, so no like-for-like comparison.")]
    out.append(html.Ul([html.Li(_phase_sentence(row, context), className="site-phase")
                        for row in phases.sort_values("extra_s", ascending=False).itertuples()],
                       id=ids.PHASE_SENTENCES))
    if simulated:
        out.append(html.P("Simulated runs model no DNS, connect, TLS or transfer time: their whole delay, the "
                          "link's round trip included, counts as time to first byte.",
                          style={"fontSize": "0.85em", "color": "#555"}))
    phases = phases.assign(site=phases["site"].map(context.site_title))
    out.append(dcc.Graph(id=ids.PHASES, figure=figures.phases_figure(phases)))
    return out


def _phase_sentence(row, context: DashboardContext) -> str:
    """One line per site: "Community hospital: 75 ms more per request than the other sites on the same steps..."."""
    site = context.site_title(row.site)
    extra_ms = row.extra_s * 1000
    if abs(extra_ms) < 1:
        return f"{site}: about the same time per request as the other sites on the same steps (n = {count_text(row.samples)})."
    phase = max(figures.PHASES, key=lambda p: abs(getattr(row, f"{p}_extra")))
    share = abs(getattr(row, f"{phase}_extra")) / sum(abs(getattr(row, f"{p}_extra")) for p in figures.PHASES)
    most = "all" if share > 0.95 else "most" if share > 0.5 else "the largest part"
    direction = "more" if extra_ms > 0 else "less"
    return (f"{site}: {abs(extra_ms):.0f} ms {direction} per request than the other sites on the same steps "
            f"(n = {count_text(row.samples)} requests), {most} of it in {figures.PHASE_NAMES[phase]}.")


def _sites_table(site_rows: pd.DataFrame, context: DashboardContext, threshold_s: float | None) -> html.Table:
    """The sites side by side, as a plain table."""
    cell = {"padding": "0.25em 0.8em", "borderBottom": "1px solid #e5e5e5", "textAlign": "left"}
    number = {**cell, "textAlign": "right", "fontVariantNumeric": "tabular-nums"}
    within = f"share within {threshold_s:g} s" if threshold_s is not None else "share within each workflow's T"
    # Percentiles pooled over several workflows would compare their mix, not the sites: only for one.
    waits = threshold_s is not None
    heads = ["site", "runs (n)", "failed", within, *(["median (s, ±1%)", "p90 (s, ±1%)"] if waits else [])]

    def seconds(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.2f}"

    body = [
        html.Tr([
            html.Td(context.site_title(r.site), style=cell, className="site"),
            html.Td(count_text(r.samples), style=number, className="runs"),
            html.Td(str(int(r.not_ok)), style=number, className="failed"),
            html.Td(f"{r.share_under:.1%}", style=number, className="share_under"),
            *([html.Td(seconds(r.p50_s), style=number, className="p50_s"),
               html.Td(seconds(r.p90_s), style=number, className="p90_s")] if waits else []),
        ])
        for r in site_rows.itertuples()
    ]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h, style={**cell, "borderBottom": "2px solid #999"}) for h in heads])),
         html.Tbody(body)],
        id=ids.SITES_TABLE, style={"borderCollapse": "collapse", "width": "100%", "margin": "0.5em 0"},
    )
