"""The scenario file and its test helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from testbed import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FaultRule,
    Scenario,
    ScenarioError,
    load_scenario,
    modelled_delay,
    scenario_for_tests,
)


def test_the_default_tells_the_briefs_stories() -> None:
    scenario = load_scenario()
    assert set(scenario.sites) == {"ward-7", "outpatient-clinic", "community-hospital"}
    assert all(site.timezone == "Europe/London" for site in scenario.sites.values())
    assert scenario.sites["community-hospital"].network_delay_ms == 80
    assert scenario.sites["ward-7"].network_delay_ms < 10
    assert {p.name for p in scenario.periods} == {"ward-round-notes", "clinic-stalls",
                                                  "nightly-batch"}
    assert scenario.changes[0].at == datetime(2026, 10, 14, 7, 0, tzinfo=UTC)
    assert scenario.outages[0].start == datetime(2026, 10, 21, 3, 10, tzinfo=UTC)
    assert scenario.faults == []
    assert (scenario.auth.client_id, scenario.auth.client_secret) == (DEFAULT_CLIENT_ID,
                                                                      DEFAULT_CLIENT_SECRET)
    assert scenario.auth.token_lifetime_s == 300


def test_a_file_on_disk_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: tiny\nservice_ms: {default: 12}\nsites: {here: {network_delay_ms: 3}}\n")
    scenario = load_scenario(path)
    assert scenario.name == "tiny"
    assert modelled_delay("GET /Patient", "here", datetime(2026, 1, 1, tzinfo=UTC),
                          scenario).total_s == pytest.approx(0.015)


@pytest.mark.parametrize(("text", "message"), [
    ("name: [unclosed", "not valid YAML"),
    ("- a list", "must be a mapping"),
    ("surprise: 1", "surprise"),
    ("timezone: Mars/Olympus", "unknown IANA time zone"),
    ("periods: [{name: p, start: '10:00', end: '09:00'}]", "end must be after start"),
    ("changes: [{name: c, at: '2026-10-14T07:00:00'}]", "time zone"),
    ("faults: [{kind: 5xx, rate: 1.5}]", "faults.0.rate"),
    ("periods: [{name: x, start: '08:00', end: '09:00'}]\n"
     "changes: [{name: x, at: '2026-10-14T07:00:00Z'}]", "used twice"),
])
def test_invalid_files_name_the_file_and_the_key(tmp_path: Path, text: str,
                                                  message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_scenario_for_tests_gives_exact_fixed_delays() -> None:
    scenario = scenario_for_tests(
        10.0, service_ms={"GET /Patient/{id}": 0, "GET /Observation": 1000},
        network_ms={"community-hospital": 100})
    monday_ward_round = datetime(2026, 11, 16, 8, 30, tzinfo=UTC)
    cases = {("GET /Patient/{id}", "ward-7"): 0.0,
             ("GET /Observation", "ward-7"): 1.0,
             ("GET /DocumentReference", "ward-7"): 0.010,
             ("GET /DocumentReference", "community-hospital"): 0.110,
             ("POST /auth/token", None): 0.010}
    for (endpoint, site), expected_s in cases.items():
        delay = modelled_delay(endpoint, site, monday_ward_round, scenario)
        assert delay.total_s == pytest.approx(expected_s, abs=1e-12)
        assert delay.outage_status is None


def test_scenario_for_tests_takes_faults_and_can_turn_auth_off() -> None:
    scenario = scenario_for_tests(faults=[FaultRule(kind="reset", endpoint="GET /Patient"),
                                          {"kind": "hang", "hang_s": 0.2}],
                                  auth_required=False)
    assert [f.kind for f in scenario.faults] == ["reset", "hang"]
    assert scenario.auth.required is False


def test_with_overrides_validates_and_copies() -> None:
    base = load_scenario()
    quiet = base.with_overrides(jitter_ms=0, periods=[], outages=[])
    assert quiet.jitter_ms == 0 and quiet.periods == [] and quiet.outages == []
    assert base.jitter_ms == 30 and base.periods  # the original is untouched
    with pytest.raises(ValueError, match="unknown scenario field"):
        base.with_overrides(jiter_ms=0)
    with pytest.raises(ValueError):
        base.with_overrides(jitter_ms=-1)


def test_service_time_lookup_exact_then_pattern_then_default() -> None:
    scenario = Scenario.model_validate({"service_ms": {
        "default": 7, "GET /Observation": 1, "GET /Observation*": 2}})
    assert scenario.base_service_ms("GET /Observation") == 1
    assert scenario.base_service_ms("GET /Observation/{id}") == 2
    assert scenario.base_service_ms("GET /Patient") == 7
