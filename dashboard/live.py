"""Live mode: a page's figures re-rendered on a timer as new runs land, without reloading the page.

The switch is a filter (``live=on`` in the URL), so a live view can be shared as a link. Each page
wraps its figures with :func:`live_section` and registers one callback from the tick of its
interval to its body.
"""

from __future__ import annotations

from dash import dcc, html

from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.filters import Filters

__all__ = ["live_section"]


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
