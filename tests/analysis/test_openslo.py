"""OpenSLO v1 documents read as objectives, and objectives written as OpenSLO."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analysis.budget import Duration
from analysis.config import ObjectiveConfig
from analysis.openslo import objectives_to_openslo, read_openslo, to_objective_configs

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
BUDGETING = REFERENCE / "openslo" / "examples" / "budgeting-method"


def test_threshold_metric_occurrences_rolling() -> None:
    [slo] = read_openslo(BUDGETING / "occurences-slo.yaml")
    assert (slo.slo, slo.name, slo.service, slo.metric) == (
        "search-slo", "Good experience", "web-shop", "threshold")
    assert (slo.op, slo.value, slo.target, slo.budgeting_method) == ("lt", 500.0, 0.99, "Occurrences")
    assert slo.window == Duration(2, "w") and slo.rolling is True
    [objective] = to_objective_configs([slo], workflow="search", value_unit="ms")
    assert objective.threshold_s == 0.5 and objective.target == 0.99
    assert objective.workflow == "search" and objective.compliance_window == "2w" and objective.rolling


def test_ratio_metric_ratio_timeslices() -> None:
    [slo] = read_openslo(BUDGETING / "ratio-timeslices.yaml")
    assert slo.metric == "ratio" and slo.budgeting_method == "RatioTimeslices"
    assert slo.time_slice_window == Duration(1, "m")
    with pytest.raises(ValueError, match="needs threshold_s"):
        to_objective_configs([slo])
    [objective] = to_objective_configs([slo], threshold_s=2.0)
    assert objective.window_minutes == 1 and objective.workflow == "web-shop"
    assert objective.budgeting_method == "RatioTimeslices"


def test_timeslices_calendar_with_two_objectives() -> None:
    slos = read_openslo(BUDGETING / "timeslices-slo.yaml")
    assert [s.name for s in slos] == ["Internal objective", "SLA"]
    internal, sla = slos
    assert internal.target == 0.995 and internal.time_slice_target == 0.99
    assert sla.target == 0.99 and sla.op is None
    # The example writes "duration: 1m" and comments "1 month": in OpenSLO m is minutes.
    assert internal.window == Duration(1, "m")
    assert internal.rolling is False and internal.calendar_timezone == "America/New_York"
    objectives = to_objective_configs(slos, workflow="login", threshold_s=1)
    assert [o.budgeting_method for o in objectives] == ["Timeslices", "Timeslices"]
    assert [o.time_slice_target for o in objectives] == [0.99, 0.99]


def test_low_traffic_example_and_sloth_v1alpha() -> None:
    [slo] = read_openslo(REFERENCE / "openslo" / "examples" /
                         "treat-low-traffic-as-equally-important" / "timeslices-slo.yaml")
    assert slo.target == 0.9995 and slo.time_slice_target == 0.95 and slo.window == Duration(1, "w")
    [sloth] = read_openslo(REFERENCE / "sloth" / "examples" / "openslo-getting-started.yml")
    assert sloth.metric == "ratio" and sloth.target == 0.999
    assert sloth.window == Duration(30, "d") and sloth.rolling is True


def test_refusals() -> None:
    doc = {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "x"},
           "spec": {"service": "s", "indicator": {"spec": {"thresholdMetric": {}}},
                    "timeWindow": [{"duration": "28d", "isRolling": True}],
                    "budgetingMethod": "Occurrences",
                    "objectives": [{"op": "gt", "value": 1, "target": 0.9}]}}
    [slo] = read_openslo([doc])
    with pytest.raises(ValueError, match="lt or lte"):
        to_objective_configs([slo])
    bad = {**doc, "spec": {**doc["spec"], "budgetingMethod": "Events"}}
    with pytest.raises(ValueError, match="budgetingMethod"):
        read_openslo([bad])
    assert read_openslo([{"apiVersion": "openslo/v1", "kind": "Service"}]) == []


# The OpenSLO v1 specification (README, "Objectives"): "Either target or targetPercent must be
# used ... A targetPercent: 99.95 is equivalent to target: 0.9995", with the example objectives
# below; and timeSliceWindow is "numeric | duration-shorthand ... e.g. 5, 1m, 10m, 2h, 1d ...
# Default interpretation of unit if specified as a number in minutes."
SPEC_OBJECTIVES = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: foo-slo, displayName: Foo SLO}
spec:
  service: foo
  indicator: {spec: {ratioMetric: {good: {}, total: {}}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Timeslices
  objectives:
    - displayName: Foo Total Errors
      target: 0.98
      timeSliceTarget: 0.9
      timeSliceWindow: 1m
    - displayName: Bar Total Errors
      targetPercent: 99.99
      timeSliceTarget: 0.9
      timeSliceWindow: 5
"""


def test_target_percent_as_the_specification_allows() -> None:
    foo, bar = read_openslo(SPEC_OBJECTIVES)
    assert foo.target == 0.98
    assert bar.target == pytest.approx(0.9999)
    both = SPEC_OBJECTIVES.replace("targetPercent: 99.99", "targetPercent: 99.99\n      target: 0.9999")
    with pytest.raises(ValueError, match="not both"):
        read_openslo(both)
    with pytest.raises(ValueError, match="target or a targetPercent"):
        read_openslo(SPEC_OBJECTIVES.replace("targetPercent: 99.99", "op: lt"))


def test_a_bare_number_time_slice_window_is_minutes_as_the_specification_says() -> None:
    foo, bar = read_openslo(SPEC_OBJECTIVES)
    assert foo.time_slice_window == Duration(1, "m")
    assert bar.time_slice_window == Duration(5, "m")
    _, objective = to_objective_configs([foo, bar], threshold_s=2.0)
    assert objective.window_minutes == 5 and objective.target == pytest.approx(0.9999)
    with pytest.raises(ValueError, match="whole number of minutes"):
        read_openslo(SPEC_OBJECTIVES.replace("timeSliceWindow: 5", "timeSliceWindow: 0.5"))


def test_export_reads_back_to_the_same_objectives() -> None:
    objectives = [
        ObjectiveConfig(name="patient record opens within 3 s on ward rounds",
                        workflow="open-patient-record", threshold_s=3, target=0.9,
                        periods=["ward rounds"], sites=["ward-7", "community-hospital"],
                        apdex_t_s=1.5),
        ObjectiveConfig(name="charting within 2 s", workflow="chart-observations", threshold_s=2,
                        target=0.9, budgeting_method="Timeslices", time_slice_target=0.9,
                        window_minutes=15, compliance_window="28d", rolling=True),
    ]
    text = objectives_to_openslo(objectives, service="epr", timezone="Europe/London")
    documents = list(yaml.safe_load_all(text))
    assert documents[0]["apiVersion"] == "openslo/v1" and documents[0]["kind"] == "SLO"
    assert documents[0]["metadata"]["name"] == "patient-record-opens-within-3-s-on-ward-rounds"
    assert documents[0]["spec"]["objectives"] == [
        {"displayName": "patient record opens within 3 s on ward rounds", "op": "lte",
         "value": 3.0, "target": 0.9}]
    assert documents[0]["spec"]["timeWindow"][0]["calendar"]["timeZone"] == "Europe/London"
    assert documents[1]["spec"]["objectives"][0]["timeSliceWindow"] == "15m"
    back = to_objective_configs(read_openslo(text))
    for original, read in zip(objectives, back, strict=True):
        assert read.model_dump(exclude={"description"}) == original.model_dump(exclude={"description"})
