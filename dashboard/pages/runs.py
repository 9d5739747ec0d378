"""Runs and traces: runs slowest (or newest) first, each run's steps, and one run's waterfall."""

from __future__ import annotations

import dash
import pandas as pd
from dash import dcc, html

from analysis.query import figures as q
from analysis.query import rows
from analysis.query.slices import Slice
from analysis.waterfall import Waterfall, run_waterfall
from dashboard import figures, ids
from analysis import StoreError
from dashboard.figures import count_text
from dashboard.context import DashboardContext, current_context
from dashboard.data import (
    CHART_RUNS,
    NoData,
    current_store,
    definitions,
    question,
    simulated_text,
)
from dashboard.filters import Filters, filter_bar
from dashboard.layout import banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/runs", name="Runs", title="Wardwatch · Runs", order=5)

_HEADS = ("start", "workflow", "site", "status", "error", "waiting (s)", "wall (s)")


_PAGE = "runs"


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query, context)
    bar = filter_bar(filters, context, show=("window", "workflow", "site", "live"))
    order = filters.order or "slowest"
    intro = (
        f"Runs in the {filters.describe_window()}, {order} first (up to {count_text(context.recent_runs)}). Waiting time is "
        "the sum of a run's steps; wall time includes think time. Choose a run to see its waterfall."
    )
    return page("Runs", bar, *live_section(_PAGE, filters, context, body(filters, context)), intro=intro)


# Live mode: the list again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(filters, context))


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """The runs listed, the chosen run's waterfall, the step chart and the missed slots."""
    order = filters.order or "slowest"
    runs = filters.run_filter(context.now(), context.timezone)
    try:
        store = current_store()
        listed = rows.slowest(store, runs, limit=context.recent_runs, newest_first=order == "newest",
                              defs=definitions(context))
        chart_steps = rows.chart_steps(store, listed.head(CHART_RUNS), defs=definitions(context))
        waterfall = _waterfall(store, listed, filters.trace) if filters.trace else None
        missed = rows.missed_slots(store, runs, defs=definitions(context))
        note = simulated_text(*q.simulated_share(question(runs)))
    except NoData as exc:
        return [explain(str(exc))]
    if listed.empty:
        return [explain(f"No runs in the {filters.describe_window()} yet: start a probe (wardwatch probe -c FILE).")]
    other = "newest" if order == "slowest" else "slowest"
    return [
        banner(note),
        dcc.Link(f"show {other} first", href=filters.query_string(order="newest" if other == "newest" else None),
                 id="runs-order"),
        html.P(f"{count_text(len(listed))} run{'' if len(listed) == 1 else 's'} listed; {count_text((listed['status'] != 'ok').sum())} not ok; "
               f"{count_text(len(missed))} missed slots in this window.", id=ids.RUNS_SUMMARY),
        dcc.Graph(id=ids.WATERFALL, figure=figures.waterfall_figure(
            waterfall.spans, waterfall.marks, run_title=_run_title(listed, filters.trace, context),
            workflow_title=lambda name: context.workflow(name).title))
        if waterfall is not None else None,
        _runs_table(listed, filters, context),
        dcc.Graph(id=ids.STEP_CHART,
                  figure=figures.step_duration_figure(chart_steps, timezone=context.timezone,
                                                           site_title=context.site_title,
                                                           workflow_title=lambda name: context.workflow(name).title)),
        _missed_table(missed, context),
    ]


# A server span is dated by the EPR's clock, which may not agree with the probe's to the second.
_SERVER_CLOCK_SLACK = pd.Timedelta(hours=1)


def _waterfall(store, listed: pd.DataFrame, trace: str) -> Waterfall:
    """The chosen run's spans, read only from the hours around it (and only the segments that
    hold them) when it is listed, else from the whole store (a run shared as a link from another
    window)."""
    chosen = listed[listed["trace_id"] == trace]
    if not chosen.empty:
        run = chosen.iloc[0]
        wall = pd.Timedelta(seconds=float(run["wall_s"])) if pd.notna(run["wall_s"]) else pd.Timedelta(0)
        between = (run["start"] - _SERVER_CLOCK_SLACK, run["start"] + wall + _SERVER_CLOCK_SLACK)
        try:
            return run_waterfall(Slice(store.path, [between]), trace, between=between)
        except StoreError:  # a segment was compacted away meanwhile
            return run_waterfall(store, trace, between=between)
    return run_waterfall(store, trace)


def _run_title(listed: pd.DataFrame, trace: str, context: DashboardContext) -> str | None:
    """'Ward handover at Ward 7, Mon 07 Dec 14:00:07': the chosen run in words, when it is listed."""
    chosen = listed[listed["trace_id"] == trace]
    if chosen.empty:
        return None
    run = chosen.iloc[0]
    start = pd.Timestamp(run["start"]).tz_convert(context.timezone)
    return f"{context.workflow(run['workflow']).title} at {context.site_title(run['site'])}, {start:%a %d %b %H:%M:%S}"


def _missed_table(missed: pd.DataFrame, context: DashboardContext) -> html.Div:
    if missed.empty:
        return html.Div(id=ids.MISSED_SLOTS)
    recent = missed.sort_values("slot", ascending=False).head(20)
    items = [
        html.Li(f"{pd.Timestamp(r.slot).tz_convert(context.timezone):%Y-%m-%d %H:%M} "
                f"{context.workflow(r.workflow).title} at {context.site_title(r.site)}: {r.reason}")
        for r in recent.itertuples()
    ]
    return html.Div([html.H3("Missed slots (gaps in coverage)"), html.Ul(items)], id=ids.MISSED_SLOTS)


def _runs_table(listed: pd.DataFrame, filters: Filters, context: DashboardContext) -> html.Table:
    """The runs as a plain table; a run's start links to its waterfall (``?trace=``, shareable)."""
    cell = {"padding": "0.2em 0.7em", "borderBottom": "1px solid #e5e5e5", "textAlign": "left"}
    number = {**cell, "textAlign": "right", "fontVariantNumeric": "tabular-nums"}
    starts = listed["start"].dt.tz_convert(context.timezone).dt.strftime("%Y-%m-%d %H:%M:%S")

    def seconds(value: object) -> str:
        return "" if pd.isna(value) else f"{float(value):,.2f}"

    rows = []
    for run, start in zip(listed.itertuples(), starts, strict=True):
        failed = run.status != "ok"
        rows.append(html.Tr([
            html.Td(dcc.Link(start, href=filters.query_string(trace=run.trace_id), className="run-link"), style=cell),
            html.Td(context.workflow(run.workflow).title, title=run.workflow, style=cell),
            html.Td(context.site_title(run.site), title=run.site, style=cell), html.Td(run.status, style=cell),
            html.Td("" if pd.isna(run.error_type) else run.error_type, style=cell),
            html.Td(seconds(run.waiting_s), style=number), html.Td(seconds(run.wall_s), style=number),
        ], className="run-row", style={"backgroundColor": "#fde8e8"} if failed else None))
    return html.Div(html.Table(
        [html.Thead(html.Tr([html.Th(f"start ({context.timezone})" if h == "start" else h,
                                     style={**cell, "borderBottom": "2px solid #999", "position": "sticky",
                                            "top": 0, "background": "white"}) for h in _HEADS])),
         html.Tbody(rows)],
        id=ids.RUNS_TABLE, style={"borderCollapse": "collapse", "width": "100%", "fontSize": "0.9em"},
    ), style={"maxHeight": "420px", "overflowY": "auto", "margin": "0.5em 0"})
