"""Each site's health: last heard, spool backlog, clock offset, probe version; quiet sites first."""

from __future__ import annotations

import datetime as dt

import dash
import pandas as pd
from dash import html

from analysis.query import rows
from analysis.site_health import SiteHealth, site_health
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, current_store, definitions
from dashboard.figures import count_text
from dashboard.layout import explain, page

dash.register_page(__name__, path="/site-health", name="Site health", title="Wardwatch · Site health", order=7)


def layout(**_query: str) -> html.Div:
    context = current_context()
    intro = ("What the observatory last heard from each site's probe, and its newest measured run. A site that "
             "has gone quiet is said so here rather than missing from the figures.")
    return page("Site health", *body(context), intro=intro)


def _last_runs(context: DashboardContext) -> dict[str, dt.datetime]:
    """Each site's newest measured run, from the query layer (its pre-aggregates' newest bucket
    per site, then only that bucket's runs: no scan of the store)."""
    try:
        return rows.newest_measured(current_store(), definitions(context))
    except NoData:
        return {}


def body(context: DashboardContext) -> list[object]:
    """The sentences (quiet sites first), then the table."""
    sites = [(s.name, s.title) for s in context.sites]
    if not sites:
        return [explain("No sites are configured.")]
    health = site_health(context.data_dir, sites, context.now(), last_runs=_last_runs(context),
                         timezone=context.timezone)
    ordered = sorted(health, key=lambda h: not h.quiet)
    sentences = html.Ul([html.Li(h.sentence, className="quiet" if h.quiet else "reporting") for h in ordered],
                        className="site-health-findings")
    return [sentences, _table(health, context)]


def _table(health: list[SiteHealth], context: DashboardContext) -> html.Table:
    cell = {"padding": "0.25em 0.8em", "borderBottom": "1px solid #e5e5e5", "textAlign": "left"}
    number = {**cell, "textAlign": "right", "fontVariantNumeric": "tabular-nums"}

    def when(value: object) -> str:
        return "" if value is None else pd.Timestamp(value).tz_convert(context.timezone).strftime("%a %-d %b %H:%M:%S")

    def age(seconds: float | None) -> str:
        if seconds is None:
            return ""
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"

    heads = ["site", f"last heard ({context.timezone})", f"newest measured run ({context.timezone})",
             "runs in its spool", "oldest waiting",
             "dropped when full", "clock offset", "probe version"]
    rows = [html.Tr([
        html.Td(h.title, style=cell, className="site"),
        html.Td(when(h.last_heard), style=cell, className="last_heard"),
        html.Td(when(h.last_run), style=cell, className="last_run"),
        html.Td("" if h.spool_runs is None else count_text(h.spool_runs), style=number, className="spool_runs"),
        html.Td(age(h.spool_oldest_age_s), style=number, className="spool_age"),
        html.Td("" if h.spool_dropped_batches is None else count_text(h.spool_dropped_batches), style=number),
        html.Td("" if h.clock_offset_s is None else f"{h.clock_offset_s:+.2f} s", style=number, className="clock_offset"),
        html.Td(h.probe_version or "", style=cell, className="probe_version"),
    ]) for h in health]
    return html.Table([html.Thead(html.Tr([html.Th(h, style=cell) for h in heads])), html.Tbody(rows)],
                      className="site-health")
