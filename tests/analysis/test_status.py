"""The plain-language status: normal, slow since when, failing, or no recent runs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import analysis
from analysis.query import preagg, rows
from analysis.query.sources import Definitions
from analysis.status import StatusRules, current_status, usual_gaps

NS = 1_000_000_000
NOW = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def at(minutes_before_now: float) -> int:
    return int((NOW - dt.timedelta(minutes=minutes_before_now)).timestamp() * NS)


@pytest.fixture
def store(make_probe, tmp_path):
    ward = make_probe(site="ward-7")
    clinic = make_probe(site="outpatient-clinic")
    community = make_probe(site="community-hospital")
    for hours_ago in range(2, 26):  # baselines: 1.0 s everywhere
        for probe in (ward, clinic, community):
            probe.run(at(hours_ago * 60), steps=(("open", 1.0),))
    for minutes_ago in (25, 20, 15, 10, 5):  # recent: ward normal, clinic slow from 15 min ago
        ward.run(at(minutes_ago), steps=(("open", 1.1),))
        clinic.run(at(minutes_ago), steps=(("open", 1.0 if minutes_ago > 15 else 4.0),))
    for minutes_ago in (20, 10):
        community.run(at(minutes_ago), steps=(("open", 1.0),), failed_step="open")
    with analysis.open_store(tmp_path / "data") as opened:
        yield opened


def test_states_and_since(store) -> None:
    status = current_status(store, NOW).set_index("site")
    assert status.loc["ward-7", "state"] == "normal"
    assert status.loc["ward-7", "typical_s"] == pytest.approx(1.1)
    assert status.loc["ward-7", "baseline_s"] == pytest.approx(1.0)
    assert pd.isna(status.loc["ward-7", "since"])
    assert status.loc["outpatient-clinic", "state"] == "slow"
    assert status.loc["outpatient-clinic", "since"] == pd.Timestamp(at(15), unit="ns", tz="UTC")
    assert status.loc["outpatient-clinic", "recent_samples"] == 5
    assert status.loc["community-hospital", "state"] == "failing"
    assert status.loc["community-hospital", "recent_failed"] == 2


def test_no_recent_runs_is_its_own_state(store) -> None:
    later = NOW + dt.timedelta(hours=2)
    status = current_status(store, later, StatusRules(recent=dt.timedelta(minutes=30)))
    assert set(status["state"]) == {"no recent runs"}
    # The last run still tells when the probe last reported (here: in the baseline window).
    assert status["last_run"].notna().all()


def test_now_must_be_aware(store) -> None:
    with pytest.raises(ValueError):
        current_status(store, NOW.replace(tzinfo=None))


def test_the_dashboards_status_matches_the_store(store, tmp_path) -> None:
    """The dashboard's status (the baseline from pre-aggregated buckets where built, exact rows at
    its edges; the recent runs exact) judges as the exact one."""
    defs = Definitions.of({}, 3.0)
    exact = current_status(store, NOW)
    for built in (False, True):
        if built:
            assert preagg.refresh(tmp_path / "data", defs, now=NOW) > 0
        ours = rows.current_status(store, defs, NOW)
        assert ours[["workflow", "site", "state", "recent_samples", "recent_failed", "since", "last_run"]].equals(
            exact[["workflow", "site", "state", "recent_samples", "recent_failed", "since", "last_run"]])
        assert (ours["baseline_s"] - exact["baseline_s"]).abs().max() <= 0.01 * exact["baseline_s"].max()


def test_a_pair_is_missing_only_when_its_own_cadence_says_a_run_is_overdue(make_probe, tmp_path) -> None:
    """A workflow run every two hours (as the demo's history runs the ward handover) has no run in
    the last 30 minutes most of the time: it is between checks until two of its gaps have passed."""
    ward = make_probe(site="ward-7")
    for hours_ago in range(2, 30, 2):
        ward.run(at(hours_ago * 60), workflow="handover", steps=(("list", 2.0),))
    with analysis.open_store(tmp_path / "data") as opened:
        assert usual_gaps(opened, pd.DataFrame({"workflow": ["handover"], "site": ["ward-7"]}), NOW) == {
            ("handover", "ward-7"): 7200.0}
        soon = current_status(opened, NOW).iloc[0]
        assert (soon["state"], soon["usual_gap_s"]) == ("between checks", 7200.0)
        assert soon["last_run"] == pd.Timestamp(at(120), unit="ns", tz="UTC")
        late = current_status(opened, NOW + dt.timedelta(hours=2, minutes=1)).iloc[0]
        assert late["state"] == "no recent runs"


def test_a_streak_that_began_before_the_recent_window_is_dated_from_its_first_run(make_probe, tmp_path) -> None:
    """Slow from 50 minutes ago, judged at the end of a 30-minute window: since 50 minutes ago, not
    since the window's edge; failing likewise. A streak through the whole day read back is open."""
    ward, clinic, community = (make_probe(site=s) for s in ("ward-7", "outpatient-clinic", "community-hospital"))
    for minutes_ago in range(3 * 24 * 60, 0, -10):
        late = minutes_ago <= 50
        ward.run(at(minutes_ago), steps=(("open", 4.0 if late else 1.0),))
        if late:
            clinic.run(at(minutes_ago), steps=(("open", 1.0),), failed_step="open")
        else:
            clinic.run(at(minutes_ago), steps=(("open", 1.0),))
        community.run(at(minutes_ago), steps=(("open", 9.0 if minutes_ago <= 26 * 60 else 1.0),))
    with analysis.open_store(tmp_path / "data") as opened:
        status = current_status(opened, NOW).set_index("site")
    assert status.loc["ward-7", "state"] == "slow"
    assert status.loc["ward-7", "since"] == pd.Timestamp(at(50), unit="ns", tz="UTC")
    assert not status.loc["ward-7", "since_open"]
    assert status.loc["outpatient-clinic", "state"] == "failing"
    assert status.loc["outpatient-clinic", "since"] == pd.Timestamp(at(50), unit="ns", tz="UTC")
    # slow for 26 hours: every run of the day read back was slow, so it began before then
    assert status.loc["community-hospital", "state"] == "slow"
    assert status.loc["community-hospital", "since_open"]
