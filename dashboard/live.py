"""Live mode: a page's figures re-rendered on a timer as new runs land, without reloading the page.

The switch is a filter (``live=on`` in the URL), so a live view can be shared as a link. Each page
wraps its figures with :func:`live_section` and, when its module is run, registers the callback
from the tick of its interval to its body with :func:`refresh_on_tick`.
"""

from __future__ import annotations

from collections.abc import Callable

from dash import Input, Output, State, callback, dcc, html

from dashboard import ids
from dashboard.context import DashboardContext, current_context
from dashboard.filters import Filters

__all__ = ["live_section", "refresh_on_tick"]

Body = Callable[[Filters, DashboardContext], list[object]]


def live_section(page: str, filters: Filters, context: DashboardContext, children: object) -> list[object]:
    """An interval (ticking only in live mode) and the body it refreshes.

    Args:
        page: the page's name in the pattern-matching ids.
        filters: the page's filters (``filters.live`` turns the interval on).
        context: the dashboard's context (its ``refresh_interval_s`` is the period).
        children: the body's first rendering.
    """
    return [
        dcc.Interval(id={"type": ids.LIVE_TICK, "page": page}, interval=int(context.refresh_interval_s * 1000),
                     disabled=not filters.live),
        html.Div(children, id={"type": ids.LIVE_BODY, "page": page}),
    ]


def refresh_on_tick(page: str, body: Body) -> Callable[[int | None, str | None], list[object]]:
    """Register the callback that re-renders ``page``'s body from the URL's filters at each tick;
    returns it (as Dash wraps it).

    Call it at the top level of a page module (Dash runs page modules for each app it makes).
    """

    def refresh(_n: int | None, search: str | None) -> list[object]:
        context = current_context()
        return body(Filters.from_search(search, context), context)

    return callback(
        Output({"type": ids.LIVE_BODY, "page": page}, "children"),
        Input({"type": ids.LIVE_TICK, "page": page}, "n_intervals"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )(refresh)
