"""Experience objectives on whole runs, per site x period x window, hand-computed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from analysis import open_store
from analysis.budget import budget_from_ratios
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, PeriodConfig
from analysis.objectives import ALL_HOURS, evaluate_objective

UTC = dt.UTC
START, END = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 2, tzinfo=UTC)
CALENDAR = ClinicalCalendar(
    [PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30))],
    {"ward-7": "Europe/London", "community": "Europe/London"},
)


def at(hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 10, 1, hour, minute, tzinfo=UTC)


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """Thursday 1 October 2026 (BST). Ward rounds are 07:00-09:30Z.

    ward-7, ward rounds: window 07:00Z has runs of 1, 2, 4 s; window 07:15Z has 1, 1, 1, 1 s.
    community, ward rounds: window 07:00Z has 4, 4 s and a failed 1 s run; 07:30Z has 2, 2 s.
    ward-7, 12:00Z (outside): one 10 s run.
    """
    rows = []
    for minute, seconds in [(1, 1), (2, 2), (3, 4), (16, 1), (17, 1), (18, 1), (19, 1)]:
        rows += make_rows(at(7, minute), "open", "ward-7", [("a", seconds / 2), ("b", seconds / 2)])
    for minute, seconds in [(1, 4), (2, 4), (31, 2), (32, 2)]:
        rows += make_rows(at(7, minute), "open", "community", [("a", seconds / 2), ("b", seconds / 2)])
    rows += make_rows(at(7, 3), "open", "community", [("a", 1.0, 503)], status="failed")
    rows += make_rows(at(12, 0), "open", "ward-7", [("a", 5.0), ("b", 5.0)])
    return rows_store(rows)


def objective(**kwargs) -> ObjectiveConfig:
    base = {"name": "open in 3 s", "workflow": "open", "threshold_s": 3, "target": 0.75,
            "periods": ["ward rounds"]}
    return ObjectiveConfig(**{**base, **kwargs})


def test_occurrences_per_scope_and_overall(store_path: Path) -> None:
    with open_store(store_path) as store:
        r = evaluate_objective(store, objective(), CALENDAR, START, END)
    scopes = r.scopes.set_index("site")
    # ward-7: 6 of 7 good; community: 2 of 5 good (two 4 s runs, one failure)
    assert scopes.loc["ward-7", "runs"] == 7 and scopes.loc["ward-7", "good"] == 6
    assert bool(scopes.loc["ward-7", "met"])
    assert scopes.loc["community", "value"] == pytest.approx(0.4)
    assert not scopes.loc["community", "met"]
    assert r.overall.value == pytest.approx(8 / 12) and r.overall.samples == 12
    assert r.met is False
    assert list(r.breached_scopes["site"]) == ["community"]
    assert set(r.scopes["period"]) == {"ward rounds"}
    # community waits pooled: 1 (failed), 2, 2, 4, 4 -> p90 = 4
    assert scopes.loc["community", "p90_s"] == pytest.approx(4.0)
    # five runs hold no order-statistic interval for a p90
    assert bool(scopes.loc["community", "p90_small_sample"])


def test_windows_and_timeslices(store_path: Path) -> None:
    obj = objective(budgeting_method="Timeslices", time_slice_target=0.7)
    with open_store(store_path) as store:
        r = evaluate_objective(store, obj, CALENDAR, START, END)
    w = r.windows
    assert len(w) == 4  # ward-7 07:00, 07:15; community 07:00, 07:30
    ratios = dict(zip(zip(w["site"], w["window_start"].dt.strftime("%H:%M")), w["ratio"], strict=True))
    assert ratios[("ward-7", "07:00")] == pytest.approx(2 / 3)
    assert ratios[("ward-7", "07:15")] == 1.0
    assert ratios[("community", "07:00")] == 0.0
    assert ratios[("community", "07:30")] == 1.0
    # good windows (ratio >= 0.7): ward-7 07:15, community 07:30 -> 2 of 4
    assert r.overall.method == "Timeslices" and r.overall.slices == 4 and r.overall.good_slices == 2
    assert r.overall.value == 0.5


def test_ratio_timeslices(store_path: Path) -> None:
    obj = objective(budgeting_method="RatioTimeslices")
    with open_store(store_path) as store:
        r = evaluate_objective(store, obj, CALENDAR, START, END)
    assert r.overall.value == pytest.approx((2 / 3 + 1 + 0 + 1) / 4)


def test_all_hours_and_apdex(store_path: Path) -> None:
    with open_store(store_path) as store:
        r = evaluate_objective(store, objective(periods=[], apdex_t_s=1.0), None, START, END)
    assert set(r.scopes["period"]) == {ALL_HOURS}
    ward = r.scopes.set_index("site").loc["ward-7"]
    assert ward["runs"] == 8
    # T = 1: ward-7 waits 1,2,4,1,1,1,1,10 -> satisfied 5, tolerating 2 (2 and 4), frustrated 1
    assert ward["apdex"] == f"{(5 + 2 / 2) / 8:.2f} [1.0]*"
    # all 13 runs: satisfied 5 (ward) + 0; tolerating 2 + 4 (4,4,2,2); frustrated 1 + 1 failed
    assert r.apdex.samples == 13 and r.apdex.satisfied == 5 and r.apdex.tolerating == 6
    assert r.apdex.display.endswith("[1.0]*")


def test_periods_need_a_calendar(store_path: Path) -> None:
    with open_store(store_path) as store, pytest.raises(ValueError, match="calendar"):
        evaluate_objective(store, objective(), None, START, END)


def test_budget_from_ratios() -> None:
    r = budget_from_ratios("Timeslices", 0.9, [True] * 3, [1.0, 0.5, np.nan], time_slice_target=0.9)
    assert r.slices == 2 and r.good_slices == 1 and r.value == 0.5
    with pytest.raises(ValueError, match="budgeting method"):
        budget_from_ratios("Events", 0.9, [], [])
