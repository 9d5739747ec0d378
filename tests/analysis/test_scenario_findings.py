"""Acceptance: on history simulated from the testbed's default scenario, the analysis finds the
brief's stories, each with the right dominant step.

Three weekdays are simulated (Mon 12 Oct 2026 07:00Z to Thu 15 Oct 07:00Z, one run per 13
minutes per workflow and site; the ward handover is left out to keep the test short) from the
packaged scenario, its release at 2026-10-14T07:00Z kept where it is. Findings are judged over the
three days; the WAN site's story over the two days before the release (after it, the release's
slower medication list adds to every site's waiting and dominates the excess); the release a day
either side.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analysis import open_store
from analysis.calendar import ClinicalCalendar
from analysis.changes import change_impact
from analysis.config import (
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
)
from analysis.report import build_report, to_markdown
from analysis.watermelon import SPREAD_SHARE, Finding, find_watermelons

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
UTC = dt.UTC
WINDOW = (dt.datetime(2026, 10, 12, 7, tzinfo=UTC), dt.datetime(2026, 10, 15, 7, tzinfo=UTC))
BEFORE_RELEASE = (WINDOW[0], dt.datetime(2026, 10, 14, 7, tzinfo=UTC))
RELEASE = ChangeEventConfig(at="2026-10-14T07:00:00Z", title="Release 24.3",
                            workflows=["open-patient-record", "chart-observations"])
PERIODS = [
    PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30),
                 sites=["ward-7", "community-hospital"]),
    PeriodConfig(name="ward work", start=dt.time(10, 30), end=dt.time(13),
                 sites=["ward-7", "community-hospital"]),
    PeriodConfig(name="outpatient clinics", start=dt.time(13, 30), end=dt.time(17),
                 sites=["outpatient-clinic"]),
]
CALENDAR = ClinicalCalendar(PERIODS, {s: "Europe/London" for s in
                                      ("ward-7", "community-hospital", "outpatient-clinic")})
SUPPLIER_MEAN = SLAConfig(name="supplier response time", metric="mean", target=1.0,
                          timezone="Europe/London",
                          service_hours={"start": dt.time(8), "end": dt.time(18)})
OPEN_95 = SLAConfig(name="95% of record requests within 2 s", metric="share_under",
                    threshold_s=2, target=0.95, timezone="Europe/London",
                    workflows=["open-patient-record"])
CHART_95 = SLAConfig(name="95% of charting requests within 2 s", metric="share_under",
                     threshold_s=2, target=0.95, timezone="Europe/London",
                     workflows=["chart-observations"])
SLAS = [SUPPLIER_MEAN, OPEN_95, CHART_95]
ROUNDS = ObjectiveConfig(name="records open within 3 s on ward rounds",
                         workflow="open-patient-record", threshold_s=3, target=0.9,
                         periods=["ward rounds"])
WARD_WORK = ObjectiveConfig(name="records open within 1.5 s during ward work",
                            workflow="open-patient-record", threshold_s=1.5, target=0.9,
                            periods=["ward work"])
CHARTING = ObjectiveConfig(name="charting within 2 s on ward rounds",
                           workflow="chart-observations", threshold_s=2, target=0.9,
                           periods=["ward rounds"])
VOLUMES = [TaskVolumeConfig(workflow="open-patient-record", period="ward rounds", per_day=60,
                            assumption="two rounds of 30 patients")]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testbed import load_scenario
    from wardwatch.config import load_config
    from wardwatch.simulate import simulate_history

    config = load_config(EXAMPLE)
    config = config.model_copy(update={
        "workflows": [w for w in config.workflows if w.name != "ward-handover"]})
    path = tmp_path_factory.mktemp("scenario") / "store"
    simulate_history(config, days=3, end=dt.datetime(2026, 10, 15, 7, tzinfo=UTC),
                     store_path=path, scenario=load_scenario(), interval_s=780)
    return path


@pytest.fixture(scope="module")
def findings(store_path: Path) -> list[Finding]:
    with open_store(store_path) as store:
        return find_watermelons(store, SLAS, [ROUNDS, CHARTING], CALENDAR, window=WINDOW,
                                task_volumes=VOLUMES)


def pick(findings: list[Finding], kind: str, objective: str, site: str | None) -> Finding:
    matches = [f for f in findings if (f.kind, f.objective, f.site) == (kind, objective, site)]
    assert len(matches) == 1, [(f.kind, f.objective, f.site) for f in findings]
    return matches[0]


def test_ward_round_watermelon_on_notes(findings: list[Finding]) -> None:
    f = pick(findings, "watermelon", ROUNDS.name, "community-hospital")
    assert not [g for g in findings if g.objective == ROUNDS.name and g.site == "ward-7"]
    assert {r.name for r in f.slas} == {SUPPLIER_MEAN.name, OPEN_95.name}  # both green
    assert f.period == "ward rounds" and f.experience["value"] < 0.9
    assert f.dominant_step == "notes" and f.dominant_step_share > SPREAD_SHARE
    per_request = f.lens("per_request")
    assert per_request is not None
    assert per_request.figures["request_p95_s"] < 2.0  # each request looks fine...
    assert per_request.figures["workflow_p90_s"] > 3.0  # ...the task does not
    assert f.lens("slow_but_up") is not None
    assert f.time_lost is not None and f.time_lost.scaled_hours is not None
    assert f.time_lost.scaled_hours > 0 and "two rounds of 30 patients" in f.time_lost.assumption
    assert "notes step" in f.summary


def test_wan_site_chatty_workflow(store_path: Path) -> None:
    with open_store(store_path) as store:
        found = find_watermelons(store, SLAS, [WARD_WORK], CALENDAR, window=BEFORE_RELEASE)
    assert [(f.kind, f.site) for f in found] == [("watermelon", "community-hospital")]
    f = found[0]
    pooled = f.lens("pooled_sites")
    per_request = f.lens("per_request")
    assert pooled is not None and per_request is not None
    assert per_request.figures["requests_per_run"] >= 7  # chatty: many requests in series
    assert per_request.figures["request_p95_s"] < 1.0  # none of them slow on its own
    # the 80 ms WAN link against the others' 2-6 ms, paid on every request
    assert 0.06 < pooled.figures["per_request_gap_s"] < 0.09
    # no single step dominates: the round trips do
    assert f.dominant_step_share < SPREAD_SHARE
    assert "spread across the steps" in f.summary


def test_nightly_batch_reverse(findings: list[Finding]) -> None:
    f = pick(findings, "reverse", CHARTING.name, None)
    assert f.sla.name == CHART_95.name and f.sla.met is False
    dilution = f.lens("time_dilution")
    assert dilution is not None
    assert "02:00-03:00, 03:00-04:00 (Europe/London)" in dilution.text  # the re-index
    assert dilution.figures["share_outside_periods"] > 0.9
    # the nightly re-index slows the Observation requests
    assert f.dominant_step in {"chart-heart-rate", "read-back-vitals"}


def test_release_impact_on_medications(store_path: Path) -> None:
    with open_store(store_path) as store:
        impact = change_impact(store, RELEASE, window=dt.timedelta(days=1))
    opens = impact[impact["workflow"] == "open-patient-record"]
    assert set(opens["site"]) == {"ward-7", "community-hospital", "outpatient-clinic"}
    assert opens["significant"].all() and (opens["magnitude"] == "large").all()
    assert (opens["dominant_step"] == "medications").all()
    assert opens["dominant_step_delta_s"].between(0.55, 0.65).all()  # the release's +600 ms
    charts = impact[impact["workflow"] == "chart-observations"]
    assert len(charts) == 2 and not charts["significant"].any()


def test_month_report_tells_the_stories(store_path: Path) -> None:
    with open_store(store_path) as store:
        report = build_report(store, SLAS, [ROUNDS, WARD_WORK, CHARTING],
                              CALENDAR, "2026-10", changes=[RELEASE], task_volumes=VOLUMES,
                              timezone="Europe/London")
    assert report.simulated
    text = to_markdown(report)
    assert "simulated history" in report.headline[0]
    assert "Release 24.3 (14 Oct 07:00 UTC)" in text and "mostly in medications" in text
    assert "notes step" in text and "was breached" in text
