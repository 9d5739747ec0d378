"""Objectives, the report's own tables and the burn-rate alerts are computed by DuckDB: the same
numbers as computed from frames of the runs and requests, to the last bit, without loading those
frames (memory bounded by the work, not the store)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pytest

from analysis import objectives as O
from analysis import open_store
from analysis.alerts import objective_alerts, objective_event_counts, sla_alerts, sla_event_counts
from analysis.budget import burn_rate_alerts
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, PeriodConfig, SLAConfig
from analysis import report
from analysis.sla import sla_requests
from analysis.store import Store

UTC = dt.UTC
START, END = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 5, tzinfo=UTC)
AT = dt.datetime(2026, 10, 4, 9, tzinfo=UTC)
CALENDAR = ClinicalCalendar(
    [PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30)),
     PeriodConfig(name="clinic", start=dt.time(9), end=dt.time(17), sites=["clinic"])],
    {"ward-7": "Europe/London", "clinic": "America/New_York"},
)


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """Four days of runs every ~7 minutes at two sites in different zones: waits spread around
    the thresholds, some failed, some interrupted (never judged)."""
    rng = random.Random(7)
    rows = []
    moment = START
    while moment < END:
        for site in ("ward-7", "clinic"):
            status = rng.choices(["ok", "failed", "interrupted"], [90, 8, 2])[0]
            steps = [("a", round(rng.lognormvariate(0, 0.8), 6)), ("b", round(rng.uniform(0, 3), 6))]
            rows += make_rows(moment + dt.timedelta(seconds=rng.randrange(60)), "open", site, steps,
                              status=status)
        moment += dt.timedelta(minutes=7)
    return rows_store(rows)


def _objectives() -> list[ObjectiveConfig]:
    out = []
    for method in ("Occurrences", "Timeslices", "RatioTimeslices"):
        for periods in ([], ["ward rounds"], ["ward rounds", "clinic"]):
            for sites in ([], ["clinic"]):
                out.append(ObjectiveConfig(name=f"{method} {periods} {sites}", workflow="open", threshold_s=3.0,
                                           target=0.9, budgeting_method=method, periods=periods, sites=sites,
                                           time_slice_target=0.8 if method == "Timeslices" else None,
                                           window_minutes=30))
    return out


@pytest.mark.parametrize("objective", _objectives(), ids=lambda o: o.name)
def test_an_objective_is_judged_as_from_the_frame_of_its_runs(store_path: Path, objective: ObjectiveConfig) -> None:
    with open_store(store_path, calendar=CALENDAR) as store:
        from_frame = O._evaluate(O.objective_runs(store, objective, CALENDAR, START, END), objective, START, END)
        in_store = O.evaluate_objective(store, objective, CALENDAR, START, END)
    assert len(from_frame.scopes) and len(from_frame.windows)
    pd.testing.assert_frame_equal(in_store.scopes, from_frame.scopes, check_exact=True)
    pd.testing.assert_frame_equal(in_store.windows, from_frame.windows, check_exact=True)
    assert (in_store.overall, in_store.apdex, in_store.waiting_p90) == (
        from_frame.overall, from_frame.apdex, from_frame.waiting_p90)


def _no_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a frame of the whole window was loaded")

    for name in ("runs", "steps", "requests", "missed_slots"):
        monkeypatch.setattr(Store, name, refuse)


def test_objectives_the_reports_tables_and_alerts_load_no_frames(store_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _no_frames(monkeypatch)
    objective = _objectives()[4]
    sla = SLAConfig(name="within 2 s", metric="share_under", threshold_s=2.0, target=0.95)
    with open_store(store_path, calendar=CALENDAR) as store:
        O.evaluate_objective(store, objective, CALENDAR, START, END)
        objective_alerts(store, objective, CALENDAR, AT)
        sla_alerts(store, sla, AT)
        # the report's own tables (its findings still read frames: analysis.findings)
        apdex = report._apdex_table(store, [objective], START, END)
        assert report._missed_slots(store, START, END) == {}
    assert apdex["samples"].iloc[0] > 0


@pytest.mark.parametrize("objective", [o for o in _objectives() if o.budgeting_method == "Occurrences"],
                         ids=lambda o: o.name)
def test_an_objectives_alerts_are_those_of_its_runs(store_path: Path, objective: ObjectiveConfig) -> None:
    with open_store(store_path, calendar=CALENDAR) as store:
        runs = O.objective_runs(store, objective, CALENDAR, AT - dt.timedelta(days=3),
                                AT + dt.timedelta(microseconds=1)).drop_duplicates("trace_id")
        expected = burn_rate_alerts(runs["start"], runs["good"].to_numpy(dtype=bool), objective.target, AT)
        pd.testing.assert_frame_equal(objective_alerts(store, objective, CALENDAR, AT), expected)
    assert expected["long_samples"].iloc[-1] > 0


@pytest.mark.parametrize("sla", [
    SLAConfig(name="up", metric="availability", target=0.99),
    SLAConfig(name="p95", metric="percentile", percentile=95, target=2.0, timezone="Europe/London",
              service_hours={"weekdays": ["thu", "fri", "sat"], "start": "08:00", "end": "18:00"}),
    SLAConfig(name="within 2 s", metric="share_under", threshold_s=2.0, target=0.95, workflows=["open"],
              sites=["clinic"], exclusions=[{"start": "2026-10-03T00:00:00Z", "end": "2026-10-03T06:00:00Z"}]),
], ids=lambda s: s.name)
def test_an_slas_alerts_are_those_of_its_requests(store_path: Path, sla: SLAConfig) -> None:
    with open_store(store_path, calendar=CALENDAR) as store:
        frame, _, _ = sla_requests(store, sla, AT - dt.timedelta(days=3), AT + dt.timedelta(microseconds=1))
        expected = burn_rate_alerts(frame["start"], frame["good"].to_numpy(dtype=bool), sla.ratio_target, AT)
        pd.testing.assert_frame_equal(sla_alerts(store, sla, AT), expected)
    assert expected["long_samples"].iloc[-1] > 0


def test_a_compliance_windows_events_are_counted_as_its_frames_hold_them(store_path: Path) -> None:
    sla = SLAConfig(name="within 2 s", metric="share_under", threshold_s=2.0, target=0.95,
                    exclusions=[{"start": "2026-10-03T00:00:00Z", "end": "2026-10-03T06:00:00Z"}])
    with open_store(store_path, calendar=CALENDAR) as store:
        for objective in _objectives()[:6]:
            runs = O.objective_runs(store, objective, CALENDAR, START, END).drop_duplicates("trace_id")
            assert objective_event_counts(store, objective, CALENDAR, START, END) == (len(runs), int(runs["good"].sum()))
        frame, _, _ = sla_requests(store, sla, START, END)
        assert sla_event_counts(store, sla, START, END) == (len(frame), int(frame["good"].sum())) != (0, 0)
