"""Error budgets, burn rates and OpenSLO budgeting methods against the published references."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.budget import (
    AlertWindow,
    Duration,
    alert_windows,
    alert_windows_from_sloth,
    budget_consumed,
    budget_minutes,
    burn_rate,
    burn_rate_alerts,
    burn_rate_threshold,
    calendar_month,
    error_budget,
    month_budget_minutes,
    occurrences,
    parse_duration,
    ratio_timeslices,
    slice_ratios,
    timeslices,
)

REFERENCE = Path("/work/shared/reference")
SLOTH_WINDOWS = REFERENCE / "sloth" / "internal" / "alert" / "windows"
OPENSLO = REFERENCE / "openslo" / "examples"
needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason="reference documents absent")


def test_budget_and_burn_rate() -> None:
    assert error_budget(0.999) == 0.001
    assert error_budget(0.99) == 0.01
    assert burn_rate(0.01, 0.999) == pytest.approx(10.0)
    assert burn_rate(0.001, 0.999) == pytest.approx(1.0)
    # Burning at 14.4 for one hour of a 30-day period spends 2% of the budget.
    assert budget_consumed(14.4, "1h", "30d") == pytest.approx(0.02)
    assert budget_consumed(1, dt.timedelta(days=30), "30d") == 1.0
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        error_budget(99.9)


def test_workbook_thresholds_for_30_days() -> None:
    assert [w.burn_rate for w in alert_windows("30d")] == [14.4, 6.0, 1.0]
    for w in alert_windows("30d"):
        assert w.long_window == 12 * w.short_window  # the short window is 1/12 of the long one
    assert [w.severity for w in alert_windows()] == ["page", "page", "ticket"]


def test_workbook_thresholds_for_28_days() -> None:
    rates = [w.burn_rate for w in alert_windows("28d")]
    assert rates[:2] == [13.44, 5.6]
    assert rates[2] == pytest.approx(0.1 * 28 / 3)  # 10% in 3 days: 0.933...
    assert burn_rate_threshold(2, "1h", "28d") == 13.44


@needs_reference
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("google-30d.yaml", [14.4, 6.0, 3.0, 1.0]),
        ("google-28d.yaml", [13.44, 5.6, 2.8, 28 / 30]),
    ],
)
def test_sloth_alert_window_tables(name: str, expected: list[float]) -> None:
    document = yaml.safe_load((SLOTH_WINDOWS / name).read_text())
    windows = alert_windows_from_sloth(document)
    assert [w.severity for w in windows] == ["page", "page", "ticket", "ticket"]
    assert [w.burn_rate for w in windows] == pytest.approx(expected, rel=1e-12)
    assert windows[0].burn_rate == expected[0]  # exactly, not approximately
    for w in windows:
        assert w.long_window == 12 * w.short_window
    ours = {(w.budget_percent, w.long_window, w.short_window) for w in
            alert_windows(windows[0].period)}
    assert ours <= {(w.budget_percent, w.long_window, w.short_window) for w in windows}


def test_sloth_document_must_be_alert_windows() -> None:
    with pytest.raises(ValueError, match="AlertWindows"):
        alert_windows_from_sloth({"kind": "SLO"})


def test_multi_window_alert_needs_both_windows() -> None:
    at = pd.Timestamp("2026-10-05T09:00:00Z")
    times = pd.date_range(end=at, periods=60, freq="1min")  # one run a minute for the last hour
    recent_bad = [True] * 59 + [False]  # the last run failed: 1/60 in 1 h, 1/5 in 5 min
    alerts = burn_rate_alerts(times, recent_bad, 0.999, at)
    page = alerts.iloc[0]
    assert page["long_burn_rate"] == pytest.approx(1 / 60 / 0.001)
    assert page["short_burn_rate"] == pytest.approx(1 / 5 / 0.001)
    assert page["long_samples"] == 60 and page["short_samples"] == 5
    assert bool(page["firing"]) is True
    old_bad = [True] * 50 + [False] + [True] * 9  # failed 9 minutes ago: short window is clean
    alerts = burn_rate_alerts(times, old_bad, 0.999, at)
    assert alerts.iloc[0]["long_burn_rate"] > 14.4
    assert alerts.iloc[0]["short_burn_rate"] == 0.0
    # The fast page stops; the 6 h / 30 min page and the ticket still see the failure.
    assert list(alerts["firing"]) == [False, True, True]
    assert list(alerts.columns) == [
        "severity", "budget_percent", "long_window", "short_window", "threshold",
        "long_burn_rate", "short_burn_rate", "long_samples", "short_samples", "firing",
    ]


def test_alert_window_is_a_value() -> None:
    w = AlertWindow("page", 2, dt.timedelta(hours=1), dt.timedelta(minutes=5),
                    dt.timedelta(days=30))
    assert w.burn_rate == 14.4


# -- Durations and calendar months ---------------------------------------------------------------


def test_openslo_durations() -> None:
    assert parse_duration("5m").to_timedelta() == dt.timedelta(minutes=5)
    assert parse_duration("28d").to_timedelta() == dt.timedelta(days=28)
    assert parse_duration("2w").to_timedelta() == dt.timedelta(weeks=2)
    month = parse_duration("1M")
    assert month == Duration(1, "M") and month.is_calendar and month.months == 1
    assert parse_duration("1Q").months == 3 and parse_duration("1Y").months == 12
    with pytest.raises(ValueError, match="no fixed length"):
        month.to_timedelta()
    for bad in ("", "5", "m5", "0d", "1.5h", "5min"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("year", "month", "tz", "minutes"),
    [
        (2026, 12, "UTC", 44.64),  # 31 days at 99.9%
        (2026, 11, "UTC", 43.2),  # 30 days
        (2026, 2, "UTC", 40.32),  # 28 days
        (2026, 10, "Europe/London", 44.7),  # 31 days and 1 hour: the clocks go back on the 25th
        (2026, 3, "Europe/London", 44.58),  # 31 days less 1 hour: forward on 29 March
        (2026, 11, "Europe/London", 43.2),
    ],
)
def test_calendar_month_budget_minutes(year, month, tz, minutes) -> None:
    assert month_budget_minutes(0.999, year, month, tz) == pytest.approx(minutes, abs=1e-9)


def test_calendar_month_bounds_in_a_time_zone() -> None:
    start, end = calendar_month(2026, 10, "Europe/London")
    assert start == dt.datetime(2026, 9, 30, 23, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 11, 1, 0, tzinfo=dt.UTC)
    assert end - start == dt.timedelta(days=31, hours=1)
    start, end = calendar_month(2026, 12, "America/New_York")
    assert (start.hour, end.year, end.month, end.hour) == (5, 2027, 1, 5)
    assert budget_minutes(0.999, start, end) == pytest.approx(44.64)


# -- OpenSLO budgeting methods on hand-computed slices -------------------------------------------

START = pd.Timestamp("2026-10-05T10:00:00Z")
END = START + pd.Timedelta(minutes=5)


def _events() -> tuple[list[pd.Timestamp], list[bool]]:
    """Five one-minute slices: 10/10 good, 9/10, 2/4, empty, 2/2 (plus one event outside)."""
    plan = [(0, 10, 10), (1, 9, 10), (2, 2, 4), (4, 2, 2)]
    times, good = [], []
    for minute, n_good, n in plan:
        for i in range(n):
            times.append(START + pd.Timedelta(minutes=minute, seconds=i))
            good.append(i < n_good)
    times.append(END)  # the window is [start, end): not counted
    good.append(False)
    return times, good


def test_slice_ratios() -> None:
    times, good = _events()
    frame = slice_ratios(times, good, "1m", START, END)
    assert list(frame["total"]) == [10, 10, 4, 0, 10 - 8]
    assert list(frame["good"]) == [10, 9, 2, 0, 2]
    assert frame["ratio"].tolist()[:3] == [1.0, 0.9, 0.5] and math.isnan(frame["ratio"][3])
    assert frame["slice_start"][1] == START + pd.Timedelta(minutes=1)


def test_occurrences() -> None:
    times, good = _events()
    inside = good[:-1]
    result = occurrences(inside, 0.8)
    assert result.value == pytest.approx(23 / 26)
    assert result.met is True and result.samples == 26
    assert result.budget_remaining == pytest.approx(1 - (3 / 26) / 0.2)


def test_timeslices() -> None:
    times, good = _events()
    result = timeslices(times, good, 0.8, 0.9, "1m", START, END)
    assert (result.good_slices, result.slices, result.value) == (3, 4, 0.75)
    assert result.met is False
    assert result.budget_remaining == pytest.approx(1 - 0.25 / 0.2)  # overspent: -0.25
    assert result.samples == 26
    assert timeslices(times, good, 0.8, 0.9, "1m", START, END, empty_slices="bad").value == 0.6
    assert timeslices(times, good, 0.8, 0.9, "1m", START, END, empty_slices="good").value == 0.8


def test_ratio_timeslices() -> None:
    times, good = _events()
    result = ratio_timeslices(times, good, 0.8, "1m", START, END)
    assert result.value == pytest.approx((1.0 + 0.9 + 0.5 + 1.0) / 4)
    assert result.met is True and result.slices == 4
    # It differs from Occurrences on the same events: each slice weighs the same.
    assert result.value != pytest.approx(23 / 26)


def test_no_data_is_not_judged() -> None:
    result = occurrences([], 0.99)
    assert result.met is None and math.isnan(result.value)
    empty = timeslices([], [], 0.99, 0.9, "1m", START, END)
    assert empty.met is None and empty.slices == 0


@needs_reference
def test_openslo_examples_drive_the_methods() -> None:
    times, good = _events()
    seen = set()
    for path in sorted((OPENSLO / "budgeting-method").glob("*.yaml")):
        slo = yaml.safe_load(path.read_text())["spec"]
        method = slo["budgetingMethod"]
        seen.add(method)
        for objective in slo["objectives"]:
            target = objective["target"]
            if method == "Occurrences":
                result = occurrences(good[:-1], target)
                assert result.value == pytest.approx(23 / 26)
            else:
                window = parse_duration(objective["timeSliceWindow"])
                assert window.to_timedelta() == dt.timedelta(minutes=1)  # m is minutes
                if method == "Timeslices":
                    result = timeslices(times, good, target, objective["timeSliceTarget"],
                                        window.to_timedelta(), START, END)
                    assert result.value == 0.5  # only the 10/10 and 2/2 slices reach 0.99
                else:
                    result = ratio_timeslices(times, good, target, window.to_timedelta(),
                                              START, END)
                    assert result.value == pytest.approx(0.85)
            assert result.method == method
            assert result.met is False
    assert seen == {"Occurrences", "Timeslices", "RatioTimeslices"}
