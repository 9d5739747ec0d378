"""Overview: what is wrong, where and since when, in plain words first; then the SLA's view beside the
clinicians', and each workflow at each site rated by its worst part of the day."""

from __future__ import annotations

import time

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from analysis.findings import Story
from analysis.query.figures import (
    FRUSTRATED_SHARE,
    HOUR_MIN_FRUSTRATED,
    HOUR_MIN_RUNS,
    board_scopes,
    simulated_share,
)
from dashboard import figures, ids
from dashboard.figures import count_text
from dashboard.board import MIN_RATED_RUNS, rating_words, scope_words, worst_scopes
from dashboard.context import DashboardContext, current_context
from dashboard.data import NoData, question, simulated_text
from dashboard.filters import Filters, filter_bar
from dashboard.findings import DEFAULT_SHARE_TARGET, FindingsView, findings_job, picture_cells
from dashboard.jobs import Job, jobs
from dashboard.layout import banner, explain, page
from dashboard.live import live_section, refresh_on_tick

dash.register_page(__name__, path="/", name="Overview", title="Wardwatch · Overview", order=0)


_PAGE = "overview"


def layout(**query: str) -> html.Div:
    context = current_context()
    filters = Filters.from_query(query, context)
    bar = filter_bar(filters, context, show=("window", "workflow", "site", "live"))
    intro = (
        f"What users waited for in the {filters.describe_window()}, beside what the SLAs say. A run is good when "
        "it was ok and its waiting time (the sum of its steps) was within the workflow's threshold T."
    )
    job = findings_job(jobs(), context, filters)
    return page(
        "Overview",
        bar,
        simulated_banner(filters, context),
        html.H3(f"Findings for the {filters.describe_window()}"),
        dcc.Store(id=ids.FINDINGS_WINDOW, data=filters.query_string(live=None, trace=None, order=None)),
        dcc.Interval(id=ids.FINDINGS_POLL, interval=1000, disabled=job.done.is_set()),
        html.Div(findings_section(job, filters, context), id=ids.FINDINGS),
        *live_section(_PAGE, filters, context, body(filters, context)),
        intro=intro,
    )


# Live mode: the board again, with the runs that landed since.
refresh = refresh_on_tick(_PAGE, lambda filters, context: body(filters, context))


def simulated_banner(filters: Filters, context: DashboardContext) -> object:
    """Above everything: how much of the window was simulated (it must never pass as measured)."""
    try:
        answer = question(filters.run_filter(context.now(), context.timezone))
        return banner(simulated_text(*simulated_share(answer)))
    except NoData:
        return None


