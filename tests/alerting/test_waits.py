"""Unwatched waits: the findings' recurring waits become a ticket for the service owner, and a page
(with its notice) only while the wait is now; the findings are read at most every quarter hour."""

from __future__ import annotations

import datetime as dt
import json

import analysis
import analysis.findings
from alerting import waits as waits_module
from alerting.config import AlertingConfig
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from alerting.waits import UnwatchedWaits
from analysis.config import SLAConfig
from analysis.findings import FindingInputs, SiteLabel, WorkflowLabel
from analysis.notices import read_notices
from tests.alerting.test_messages import JARGON

UTC = dt.UTC
START = dt.datetime(2026, 11, 30, tzinfo=UTC)  # a Monday; London is on UTC in winter
NAMES = Names(workflows={"open": "Open patient record"}, sites={"ward-7": "Ward 7", "clinic": "Clinic"})
INPUTS = FindingInputs(workflows=(WorkflowLabel("open", "Open patient record", 3.0, "default"),),
                       sites=(SiteLabel("ward-7", "Ward 7", "Europe/London"),
                              SiteLabel("clinic", "Clinic", "Europe/London")),
                       slas=(SLAConfig(name="mean response", metric="mean", target=2.0),))


def _afternoons_slow(add_runs, days: int = 8, slow_s: float = 20.0):
    """Every 10 minutes at both sites; every weekday 13:30-17:00 a record takes 20 s, else 1 s."""
    runs = []
    for minute in range(0, days * 1440, 10):
        at = START + dt.timedelta(minutes=minute, seconds=5)
        slow = at.weekday() < 5 and dt.time(13, 30) <= at.time() < dt.time(17)
        runs += [(at, "open", site, "ok", slow_s if slow else 1.0) for site in ("ward-7", "clinic")]
    return add_runs(runs)


def _evaluator(data, waits) -> Evaluator:
    return Evaluator(data, AlertingConfig(), AlertInputs(), NAMES, waits=waits)


def test_an_unwatched_wait_is_a_ticket_and_a_page_only_while_it_is_now(add_runs, monkeypatch) -> None:
    data = _afternoons_slow(add_runs)
    read = []
    real = analysis.findings.find_stories
    monkeypatch.setattr(waits_module, "find_stories", lambda *a, **k: read.append(a[3:5]) or real(*a, **k))
    waits = UnwatchedWaits(INPUTS, data, days=7)
    evening = dt.datetime(2026, 12, 7, 21, 0, tzinfo=UTC)  # Monday evening: not now
    [ticket] = _evaluator(data, waits).evaluate(evening)
    assert ticket["status"] == "firing"
    assert ticket["labels"] == {"alertname": "UnwatchedWait", "workflow": "open", "site": "all",
                                "hours": "weekdays 13:30-17:00", "severity": "ticket"}
    assert ticket["annotations"]["summary"] == "Unwatched wait: Open patient record at every site, weekdays 13:30-17:00"
    owner = ticket["annotations"]["description"]
    assert "13:30" in owner and "20 s" in owner and "n=" in owner and "No objective watches it" in owner
    assert "Why the SLA could not see it: " in owner  # the findings' lenses, in plain titles
    assert owner.count("13:30\u201317:00") == 1  # the headline's hours, not again under each figure
    assert "runs within 3 s: " in owner
    assert read_notices(data) == []  # a ticket is for the service owner, not the ward
    # within the quarter hour the findings are not read again, even by a restarted evaluator's cache
    for minute in range(1, 15):
        _evaluator(data, waits).evaluate(evening + dt.timedelta(minutes=minute))
    assert len(read) == 1 and read[0] == (evening - dt.timedelta(days=7), evening)
    _evaluator(data, waits).evaluate(evening + dt.timedelta(minutes=15))
    assert len(read) == 2

    # Tuesday 14:05, the wait is now (its hours, and a run in the last 30 minutes waited 20 s)
    now = dt.datetime(2026, 12, 8, 14, 5, tzinfo=UTC)
    add_runs([(now - dt.timedelta(minutes=4), "open", "ward-7", "ok", 20.0)])
    alerts = _evaluator(data, UnwatchedWaits(INPUTS, data, days=7)).evaluate(now)
    assert sorted(a["labels"]["severity"] for a in alerts) == ["page", "ticket"]
    page = next(a for a in alerts if a["labels"]["severity"] == "page")
    clinician = page["annotations"]["clinician"]
    assert clinician == ("Open patient record is slow at every site since 14:05, as often on weekdays between "
                         "13:30 and 17:00. You can keep working; it does complete, but may take longer. "
                         "We will update you by 14:45.")
    assert not JARGON.search(clinician)
    assert [n.text for n in read_notices(data, site="all")] == [clinician]


