"""Global filters (window, workflow, site, clinical period), kept in the URL so views can be shared.

Every page builds its filter bar with :func:`filter_bar`; one callback writes a changed control
back into the URL's query string, and Dash's page router renders the page again from it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from analysis import RunFilter
from dashboard import ids
from dashboard.context import DashboardContext

__all__ = ["Filters", "filter_bar"]

WINDOWS = {"1d": "last 24 hours", "7d": "last 7 days", "28d": "last 28 days"}
DEFAULT_WINDOW = "7d"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# Months a window may name: the store's timestamps are pandas nanoseconds, which end in April 2262.
FIRST_YEAR, LAST_YEAR = 1970, 2261
_FILTER_KEYS = ("window", "workflow", "site", "period", "trace", "order", "live")


def is_month(value: object) -> bool:
    """Whether ``value`` is a calendar month "YYYY-MM" a window can be (a real month, in range)."""
    match = _MONTH.match(value) if isinstance(value, str) else None
    return bool(match) and FIRST_YEAR <= int(match[1]) <= LAST_YEAR and 1 <= int(match[2]) <= 12


@dataclass(frozen=True)
class Filters:
    window: str = "7d"  # a key of WINDOWS, or a calendar month "YYYY-MM"
    workflow: str | None = None
    site: str | None = None
    period: str | None = None
    trace: str | None = None  # a run chosen on the runs page
    order: str | None = None  # the runs page's order: "newest", or None for slowest first
    live: str | None = None  # "on": the page refreshes its figures as new runs land
    # What was asked for and not understood, in words shown above the page (not part of the URL).
    notes: tuple[str, ...] = field(default=(), compare=False)
    # Whether the URL chose the window (a page may choose another default when it did not).
    window_given: bool = field(default=True, compare=False)

    @classmethod
    def from_search(cls, search: object, context: DashboardContext | None = None) -> Filters:
        """Filters from a URL's query string (``?window=...``); a key given twice counts as malformed."""
        pairs = parse_qsl(search.lstrip("?")) if isinstance(search, str) else []
        query: dict[str, object] = {}
        for key, value in pairs:
            query[key] = [*query[key], value] if isinstance(query.get(key), list) else (
                [query[key], value] if key in query else value)
        return cls.from_query(query, context)

    @classmethod
    def from_query(cls, query: Mapping[str, object], context: DashboardContext | None = None) -> Filters:
        """Filters from a page's query parameters (as Dash hands them: a repeated key is a list).

        A value that is malformed (a list, a month that does not exist or lies out of range), or
        names a workflow, site or clinical period the configuration does not know (checked when a
        ``context`` is given and configures any), falls back to the default, and ``notes`` says so.
        """
        notes: list[str] = []
        values: dict[str, str | None] = {}
        for key in _FILTER_KEYS:
            value = query.get(key)
            if value is None or value == "":
                values[key] = None
            elif not isinstance(value, str):
                shown = ", ".join(map(str, value)) if isinstance(value, list) else type(value).__name__
                notes.append(f"{key} was given more than once or not as text ({shown}): ignored.")
                values[key] = None
            else:
                values[key] = value
        window = values["window"] or DEFAULT_WINDOW
        if window not in WINDOWS and not is_month(window):
            notes.append(f"window {window!r} is neither {', '.join(WINDOWS)} nor a month YYYY-MM between "
                         f"{FIRST_YEAR} and {LAST_YEAR}: showing the {WINDOWS[DEFAULT_WINDOW]}.")
            window = DEFAULT_WINDOW
        if context is not None:
            known = {"workflow": [w.name for w in context.workflows], "site": [s.name for s in context.sites],
                     "period": [p.name for p in context.periods]}
            for key, names in known.items():
                if values[key] is not None and values[key] not in names:
                    shown = {"workflow": "all workflows", "site": "all sites", "period": "all hours"}[key]
                    notes.append(f"no {key} is called {values[key]!r} in the configuration: showing {shown}.")
                    values[key] = None
        return cls(
            window=window,
            workflow=values["workflow"],
            site=values["site"],
            period=values["period"],
            trace=values["trace"],
            order="newest" if values["order"] == "newest" else None,
            live="on" if values["live"] in ("on", "1", "true") else None,
            notes=tuple(notes),
            window_given=values["window"] is not None,
        )

    def query_string(self, **changes: str | None) -> str:
        """``?window=...&...`` for these filters with ``changes`` applied (None removes a key)."""
        updated = replace(self, **changes)
        pairs = {k: v for k in _FILTER_KEYS if (v := getattr(updated, k))}
        return "?" + urlencode(pairs) if pairs else ""

    def bounds(self, now: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
        """The window as [start, end) in UTC; a month is the calendar month in ``timezone``; a
        rolling window starts on the hour at or before its length ago and ends at the end of the
        quarter hour holding ``now``.

        Both edges of every window fall on the pre-aggregates' 15-minute grid, so no page reads spans
        at its edges. Ending on the quarter hour after ``now`` adds nothing a clinician has not
        already waited for: no run starts after now, except on a probe whose clock runs ahead,
        and those runs are the latest there are."""
        if is_month(self.window):
            year, month = int(self.window[:4]), int(self.window[5:])
            zone = ZoneInfo(timezone)
            start = dt.datetime(year, month, 1, tzinfo=zone)
            end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
            return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        days = {"1d": 1, "7d": 7, "28d": 28}[self.window]
        start = now - dt.timedelta(days=days)
        start -= dt.timedelta(minutes=start.minute, seconds=start.second, microseconds=start.microsecond)
        quarter_s = 900
        end = dt.datetime.fromtimestamp(math.ceil(now.timestamp() / quarter_s) * quarter_s, dt.UTC)
        return start.astimezone(dt.UTC), end

    def run_filter(self, now: dt.datetime, timezone: str) -> RunFilter:
        """The runs these filters select (the period filter is applied by the pages that use it)."""
        start, end = self.bounds(now, timezone)
        return RunFilter(
            start, end, (self.workflow,) if self.workflow else None, (self.site,) if self.site else None
        )

    def describe_window(self) -> str:
        return WINDOWS.get(self.window, f"calendar month {self.window}")


def recent_months(now: dt.datetime, count: int) -> list[str]:
    """The calendar months ``YYYY-MM`` of ``now`` and the ``count - 1`` before it, newest first."""
    index = now.year * 12 + now.month - 1
    return [f"{(index - i) // 12:04d}-{(index - i) % 12 + 1:02d}" for i in range(count)]


def filter_bar(filters: Filters, context: DashboardContext,
               *, show: tuple[str, ...] = ("window", "workflow", "site", "period", "live")) -> html.Div:
    """The controls for the filters a page uses (``live``: the live-mode switch); changing one
    updates the URL."""
    now = context.now()
    window_options = [{"label": label, "value": key} for key, label in WINDOWS.items()]
    window_options += [{"label": f"month {m}", "value": m} for m in recent_months(now, 3)]
    if filters.window not in {o["value"] for o in window_options}:
        window_options.append({"label": filters.describe_window(), "value": filters.window})
    controls = {
        "window": (window_options, filters.window, False),
        "workflow": ([{"label": w.title, "value": w.name} for w in context.workflows], filters.workflow, True),
        "site": ([{"label": s.title, "value": s.name} for s in context.sites], filters.site, True),
        "period": ([{"label": p.name, "value": p.name} for p in context.periods], filters.period, True),
    }
    placeholders = {"workflow": "all workflows", "site": "all sites", "period": "all hours"}
    live = []
    if "live" in show:
        live = [html.Label(
            [
                html.Span("live", style={"fontSize": "0.8em", "color": "#555"}),
                dcc.Checklist(
                    id={"type": ids.FILTER, "name": "live"},
                    options=[{"label": f" refresh every {context.refresh_interval_s:g} s", "value": "on"}],
                    value=["on"] if filters.live else [],
                ),
            ],
            style={"marginRight": "1em"},
        )]
    notes = [html.P(note, className="filter-note", style={"flexBasis": "100%", "margin": "0.3em 0 0", "color": "#8a4b00"})
             for note in filters.notes]
    return html.Div(
        [
            html.Label(
                [
                    html.Span(name, style={"fontSize": "0.8em", "color": "#555"}),
                    dcc.Dropdown(
                        id={"type": ids.FILTER, "name": name},
                        options=options,
                        value=value,
                        clearable=clearable,
                        placeholder=placeholders.get(name),
                        style={"minWidth": "14em"},
                    ),
                ],
                style={"marginRight": "1em"},
            )
            for name, (options, value, clearable) in controls.items()
            if name in show
        ] + live + notes,
        style={"display": "flex", "flexWrap": "wrap", "margin": "0.5em 0 1em"},
    )


def register_callbacks(app: Dash) -> None:
    """Give ``app`` the filter bar's callback.

    Registered on each app, not with ``dash.callback``: Dash hands callbacks registered that way at
    import to the first app made in a process only, and this module is imported once (the pages'
    callbacks are registered again with each app, as Dash imports the pages per app).
    """
    app.callback(
        Output(ids.URL, "search"),
        Input({"type": ids.FILTER, "name": ALL}, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )(_write_filters_to_url)


def _write_filters_to_url(_values: list[str | None], search: str | None) -> str:
    """A changed filter control becomes part of the URL (and so of any link to this view)."""
    if not ctx.triggered_id:
        return no_update
    current = Filters.from_search(search)
    name = ctx.triggered_id["name"]
    value = next(
        (item["value"] for item in ctx.inputs_list[0] if item["id"]["name"] == name),
        None,
    )
    if isinstance(value, list):  # the live checklist
        value = "on" if "on" in value else None
    # A page's controls are drawn anew on every navigation (choosing a run is one) and Dash then
    # reports their values as if changed: only a value the URL does not hold yet changes it, and
    # only a new selection (not the page's default window written out) lets go of the chosen run.
    held = getattr(current, name) if name != "window" or current.window_given else None
    if value == held:
        return no_update
    changes: dict[str, str | None] = {name: value}
    if name in ("workflow", "site", "window") and value != getattr(current, name):
        changes["trace"] = None  # a chosen run belongs to the old selection
    new = current.query_string(**changes)
    return new if new != (search or "") else no_update