def body(filters: Filters, context: DashboardContext) -> list[object]:
    """Each workflow at each site, rated by its worst part of the day, worst first."""
    try:
        answer = question(filters.run_filter(context.now(), context.timezone))
        scopes = board_scopes(answer, calendar=context.calendar())
    except NoData as exc:
        return [explain(str(exc))]
    if scopes.empty:
        return [explain("No runs in this window: widen it, or start a probe.")]
    return [
        html.H3("Each workflow at each site, worst first"),
        board_table(scopes, context, filters),
        html.P(
            f"A row is rated by its lowest Apdex among all hours, each clinical period at the site, and the hours "
            f"of the day (site-local, {HOUR_MIN_RUNS} runs or more) in which at least {FRUSTRATED_SHARE:.0%} of runs "
            f"(and {HOUR_MIN_FRUSTRATED} or more) were frustrated (over 4T, or failed). Where even that reads Good while one run in ten somewhere waits "
            "four times T or more, the row is flagged instead. "
            f"A part of the day with fewer than {MIN_RATED_RUNS} runs is not rated (one run would decide it); "
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
        rating = rating_words(row, workflow.threshold_s)
        values = [
            (dcc.Link(workflow.title, href=href, className="board-link"), cell, "workflow"),
            (context.site_title(row.site), cell, "site"),
            (f"{workflow.threshold_s:g} s", number, "threshold"),
            (f"{pooled['share_under']:.0%}", number, "share_under"),
            (str(pooled["apdex"]), number, "apdex"),
            ("" if worst["kind"] == "all" else where.removeprefix("at ").removeprefix("during "), cell, "worst"),
            ("" if worst["kind"] == "all" else f"{worst['share_under']:.0%} of {count_text(worst['samples'])}", number,
             "worst_share_under"),
            ("" if worst["kind"] == "all" else f"{worst['frustrated_share']:.0%}", number, "worst_frustrated"),
            ("" if worst["kind"] == "all" else str(worst["apdex"]), number, "worst_apdex"),
            (rating, {**cell, "color": colours.get(row.rating, "#333"), "fontWeight": "600"},
             "rating"),
            (count_text(pooled["samples"]), number, "runs"),
            (count_text(pooled["not_ok"]), number, "not_ok"),
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
    Input(ids.FINDINGS_POLL, "n_intervals"),
    State(ids.FINDINGS_WINDOW, "data"),
    prevent_initial_call=True,
)
def show_findings(_ticks: int, search: object) -> tuple[object, bool]:
    """Each second while the findings are looked for: "finding…", then the findings."""
    context = current_context()
    filters = Filters.from_search(search, context)
    job = findings_job(jobs(), context, filters)
    return findings_section(job, filters, context), job.done.is_set()


_KINDS = {
    "watermelon": "SLA met, users waiting",
    "unwatched_wait": "Users waiting, and no objective watches it",
    "reverse": "SLA breached, nobody waiting",
    "event": "Outage or failing runs",
    "change": "After a change",
    "server_time": "The wait grew: the EPR's servers or the rest",
    "quiet_site": "A site has gone quiet",
}
_VERDICT_COLOURS = {"met": "#1a7f37", "breached": "#cf222e"}


def findings_section(job: Job, filters: Filters, context: DashboardContext) -> list[object]:
    """The findings as headlines with their figures and lenses, then the SLA's view beside the
    clinicians'; "finding…" while the job runs."""
    if not job.done.is_set():
        earlier = job.previous
        if earlier is not None and earlier.finished is not None and isinstance(earlier.result, FindingsView):
            # The findings of a few minutes ago at once, rather than the page waiting again each
            # quarter hour while the same month is read anew.
            ago_min = max(1, round((time.monotonic() - earlier.finished) / 60))
            return [html.P(f"These findings were computed {ago_min} min ago; newer ones are being computed "
                           f"({job.elapsed_s():.0f} s so far) and will replace them by themselves.",
                           className="building stale", style={"color": "#555", "fontSize": "0.9em"}),
                    *_view_section(earlier.result, filters, context)]
        return [html.P(f"Finding… reading every run and request of the {filters.describe_window()} "
                       f"({job.elapsed_s():.0f} s so far); this part fills in by itself.",
                       className="building", style={"color": "#555"})]
    if job.error is not None:
        return [explain(f"The findings could not be computed: {job.error}")]
    if isinstance(job.result, str):  # why there are none
        return [explain(job.result)]
    return _view_section(job.result, filters, context)


def _view_section(view: FindingsView, filters: Filters, context: DashboardContext) -> list[object]:
    """A findings job's result as the section shows it."""
    stories = [s for s in view.stories
               if (filters.workflow is None or s.workflow in (None, filters.workflow))
               and (filters.site is None or not s.sites or filters.site in s.sites)]
    if not stories:
        shown = picture(view, filters, context)
        if not shown:  # no runs at all: say so rather than "no findings"
            return [explain(f"No runs in the {filters.describe_window()}: not enough data to find anything.")]
        return [explain(f"No findings in the {filters.describe_window()}."), *shown]
    items = [story_item(story, filters, context) for story in stories]
    return [html.P(summary_sentence(stories, filters), className="stories-summary", style={"fontSize": "1.05em"}),
            html.Ol(items, id=ids.STORIES, style={"paddingLeft": "1.2em"}), *picture(view, filters, context)]


def summary_sentence(stories: list[Story], filters: Filters) -> str:
    """"6 findings in the last 7 days, most clinician time lost first: 3 waits no objective watches, ..."."""
    words = {"watermelon": ("SLA met while users wait", "SLAs met while users wait"),
             "unwatched_wait": ("wait no objective watches", "waits no objective watches"),
             "reverse": ("SLA breached while nobody waits", "SLAs breached while nobody waits"),
             "event": ("outage or failure", "outages or failures"),
             "change": ("change that slowed a task", "changes that slowed a task"),
             "server_time": ("wait that grew, told against the EPR's servers",
                             "waits that grew, told against the EPR's servers"),
             "quiet_site": ("site gone quiet", "sites gone quiet")}
    counts: dict[str, int] = {}
    for story in stories:
        counts[story.kind] = counts.get(story.kind, 0) + 1
    parts = [f"{count_text(n)} {words.get(kind, (kind, kind))[n != 1]}" for kind, n in counts.items()]
    total = len(stories)
    return (f"{count_text(total)} finding{'s' if total != 1 else ''} in the {filters.describe_window()}, the most clinician "
            f"time lost first: {', '.join(parts)}.")


_SHOWN_FIGURES = 4  # a finding's first figures shown; the rest are folded


def _story_href(story: Story, filters: Filters) -> str:
    """Where a finding is seen best: a recurring wait on the time-of-day grid, a site's link on the
    Sites page, a site gone quiet on the Site health page, anything else on its workflow's page."""
    workflows = story.detail.get("workflows")
    workflow = story.workflow or (workflows[0] if isinstance(workflows, list) and workflows else None)
    site = story.sites[0] if len(story.sites) == 1 else None
    common = {"trace": None, "order": None, "live": None}
    if story.kind == "quiet_site":
        return "/site-health" + filters.query_string(workflow=None, site=None, period=None, **common)
    if story.kind == "unwatched_wait" and "gaps" in story.detail:
        return "/sites" + filters.query_string(workflow=None, site=None, period=None, **common)
    if story.kind == "unwatched_wait" and workflow:
        return "/time-of-day" + filters.query_string(workflow=workflow, site=site, period=None, **common)
    return "/workflow" + filters.query_string(workflow=workflow, site=site, period=story.period, **common)


def story_item(story: Story, filters: Filters, context: DashboardContext) -> html.Li:
    """One finding: its kind, the headline, since when, its figures, where the time goes, and
    (folded) the lenses and the objective a trust might add."""
    head = [html.Span(_KINDS.get(story.kind, story.kind), className="story-kind",
                      style={"fontSize": "0.8em", "textTransform": "uppercase", "letterSpacing": "0.04em",
                             "color": "#8a4b00", "marginRight": "0.6em"}),
            html.Span(story.since_text, className="story-since", style={"color": "#555", "fontSize": "0.9em"})]
    headline = dcc.Link(story.headline, href=_story_href(story, filters), className="story-headline",
                        style={"color": "#0b3d91", "textDecoration": "none"})

    def table(shown) -> html.Table:
        return html.Table(html.Tbody([
            html.Tr([html.Td(f.label, style={"paddingRight": "1em"}),
                     html.Td(f.value, style={"fontWeight": "600", "textAlign": "right", "paddingRight": "0.6em"}),
                     html.Td(f.threshold or "", style={"color": "#555", "paddingRight": "0.6em"}),
                     html.Td("" if f.n is None else f"n = {count_text(f.n)}", style={"color": "#555", "paddingRight": "0.6em"}),
                     html.Td(f.verdict or "", style={"color": _VERDICT_COLOURS.get(f.verdict or "", "#555"),
                                                     "fontWeight": "600"})])
            for f in shown]), className="story-figures", style={"fontSize": "0.9em", "margin": "0.3em 0"})

    figures = table(story.figures[:_SHOWN_FIGURES])
    folded = []
    if len(story.figures) > _SHOWN_FIGURES:
        more = len(story.figures) - _SHOWN_FIGURES
        folded.append(html.Details([html.Summary(f"{more} more figure{'s' if more != 1 else ''}"),
                                    table(story.figures[_SHOWN_FIGURES:])], className="story-more-figures"))
    if story.lenses:
        folded.append(html.Details([
            html.Summary("Why the SLA could not see it"),
            html.Ul([html.Li([html.Strong(f"{lens.title}"), f" (explains “{lens.sla}”): " if lens.sla else ": ",
                              lens.text]) for lens in story.lenses], style={"fontSize": "0.9em", "color": "#333"}),
        ], className="story-lenses"))
    if story.suggestion_yaml:
        folded.append(html.Details([html.Summary("An objective you could add"),
                                    html.Pre(story.suggestion_yaml, style={"background": "#f6f8fa", "padding": "0.5em", "whiteSpace": "pre-wrap", "overflowWrap": "anywhere"})],
                                   className="story-suggestion"))
    blame = [html.Div(f"Where the time goes: {story.blame}.", className="story-blame",
                      style={"fontSize": "0.9em"})] if story.blame else []
    return html.Li([html.Div(head), html.Div(headline, style={"fontSize": "1.1em", "fontWeight": "600"}),
                    *blame, figures, *folded],
                   className=f"story story-{story.kind}", style={"marginBottom": "1em"})


def picture(view: FindingsView, filters: Filters, context: DashboardContext) -> list[object]:
    """The SLA's view beside the clinicians', per workflow at each site (from the pre-aggregates: quick)."""
    try:
        answer = question(filters.run_filter(context.now(), context.timezone))
        cells = picture_cells(view.slas, board_scopes(answer, calendar=context.calendar()), context, view.objectives)
    except NoData as exc:
        return [explain(str(exc))]
    if cells.empty:
        return []
    return [
        html.H3("The SLA's view beside the clinicians'"),
        dcc.Graph(id=ids.SLA_BESIDE_EXPERIENCE, figure=figures.sla_beside_experience_figure(cells),
                  config={"displayModeBar": False}),
        html.P(f"Green: the figure meets its target; red: it does not. An SLA is judged by its own formula and "
               f"target. The clinicians' share is of runs within the experience objective's threshold, against its "
               f"target, where an objective judges that part of the day at that site; elsewhere within the "
               f"workflow's T, against {DEFAULT_SHARE_TARGET:.0%}. Findings computed in {view.elapsed_s:.1f} s.",
               style={"fontSize": "0.85em", "color": "#555"}),
    ]
