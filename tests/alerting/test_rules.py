"""The conditions: analysis' burn-rate alerts unchanged, a silent site, every run failing; budget exhaustion."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis import open_store
from analysis.alerts import objective_alerts, sla_alerts
from analysis.config import ObjectiveConfig, SLAConfig
from alerting.exhaustion import budget_remaining, exhaustion_text, time_to_exhaustion
from alerting.rules import AlertInputs, conditions

UTC = dt.UTC
AT = dt.datetime(2026, 10, 1, 12, tzinfo=UTC)  # a Thursday


def _twenty_percent_bad(add_runs):
    return add_runs([(dt.datetime(2026, 10, 1, 11, 0, 30, tzinfo=UTC) + dt.timedelta(minutes=i), "open", "ward-7",
                      "failed" if i % 5 == 0 else "ok", 5.0 if i % 5 == 0 else 1.0) for i in range(60)])


def test_burn_rate_conditions_are_analysis_alerts(add_runs) -> None:
    path = _twenty_percent_bad(add_runs)
    objective = ObjectiveConfig(name="open", workflow="open", threshold_s=3, target=0.99)
    sla = SLAConfig(name="up", metric="availability", target=0.999)
    with open_store(path) as store:
        found = conditions(store, AlertInputs(objectives=[objective], slas=[sla]), AT)
        expected_o = objective_alerts(store, objective, None, AT)
        expected_s = sla_alerts(store, sla, AT)
    burns = [c for c in found if c.labels["alertname"] == "ObjectiveBurnRate"]
    assert [c.facts["long_burn_rate"] for c in burns] == pytest.approx(list(expected_o["long_burn_rate"]))
    assert [c.labels["window"] for c in burns] == ["1h", "6h", "3d"]
    assert [c.labels["severity"] for c in burns] == list(expected_o["severity"])
    assert burns[0].labels == {"alertname": "ObjectiveBurnRate", "objective": "open", "workflow": "open",
                               "site": "all", "severity": "page", "window": "1h"}
    assert burns[0].facts["long_samples"] == 60 and burns[0].facts["short_samples"] == 5
    slas = [c for c in found if c.labels["alertname"] == "SLABurnRate"]
    assert len(slas) == int(expected_s["firing"].sum()) == 3
    # an hour later only the ticket still fires, as analysis says
    with open_store(path) as store:
        later = conditions(store, AlertInputs(objectives=[objective]), AT + dt.timedelta(hours=1))
    assert [c.labels["window"] for c in later] == ["3d"]


def test_budget_exhaustion_from_the_month_so_far(add_runs) -> None:
    path = _twenty_percent_bad(add_runs)
    objective = ObjectiveConfig(name="open", workflow="open", threshold_s=3, target=0.99)
    with open_store(path) as store:
        fast = conditions(store, AlertInputs(objectives=[objective], timezone="UTC"), AT)[0]
    # October (31 days) so far: 12 h at 20% bad against a 1% budget: 20 x 12 h / 744 h consumed
    remaining = 1 - 20 * 12 / 744
    assert fast.facts["budget_remaining"] == pytest.approx(remaining)
    expected = AT + dt.timedelta(hours=remaining * 744 / 20)
    assert dt.datetime.fromisoformat(fast.facts["exhausted_at"]) == expected


def test_time_to_exhaustion_by_hand() -> None:
    month = dt.timedelta(days=30)
    assert time_to_exhaustion(0.5, 10.0, month) == dt.timedelta(days=1.5)
    assert time_to_exhaustion(0.5, 0.0, month) is None
    assert time_to_exhaustion(-0.1, 3.0, month) == dt.timedelta(0)
    assert budget_remaining(0.01, 0.99, dt.timedelta(days=15), month) == pytest.approx(0.5)
    when = dt.datetime(2026, 10, 8, 13, tzinfo=UTC)  # Thursday 14:00 in London (BST)
    text = exhaustion_text(dt.datetime(2026, 10, 5, 9, tzinfo=UTC), when, None, "Europe/London")
    assert text == "at this rate the month's allowance is used up on Thursday 14:00"
    assert "already used up" in exhaustion_text(when, when - dt.timedelta(hours=1), None, "UTC")
    assert "lasts until" in exhaustion_text(AT, when, when - dt.timedelta(days=1), "UTC")


def test_every_run_failing_fires_on_three_and_resolves_on_the_next_success(add_runs) -> None:
    t0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
    minute = dt.timedelta(minutes=1)
    add_runs([(t0, "open", "ward-7", "ok", 1.0), (t0 + minute, "open", "ward-7", "failed", 1.0),
              (t0 + 2 * minute, "open", "ward-7", "timed_out", 1.0), (t0 + 2 * minute, "open", "clinic", "failed", 1.0)])
    path = add_runs([])

    def failing(at):
        with open_store(path) as store:
            return [c for c in conditions(store, AlertInputs(), at) if c.labels["alertname"] == "EveryRunFailing"]

    assert failing(t0 + 3 * minute) == []  # two failures in a row: not yet
    add_runs([(t0 + 3 * minute, "open", "ward-7", "failed", 1.0), (t0 + 3 * minute, "open", "ward-7", "interrupted", 1.0)])
    [alert] = failing(t0 + 4 * minute)
    assert alert.labels == {"alertname": "EveryRunFailing", "site": "ward-7", "workflow": "open", "severity": "page"}
    assert alert.facts["runs"] == 3 and alert.facts["since"] == (t0 + minute).isoformat()
    assert alert.facts["error_types"] == ["http_5xx"]
    add_runs([(t0 + 4 * minute, "open", "ward-7", "ok", 1.0)])
    assert failing(t0 + 5 * minute) == []


def test_a_site_is_silent_after_its_slots_pass_without_runs(add_runs) -> None:
    last = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
    path = add_runs([(last, "open", "ward-7", "ok", 1.0)])
    inputs = AlertInputs(cadence_s={"ward-7": 60.0, "clinic": 60.0}, silent_slots=5)
    with open_store(path) as store:
        assert conditions(store, inputs, last + dt.timedelta(minutes=4, seconds=59)) == []
        [silent] = conditions(store, inputs, last + dt.timedelta(minutes=5))
    assert silent.labels == {"alertname": "SiteSilent", "site": "ward-7", "severity": "page"}
    assert silent.facts["missed_slots"] == 5  # the clinic never ran: not deployed, not silent


def test_a_simulated_history_never_makes_a_site_silent(tmp_path) -> None:
    """The demo's history ends where live probing starts (or days before, when reused): its last
    run says nothing about whether a probe is alive, so only real runs count."""
    from store import schema, write_spans
    from tests.analysis.conftest import run_rows

    last = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
    rows = run_rows(last, "open", "ward-7", [("read", 1.0)])
    for row in rows:
        row[schema.RESOURCE_ATTRIBUTES] = {**row[schema.RESOURCE_ATTRIBUTES], schema.ATTR_SIMULATED: "true"}
    write_spans(tmp_path / "data", rows)
    inputs = AlertInputs(cadence_s={"ward-7": 60.0}, silent_slots=5)
    with open_store(tmp_path / "data") as store:
        assert conditions(store, inputs, last + dt.timedelta(days=3)) == []


def test_an_objective_of_a_period_kept_at_some_sites_names_those_sites() -> None:
    """A ward-rounds objective is not "at every site" where the clinic keeps no ward rounds: its
    alerts name the sites that keep the period (or the objective's own sites)."""
    from analysis.calendar import ClinicalCalendar
    from analysis.config import PeriodConfig
    from alerting.messages import Names, clinician_text
    from alerting.rules import objective_sites

    calendar = ClinicalCalendar(
        [PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30), sites=["ward-7", "community"]),
         PeriodConfig(name="ward work", start=dt.time(10, 30), end=dt.time(17))],
        {"ward-7": "Europe/London", "community": "Europe/London", "clinic": "Europe/London"})
    rounds = ObjectiveConfig(name="rounds", workflow="open", threshold_s=3, target=0.9, periods=["ward rounds"])
    assert objective_sites(rounds, calendar) == ["ward-7", "community"]
    assert objective_sites(rounds.model_copy(update={"sites": ["ward-7"]}), calendar) == ["ward-7"]
    assert objective_sites(rounds.model_copy(update={"periods": ["ward rounds", "ward work"]}), calendar) == []
    assert objective_sites(rounds.model_copy(update={"periods": []}), calendar) == []
    names = Names(workflows={"open": "Open patient record"},
                  sites={"ward-7": "Ward 7", "community": "Community hospital", "clinic": "Outpatient clinic"})
    text = clinician_text({"alertname": "ObjectiveBurnRate", "workflow": "open", "site": "ward-7,community"},
                          {"kind": "objective"}, AT, AT, names)
    assert "at Ward 7 and Community hospital" in text and "every site" not in text, text
