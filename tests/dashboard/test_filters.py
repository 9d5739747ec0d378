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


def test_a_rolling_window_starts_on_the_hour_and_ends_on_the_quarter_hour_after_now() -> None:
    now = dt.datetime(2026, 11, 27, 12, 52, 31, 5, tzinfo=dt.UTC)
    start, end = Filters(window="7d").bounds(now, "Europe/London")
    assert end == dt.datetime(2026, 11, 27, 13, 0, tzinfo=dt.UTC)
    assert start == dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def test_a_rolling_window_ending_on_a_quarter_hour_ends_there() -> None:
    now = dt.datetime(2026, 11, 27, 12, 45, tzinfo=dt.UTC)
    assert Filters(window="1d").bounds(now, "UTC") == (dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC), now)


def test_every_window_lies_on_the_rollup_grid() -> None:
    """So no page needs an exact read of the spans at a window's edges."""
    now = dt.datetime(2026, 3, 29, 1, 7, 31, tzinfo=dt.UTC)  # the night the clocks go forward in London
    for window in ("1d", "7d", "28d", "2026-03", "2026-10"):
        for zone in ("Europe/London", "Asia/Kolkata", "Asia/Kathmandu"):
            for edge in Filters(window=window).bounds(now, zone):
                assert edge.timestamp() % 900 == 0, (window, zone, edge)


def test_the_month_menu_offers_each_of_the_last_three_calendar_months() -> None:
    """From 1 December, stepping back 31 days a month skipped November (30 days) for October."""
    from dashboard.filters import recent_months

    assert recent_months(dt.datetime(2026, 12, 8, tzinfo=dt.UTC), 3) == ["2026-12", "2026-11", "2026-10"]
    assert recent_months(dt.datetime(2027, 3, 31, tzinfo=dt.UTC), 4) == ["2027-03", "2027-02", "2027-01", "2026-12"]
