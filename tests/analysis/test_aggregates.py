"""Aggregates computed in DuckDB agree with hand-computed values on a small store."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import RunFilter
from analysis.aggregates import (
    phase_summary,
    run_waterfall,
    site_summary,
    slowest_runs,
    step_summary,
    time_of_day,
    waiting_timeline,
    workflow_site_summary,
)

NS = 1_000_000_000
# Monday 2 November 2026, 08:00 UTC = 08:00 GMT (Europe/London is on GMT in November).
MONDAY_8 = int(dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC).timestamp()) * NS


@pytest.fixture
def store(make_probe, tmp_path):
    ward = make_probe(site="ward-7")
    community = make_probe(site="community-hospital")
    # Ward 7 at 08:xx: notes slow (2 s) in two of four runs; at 14:xx all fast.
    for i, notes_s in enumerate([0.5, 2.0, 0.5, 2.0]):
        ward.run(MONDAY_8 + i * 60 * NS, steps=(("find", 0.2), ("notes", notes_s)))
    for i in range(3):
        ward.run(MONDAY_8 + 6 * 3600 * NS + i * 60 * NS, steps=(("find", 0.2), ("notes", 0.5)))
    community.run(MONDAY_8 + 120 * NS, steps=(("find", 1.0), ("notes", 0.5)))
    community.run(MONDAY_8 + 180 * NS, steps=(("find", 1.0), ("notes", 0.5)), failed_step="notes")
    with analysis.open_store(tmp_path / "data") as opened:
        yield opened


def test_time_of_day_counts_and_shares_per_local_hour(store) -> None:
    cells = time_of_day(store, RunFilter(sites=["ward-7"]), timezone="Europe/London", threshold_s=1.0)
    assert cells[["weekday", "hour", "samples"]].to_dict("records") == [
        {"weekday": 0, "hour": 8, "samples": 4},
        {"weekday": 0, "hour": 14, "samples": 3},
    ]
    assert cells["share_under"].tolist() == [0.5, 1.0]
    assert cells["p90_s"].iloc[0] == pytest.approx(np.percentile([0.7, 2.2, 0.7, 2.2], 90))


def test_time_of_day_follows_the_sites_time_zone(store) -> None:
    cells = time_of_day(store, RunFilter(sites=["ward-7"]), timezone="Asia/Kolkata", threshold_s=1.0)
    assert cells["hour"].tolist() == [13, 19]  # UTC+05:30: 08:00 -> 13:30


def test_failed_runs_are_never_under_the_threshold(store) -> None:
    sites = site_summary(store, RunFilter(), threshold_s=5.0).set_index("site")
    assert sites.loc["community-hospital", "samples"] == 2
    assert sites.loc["community-hospital", "not_ok"] == 1
    assert sites.loc["community-hospital", "share_under"] == 0.5
    assert sites.loc["ward-7", "share_under"] == 1.0


def test_step_summary_names_the_step_behind_the_excess(store) -> None:
    steps = step_summary(store, RunFilter(sites=["ward-7"]), threshold_s=1.0).set_index("step")
    assert steps.loc["notes", "samples"] == 7
    assert steps.loc["notes", "median_s"] == pytest.approx(0.5)
    assert steps.loc["notes", "excess_share"] == pytest.approx(1.0)
    assert steps.loc["find", "excess_share"] == pytest.approx(0.0)
    assert list(steps.index) == ["find", "notes"]


def test_step_summary_without_a_threshold_has_no_excess(store) -> None:
    steps = step_summary(store, RunFilter())
    assert steps["excess_share"].isna().all()


def test_timeline_buckets_ok_runs_by_hour(store) -> None:
    start = pd.Timestamp(MONDAY_8, unit="ns", tz="UTC")
    buckets = waiting_timeline(store, RunFilter(start=start.to_pydatetime()), bucket="1 hour")
    assert buckets["samples"].tolist() == [5, 3]  # the failed community run is left out
    assert buckets["bucket"].iloc[0] == start


def test_phases_per_site(store) -> None:
    phases = phase_summary(store, RunFilter()).set_index("site")
    # ward-7: 14 steps, the first of each run carries connect 0.002 s.
    assert phases.loc["ward-7", "samples"] == 14
    assert phases.loc["ward-7", "connect_s"] == pytest.approx(0.002 * 7 / 14)


def test_slowest_runs_first_and_a_runs_waterfall_in_tree_order(store) -> None:
    slowest = slowest_runs(store, RunFilter(), limit=3)
    assert slowest["waiting_s"].tolist() == pytest.approx([2.2, 2.2, 1.5])
    spans = run_waterfall(store, slowest["trace_id"].iloc[0])
    assert spans["depth"].tolist() == [0, 1, 1]
    assert spans["name"].tolist()[1:] == ["find", "notes"]
    assert (spans["source"] == "probe").all()


def test_time_bounds_must_be_aware(store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        slowest_runs(store, RunFilter(start=dt.datetime(2026, 11, 2)))


def test_workflow_site_summary_judges_each_workflow_by_its_threshold(store) -> None:
    board = workflow_site_summary(
        store, RunFilter(), thresholds_s={"open_patient_record": 1.0}, default_threshold_s=3.0
    ).set_index("site")
    ward = board.loc["ward-7"]
    assert ward["samples"] == 7
    assert ward["share_under"] == pytest.approx(5 / 7)
    # Apdex [1.0]: 5 satisfied, 2 tolerating (2.2 s <= 4 s), 0 frustrated.
    assert str(ward["apdex"]) == f"{(5 + 2 / 2) / 7:.2f} [1.0]*"
    community = board.loc["community-hospital"]
    assert community["apdex"].failed == 1
    assert community["apdex"].frustrated == 1
