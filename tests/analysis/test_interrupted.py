"""Runs the probe stopped itself (``interrupted``: Ctrl-C) are facts about the probe, not the EPR:
listed, never judged (issue 19 item 5). One hour at the community hospital: nine runs of 0.3 s
and one the probe cut off, whose last request was recorded as failed as the probe stopped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from analysis import RunFilter, open_store
from analysis.config import ObjectiveConfig, SLAConfig
from analysis.findings import FindingInputs, find_stories
from analysis.objectives import evaluate_objective
from analysis.query import figures as f
from analysis.query import preagg, rows
from analysis.query.sources import Definitions
from analysis.sla import evaluate_sla
from analysis.status import judge_status

UTC = dt.UTC
START = dt.datetime(2026, 11, 2, 9, tzinfo=UTC)
WINDOW = (START, START + dt.timedelta(hours=1))
SITE = "community-hospital"


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    rows = []
    for i in range(9):
        rows += make_rows(START + dt.timedelta(minutes=6 * i), "open", SITE,
                          [("find", 0.1), ("notes", 0.2)])
    rows += make_rows(START + dt.timedelta(minutes=55), "open", SITE,
                      [("find", 0.1), ("notes", 0.2, 503)], status="interrupted")
    return rows_store(rows)


def test_objectives_and_slas_leave_interrupted_runs_out(store_path: Path) -> None:
    objective = ObjectiveConfig(name="open in 1 s", workflow="open", threshold_s=1, target=0.9)
    availability = SLAConfig(name="up", metric="availability", target=0.999)
    with open_store(store_path) as store:
        judged = evaluate_objective(store, objective, None, *WINDOW)
        assert judged.overall.value == 1.0 and judged.overall.samples == 9
        assert judged.apdex.samples == 9 and judged.apdex.failed == 0
        sla = evaluate_sla(store, availability, *WINDOW)
        assert (sla.value, sla.samples, sla.met) == (1.0, 18, True)


def test_dashboard_figures_leave_interrupted_runs_out_but_list_them(store_path: Path) -> None:
    runs = RunFilter(*WINDOW)
    defs = Definitions.of({"open": 1.0}, 3.0)
    preagg.refresh(store_path, defs, now=WINDOW[1] + dt.timedelta(hours=1))
    with open_store(store_path) as store:
        for exact in (True, False):
            q = f.ask(store, runs, defs, exact=exact)
            board = f.board(q)
            assert board[["samples", "not_ok", "share_under"]].to_dict("records") == [
                {"samples": 9, "not_ok": 0, "share_under": 1.0}]
            assert board["apdex"].iloc[0].failed == 0
            assert f.sites(q)["not_ok"].tolist() == [0]
            assert f.time_of_day(q, timezone="UTC")["share_under"].tolist() == [1.0]
            assert f.simulated_share(q) == (0, 9)
        listed = rows.slowest(store, runs)
        assert "interrupted" in set(listed["status"])  # shown


def test_status_does_not_call_a_stopped_probe_failing() -> None:
    recent = pd.DataFrame({
        "workflow": ["open"] * 3, "site": [SITE] * 3,
        "start": pd.to_datetime([START, START + dt.timedelta(minutes=1),
                                 START + dt.timedelta(minutes=2)], utc=True),
        "status": ["interrupted", "interrupted", "ok"], "waiting_s": [0.1, 0.1, 0.3]})
    baseline = pd.DataFrame({"workflow": ["open"], "site": [SITE], "baseline_s": [0.3],
                             "last_seen": [START]})
    [row] = judge_status(baseline, recent).to_dict("records")
    assert (row["state"], row["recent_failed"], row["recent_samples"]) == ("normal", 0, 1)


def test_no_story_is_told_about_a_stopped_probe(store_path: Path) -> None:
    inputs = FindingInputs(slas=(SLAConfig(name="up", metric="availability", target=0.999),),
                           objectives=(ObjectiveConfig(name="open in 1 s", workflow="open",
                                                       threshold_s=1, target=0.9),))
    with open_store(store_path) as store:
        assert find_stories(store, inputs, None, *WINDOW) == []