def test_in_its_hours_without_a_slow_run_it_is_no_page(add_runs) -> None:
    data = _afternoons_slow(add_runs)
    quiet = dt.datetime(2026, 12, 8, 14, 5, tzinfo=UTC)  # its hours, but no run waited in the last 30 minutes
    alerts = _evaluator(data, UnwatchedWaits(INPUTS, data, days=7)).evaluate(quiet)
    assert [a["labels"]["severity"] for a in alerts] == ["ticket"]
    assert _evaluator(data, UnwatchedWaits(INPUTS, data, days=0)).evaluate(quiet) == []


def test_no_patient_data_and_no_secret_reach_an_unwatched_wait_or_the_demo_receiver(tmp_path) -> None:
    """A run's error message and a raw URL carry a patient's number; the receiver's URL a token:
    neither reaches a message, the state, a notice or the demo receiver's page."""
    from store import schema, write_spans
    from tests.alerting.servers import free_port
    from tests.analysis.conftest import run_rows
    from wardwatch.demo_receiver import DemoReceiver
    from alerting.config import WebhookReceiver

    patient, secret = "9434765919", "hunter2-receiver-token"
    rows = []
    for minute in range(0, 8 * 1440, 10):
        at = START + dt.timedelta(minutes=minute, seconds=5)
        slow = at.weekday() < 5 and dt.time(13, 30) <= at.time() < dt.time(17)
        for site in ("ward-7", "clinic"):
            for row in run_rows(at, "open", site, [("read", 20.0 if slow else 1.0)]):
                row[schema.STATUS_MESSAGE] = f"Patient/{patient} answered slowly"
                row[schema.SPAN_ATTRIBUTES] = {**row[schema.SPAN_ATTRIBUTES], schema.URL_TEMPLATE: f"/Patient/{patient}"}
                rows.append(row)
    now = dt.datetime(2026, 12, 7, 14, 5, tzinfo=UTC)  # Monday, in its hours, the 14:00 run waited
    for row in run_rows(now - dt.timedelta(minutes=5), "open", "ward-7", [("read", 20.0, 503)], status="failed"):
        row[schema.STATUS_MESSAGE] = f"Patient/{patient} not found"
        rows.append(row)
    data = tmp_path / "data"
    write_spans(data, rows)
    port = free_port()
    with DemoReceiver("desk", port=port) as receiver:
        config = AlertingConfig(receivers=[WebhookReceiver(name="desk", type="webhook",
                                                           url=f"http://127.0.0.1:{port}/hook?token={secret}")])
        ev = Evaluator(data, config, AlertInputs(), NAMES, waits=UnwatchedWaits(INPUTS, data, days=7))
        alerts = ev.evaluate(now)
        assert ev.deliver(now) == []
        page = receiver.page()
    assert {a["labels"]["severity"] for a in alerts if a["labels"]["alertname"] == "UnwatchedWait"} == {"page", "ticket"}
    assert "Unwatched wait (now)" in page
    texts = [page, json.dumps([b for _, b in receiver.received]), (data / "alerting" / "state.json").read_text(),
             (data / "notices.json").read_text()]
    for text in texts:
        assert patient not in text and secret not in text
    for alert in alerts:
        assert not JARGON.search(alert["annotations"]["clinician"]), alert["annotations"]["clinician"]


def test_when_the_findings_fail_the_waits_found_before_still_hold(add_runs, monkeypatch) -> None:
    data = _afternoons_slow(add_runs)
    waits = UnwatchedWaits(INPUTS, data, days=7)
    evening = dt.datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    assert len(_evaluator(data, waits).evaluate(evening)) == 1

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the findings")

    monkeypatch.setattr(waits_module, "find_stories", broken)
    [still] = _evaluator(data, waits).evaluate(evening + dt.timedelta(minutes=30))
    assert still["status"] == "firing" and still["labels"]["alertname"] == "UnwatchedWait"


def test_a_wait_that_keeps_within_t_is_a_finding_not_an_alert(add_runs) -> None:
    """Afternoons at 2.5 s against a usual 1 s depart from the usual, but every run is within T (3 s)."""
    data = _afternoons_slow(add_runs, slow_s=2.5)
    evening = dt.datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    with analysis.open_store(data) as store:
        found = analysis.findings.find_stories(store, INPUTS, None, evening - dt.timedelta(days=7), evening)
    [wait] = [s for s in found if s.kind == "unwatched_wait"]
    assert waits_module.beyond_t_share(wait) == 0.0
    assert _evaluator(data, UnwatchedWaits(INPUTS, data, days=7)).evaluate(evening) == []
