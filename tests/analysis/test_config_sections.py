"""The analysis sections of the configuration file, as the demo's example writes them."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from analysis.config import (
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
    check_analysis_references,
)

# The sections proposed for examples/testbed.yaml (see the acceptance test for what they find).
EXAMPLE = """
periods:
  - name: ward rounds
    weekdays: [mon, tue, wed, thu, fri]
    start: "08:00"
    end: "10:30"
    sites: [ward-7, community-hospital]
    weight: 3
  - name: ward work
    start: "10:30"
    end: "13:00"
    sites: [ward-7, community-hospital]
    weight: 2
  - name: outpatient clinics
    start: "13:30"
    end: "17:00"
    sites: [outpatient-clinic]
    weight: 2

objectives:
  - name: patient record opens within 3 s on ward rounds
    workflow: open-patient-record
    threshold_s: 3
    target: 0.9
    periods: [ward rounds]
    window_minutes: 15
  - name: patient record opens within 2 s during ward work
    workflow: open-patient-record
    threshold_s: 2
    target: 0.9
    periods: [ward work]
  - name: charting within 2 s on ward rounds
    workflow: chart-observations
    threshold_s: 2
    target: 0.9
    periods: [ward rounds]
    budgeting_method: Timeslices
    time_slice_target: 0.9

slas:
  - name: supplier response time
    description: "Schedule 4: mean transaction response time 1 s or less in core hours."
    metric: mean
    target: 1.0
    timezone: Europe/London
    service_hours: {weekdays: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
  - name: 95% of record requests within 2 s
    workflows: [open-patient-record]
    metric: share_under
    threshold_s: 2
    target: 0.95
    timezone: Europe/London
  - name: 95% of charting requests within 2 s
    workflows: [chart-observations]
    metric: share_under
    threshold_s: 2
    target: 0.95
    timezone: Europe/London
  - name: availability
    metric: availability
    target: 0.995
    timezone: Europe/London
    budgeting_method: Timeslices
    time_slice_target: 0.5
    time_slice_minutes: 5
    exclusions:
      - {start: "2026-10-04T01:00:00+01:00", end: "2026-10-04T03:00:00+01:00", title: agreed patching}

changes:
  - at: "2026-10-14T07:00:00Z"
    title: Release 24.3
    workflows: [open-patient-record, chart-observations]
    description: Added a filter to the medication list.

task_volumes:
  - workflow: open-patient-record
    period: ward rounds
    per_day: 60
    assumption: two ward rounds of 30 patients a day per ward
"""


def sections() -> dict:
    return yaml.safe_load(EXAMPLE)


def test_example_sections_validate() -> None:
    doc = sections()
    periods = TypeAdapter(list[PeriodConfig]).validate_python(doc["periods"])
    objectives = TypeAdapter(list[ObjectiveConfig]).validate_python(doc["objectives"])
    slas = TypeAdapter(list[SLAConfig]).validate_python(doc["slas"])
    changes = TypeAdapter(list[ChangeEventConfig]).validate_python(doc["changes"])
    volumes = TypeAdapter(list[TaskVolumeConfig]).validate_python(doc["task_volumes"])
    assert [s.metric for s in slas] == ["mean", "share_under", "share_under", "availability"]
    assert slas[0].wording == "mean response time at most 1 s, Mon-Fri 08:00-18:00, per calendar month"
    assert slas[3].exclusions[0].start == dt.datetime(2026, 10, 4, tzinfo=dt.UTC)
    assert changes[0].at == dt.datetime(2026, 10, 14, 7, tzinfo=dt.UTC)
    problems = check_analysis_references(
        workflows={"open-patient-record", "chart-observations", "ward-handover"},
        sites={"ward-7", "outpatient-clinic", "community-hospital"},
        periods=periods, objectives=objectives, slas=slas, changes=changes, task_volumes=volumes)
    assert problems == []


def test_references_are_checked() -> None:
    slas = [SLAConfig(name="a", metric="availability", target=0.99, workflows=["nope"]),
            SLAConfig(name="a", metric="availability", target=0.99, sites=["mars"])]
    volumes = [TaskVolumeConfig(workflow="x", per_day=1, period="night")]
    changes = [ChangeEventConfig(at="2026-10-14T07:00:00Z", title="t", workflows=["y"])]
    problems = check_analysis_references(workflows={"w"}, sites={"s"}, slas=slas,
                                         changes=changes, task_volumes=volumes)
    assert problems == [
        (("slas", 0, "workflows", 0), "no workflow named 'nope' in workflows"),
        (("slas", 1, "sites", 0), "no site named 'mars' in sites"),
        (("changes", 0, "workflows", 0), "no workflow named 'y' in workflows"),
        (("task_volumes", 0, "workflow"), "no workflow named 'x' in workflows"),
        (("task_volumes", 0, "period"), "no period named 'night' in periods"),
        (("slas", 1, "name"), "two SLAs are named 'a'"),
    ]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        ChangeEventConfig(at="2026-10-14T07:00:00", title="t")
    with pytest.raises(ValidationError, match="UTC offset"):
        SLAConfig(name="a", metric="availability", target=0.99,
                  exclusions=[{"start": "2026-10-04T01:00:00", "end": "2026-10-04T03:00:00"}])


def test_render_formats() -> None:
    from analysis.report import render

    with pytest.raises(ValueError, match="md, html, json"):
        render(None, "pdf")  # type: ignore[arg-type]
