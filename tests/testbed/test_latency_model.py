"""The latency model as a pure function: the ground truth's own rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed import Scenario, is_outage, load_scenario, modelled_delay, outage_at
from testbed.latency import load_multiplier

LONDON = ZoneInfo("Europe/London")
NOTES = ("GET /DocumentReference", "GET /DocumentReference/{id}")
NOT_NOTES = ("GET /Patient/{id}", "GET /Patient", "GET /Observation", "GET /MedicationRequest",
             "GET /Encounter", "POST /Observation")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario()


def _london(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON)


def test_the_function_is_pure_and_deterministic(scenario: Scenario) -> None:
    at = datetime(2026, 11, 16, 9, 0, 0, 123456, tzinfo=UTC)
    first = modelled_delay("GET /DocumentReference", "ward-7", at, scenario)
    again = modelled_delay("GET /DocumentReference", "ward-7", at, scenario)
    assert first == again
    # the same instant expressed in another zone is the same input
    assert modelled_delay("GET /DocumentReference", "ward-7", at.astimezone(LONDON),
                          scenario).total_s == first.total_s


def test_naive_datetimes_are_refused(scenario: Scenario) -> None:
    with pytest.raises(ValueError, match="aware"):
        modelled_delay("GET /Patient/{id}", None, datetime(2026, 11, 16, 9, 0), scenario)


DEFAULT = load_scenario()


@settings(max_examples=150, deadline=None)
@given(
    endpoint=st.sampled_from([*NOTES, *NOT_NOTES, "GET /metadata", "POST /auth/token"]),
    site=st.sampled_from([None, "ward-7", "outpatient-clinic", "community-hospital", "elsewhere"]),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 400),
)
def test_contributions_sum_to_the_total_and_total_is_service_plus_network(
        endpoint: str, site: str | None, minutes: int) -> None:
    scenario = DEFAULT
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes, microseconds=minutes * 7)
    delay = modelled_delay(endpoint, site, at, scenario)
    assert delay.total_s == pytest.approx(delay.service_s + delay.network_s, abs=1e-12)
    assert sum(c.seconds for c in delay.contributions) == pytest.approx(delay.total_s, abs=1e-9)
    assert delay.service_s >= 0
    assert 0 <= delay.contribution_s("jitter") < scenario.jitter_ms / 1000


def test_ward_round_contention_only_on_notes_and_only_inside_the_window(
        scenario: Scenario) -> None:
    monday = (2026, 11, 16)
    inside = [_london(*monday, 8, 0), _london(*monday, 8, 30), _london(*monday, 10, 29)]
    outside = [_london(*monday, 7, 59), _london(*monday, 10, 30), _london(*monday, 11, 0),
               _london(*monday, 20, 0)]
    for at in inside:
        for endpoint in NOTES:
            delay = modelled_delay(endpoint, "ward-7", at, scenario)
            assert delay.contribution_s("ward-round-notes") > 0.5, (endpoint, at)
        for endpoint in NOT_NOTES:
            assert "ward-round-notes" not in modelled_delay(endpoint, "ward-7", at,
                                                            scenario).names
    for at in outside:
        for endpoint in NOTES:
            assert "ward-round-notes" not in modelled_delay(endpoint, "ward-7", at,
                                                            scenario).names


def test_ward_round_adds_exactly_add_ms_plus_the_multiplied_base(scenario: Scenario) -> None:
    period = next(p for p in scenario.periods if p.name == "ward-round-notes")
    base_ms = scenario.base_service_ms("GET /DocumentReference")
    delay = modelled_delay("GET /DocumentReference", "ward-7", _london(2026, 11, 17, 9, 0),
                           scenario)
    expected_s = (period.add_ms + base_ms * (period.multiplier - 1)) / 1000
    assert delay.contribution_s("ward-round-notes") == pytest.approx(expected_s)


def test_weekday_versus_weekend(scenario: Scenario) -> None:
    friday = modelled_delay("GET /DocumentReference", "ward-7", _london(2026, 11, 20, 9, 0),
                            scenario)
    saturday = modelled_delay("GET /DocumentReference", "ward-7", _london(2026, 11, 21, 9, 0),
                              scenario)
    sunday = modelled_delay("GET /DocumentReference", "ward-7", _london(2026, 11, 22, 9, 0),
                            scenario)
    assert "ward-round-notes" in friday.names
    assert "ward-round-notes" not in saturday.names
    assert "ward-round-notes" not in sunday.names
    assert friday.total_s > saturday.total_s + 0.7


def test_ward_round_is_site_local_across_daylight_saving(scenario: Scenario) -> None:
    # 08:30 in London is 07:30 UTC in summer time (BST) and 08:30 UTC in winter (GMT).
    in_bst = datetime(2026, 10, 12, 7, 30, tzinfo=UTC)   # Monday, BST
    in_gmt = datetime(2026, 11, 16, 8, 30, tzinfo=UTC)   # Monday, GMT
    for at in (in_bst, in_gmt):
        delay = modelled_delay("GET /DocumentReference", "ward-7", at, scenario)
        assert delay.local_time.hour == 8 and delay.local_time.minute == 30
        assert "ward-round-notes" in delay.names
    # 07:45 UTC is inside the round in BST (08:45 local) but before it in GMT (07:45 local)
    assert "ward-round-notes" in modelled_delay(
        "GET /DocumentReference", "ward-7", datetime(2026, 10, 12, 7, 45, tzinfo=UTC),
        scenario).names
    assert "ward-round-notes" not in modelled_delay(
        "GET /DocumentReference", "ward-7", datetime(2026, 11, 16, 7, 45, tzinfo=UTC),
        scenario).names


def test_a_site_in_another_time_zone_has_its_own_ward_round(scenario: Scenario) -> None:
    sites = dict(scenario.sites)
    sites["ward-nyc"] = sites["ward-7"].model_copy(update={"timezone": "America/New_York"})
    overseas = scenario.with_overrides(sites={k: v.model_dump() for k, v in sites.items()})
    at = datetime(2026, 11, 16, 13, 30, tzinfo=UTC)  # 13:30 London, 08:30 New York
    assert "ward-round-notes" in modelled_delay("GET /DocumentReference", "ward-nyc", at,
                                                overseas).names
    assert "ward-round-notes" not in modelled_delay("GET /DocumentReference", "ward-7", at,
                                                    overseas).names


def test_the_wan_site_adds_its_network_delay(scenario: Scenario) -> None:
    at = _london(2026, 11, 18, 12, 0)
    lan = modelled_delay("GET /Patient/{id}", "ward-7", at, scenario)
    wan = modelled_delay("GET /Patient/{id}", "community-hospital", at, scenario)
    nowhere = modelled_delay("GET /Patient/{id}", None, at, scenario)
    unknown = modelled_delay("GET /Patient/{id}", "mars-base", at, scenario)
    assert wan.network_s == pytest.approx(0.080)
    assert lan.network_s == pytest.approx(0.002)
    assert nowhere.network_s == 0.0 and unknown.network_s == 0.0
    assert wan.contribution_s("network") == pytest.approx(0.080)
    # the server side is the same story wherever the request comes from (jitter aside)
    no_jitter = scenario.with_overrides(jitter_ms=0)
    assert (modelled_delay("GET /Patient/{id}", "community-hospital", at, no_jitter).service_s
            == modelled_delay("GET /Patient/{id}", "ward-7", at, no_jitter).service_s)


def test_the_change_slows_medication_search_from_its_instant(scenario: Scenario) -> None:
    change = scenario.changes[0]
    assert change.at == datetime(2026, 10, 14, 7, 0, tzinfo=UTC)
    just_before = change.at - timedelta(microseconds=1)
    for endpoint, slowed in (("GET /MedicationRequest", True), ("GET /Patient/{id}", False),
                             ("GET /MedicationRequest/{id}", False)):
        before = modelled_delay(endpoint, "ward-7", just_before, scenario)
        after = modelled_delay(endpoint, "ward-7", change.at, scenario)
        assert change.name not in before.names
        assert (after.contribution_s(change.name) == pytest.approx(0.600)) is slowed
        later = modelled_delay(endpoint, "ward-7", change.at + timedelta(days=30), scenario)
        assert (change.name in later.names) is slowed


def test_the_outage(scenario: Scenario) -> None:
    start = datetime(2026, 10, 21, 3, 10, tzinfo=UTC)
    end = datetime(2026, 10, 21, 3, 25, tzinfo=UTC)
    assert not is_outage(start - timedelta(seconds=1), scenario)
    assert is_outage(start, scenario)
    assert is_outage(start + timedelta(minutes=7), scenario)
    assert not is_outage(end, scenario)
    outage = outage_at(start, scenario)
    assert outage is not None and outage.status == 503
    delay = modelled_delay("GET /Patient/{id}", "community-hospital", start, scenario)
    assert delay.outage_status == 503
    assert delay.names == (outage.name, "network")
    assert modelled_delay("GET /Patient/{id}", "ward-7", end, scenario).outage_status is None


def test_clinic_stalls_are_periodic_inside_clinic_hours(scenario: Scenario) -> None:
    tuesday = (2026, 11, 17)
    stalled = [_london(*tuesday, 13, 30), _london(*tuesday, 13, 33), _london(*tuesday, 14, 0),
               _london(*tuesday, 16, 32)]
    calm = [_london(*tuesday, 13, 29), _london(*tuesday, 13, 34), _london(*tuesday, 14, 10),
            _london(*tuesday, 17, 0), _london(2026, 11, 21, 14, 0)]
    for at in stalled:
        assert modelled_delay("GET /Patient/{id}", "outpatient-clinic", at,
                              scenario).contribution_s("clinic-stalls") == pytest.approx(2.5)
    for at in calm:
        assert "clinic-stalls" not in modelled_delay("GET /Patient/{id}", "outpatient-clinic",
                                                     at, scenario).names


def test_the_nightly_batch_slows_observations_at_night_only(scenario: Scenario) -> None:
    for endpoint in ("GET /Observation", "POST /Observation"):
        night = modelled_delay(endpoint, "ward-7", _london(2026, 11, 22, 3, 0), scenario)
        day = modelled_delay(endpoint, "ward-7", _london(2026, 11, 22, 12, 0), scenario)
        assert "nightly-batch" in night.names
        assert "nightly-batch" not in day.names
        assert night.total_s > 2.0 > day.total_s
    assert "nightly-batch" not in modelled_delay("GET /Patient/{id}", "ward-7",
                                                 _london(2026, 11, 22, 3, 0), scenario).names


def test_load_curve_interpolates_and_wraps(scenario: Scenario) -> None:
    curve = scenario.load_curve
    assert load_multiplier(_london(2026, 11, 16, 8, 0), curve) == pytest.approx(1.3)
    assert load_multiplier(_london(2026, 11, 16, 9, 0), curve) == pytest.approx(1.4)
    # between 23:00 (0.75) and 00:00 (0.7) the curve wraps around midnight
    assert load_multiplier(_london(2026, 11, 16, 23, 30), curve) == pytest.approx(0.725)
    assert load_multiplier(_london(2026, 11, 21, 12, 0), curve) == pytest.approx(1.0)


def test_jitter_is_a_pure_function_of_endpoint_site_and_instant(scenario: Scenario) -> None:
    at = _london(2026, 11, 18, 12, 0)
    jitters = {modelled_delay("GET /Patient/{id}", "ward-7", at + timedelta(milliseconds=i),
                              scenario).contribution_s("jitter") for i in range(50)}
    assert len(jitters) > 40  # varies with the instant...
    assert modelled_delay("GET /Patient/{id}", "ward-7", at, scenario).contribution_s(
        "jitter") == modelled_delay("GET /Patient/{id}", "ward-7", at, scenario).contribution_s(
        "jitter")  # ...but not between calls


def test_the_slow_tail_hits_about_its_share_deterministically(scenario: Scenario) -> None:
    tail = next(t for t in scenario.tails if t.name == "slow-tail")
    start = _london(2026, 11, 21, 5, 0)  # a Saturday morning: no periods, only the tail
    delays = [modelled_delay("GET /Patient/{id}", "ward-7", start + timedelta(seconds=3 * i),
                             scenario) for i in range(5000)]
    assert {n for d in delays for n in d.names} <= {"base", "load", "jitter", "network",
                                                    tail.name}
    hit = [d for d in delays if tail.name in d.names]
    assert 0.5 * tail.probability < len(hit) / len(delays) < 1.5 * tail.probability
    assert all(d.contribution_s(tail.name) == pytest.approx(tail.add_ms / 1000) for d in hit)
    again = [modelled_delay("GET /Patient/{id}", "ward-7", d.at, scenario) for d in hit]
    assert all(tail.name in d.names for d in again)
    # the tail barely moves the mean but owns the top percentile
    totals = sorted(d.total_s for d in delays)
    assert totals[int(0.998 * len(totals))] > 1.5
    assert sum(totals) / len(totals) < 0.2


def test_as_dict_is_json_ready_and_complete(scenario: Scenario) -> None:
    delay = modelled_delay("GET /DocumentReference", "community-hospital",
                           _london(2026, 11, 16, 9, 0), scenario)
    data = json.loads(json.dumps(delay.as_dict()))
    assert data["total_s"] == pytest.approx(delay.total_s)
    assert [c["name"] for c in data["contributions"]] == list(delay.names)
    assert data["local_time"].startswith("2026-11-16T09:00:00")
