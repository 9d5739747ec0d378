"""The global filters in the URL: the runs page's order and the live switch survive a filter change."""

from __future__ import annotations

import datetime as dt

from dashboard.filters import Filters


def test_order_and_live_round_trip_through_the_query_string() -> None:
    filters = Filters.from_search("?window=28d&site=ward-7&order=newest&live=on")
    assert (filters.order, filters.live) == ("newest", "on")
    changed = filters.query_string(site="clinic")
    assert Filters.from_search(changed) == Filters(window="28d", site="clinic", order="newest", live="on")


def test_unknown_order_and_live_values_fall_back_to_the_defaults() -> None:
    filters = Filters.from_query({"order": "sideways", "live": "maybe"})
    assert (filters.order, filters.live) == (None, None)
    assert filters.query_string() == "?window=7d"


def test_a_rolling_window_starts_on_the_hour() -> None:
    now = dt.datetime(2026, 11, 27, 12, 52, 31, 5, tzinfo=dt.UTC)
    start, end = Filters(window="7d").bounds(now, "Europe/London")
    assert end == now
    assert start == dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
