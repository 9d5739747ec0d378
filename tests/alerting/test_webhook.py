"""Receiver `type: webhook`: Alertmanager's webhook format (version 4), grouped, repeated, resolved,
retried; against a recording HTTP server on loopback."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from alerting.config import AlertingConfig, WebhookReceiver
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from analysis.notices import read_delivery
from tests.alerting.servers import Recorder, free_port, recorder
from tests.analysis.conftest import run_rows
from store import schema, write_spans

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def _fail(add_runs, workflow: str = "open", site: str = "ward-7", start: dt.datetime = T0) -> Path:
    return add_runs([(start + i * MINUTE, workflow, site, "failed", 1.0) for i in range(3)])


def _evaluator(data: Path, url: str, **settings) -> Evaluator:
    config = AlertingConfig(receivers=[WebhookReceiver(name="desk", type="webhook", url=url)], **settings)
    return Evaluator(data, config, AlertInputs(), Names(sites={"ward-7": "Ward 7"}))


def _check_v4(body: dict) -> None:
    """The webhook payload as Alertmanager documents it (notify/webhook: version 4)."""
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and isinstance(body["truncatedAlerts"], int)
    assert body["status"] in ("firing", "resolved") and isinstance(body["groupKey"], str)
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in body[key].items())
    for alert in body["alerts"]:
        assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert alert["status"] in ("firing", "resolved")
        for key in ("startsAt", "endsAt"):
            dt.datetime.fromisoformat(alert[key].replace("Z", "+00:00"))
        assert (alert["endsAt"] == "0001-01-01T00:00:00Z") == (alert["status"] == "firing")


def test_once_per_group_and_repeat_interval_across_restarts(add_runs) -> None:
    data = _fail(add_runs)
    _fail(add_runs, workflow="chart")
    with recorder() as hook:
        at = T0 + 3 * MINUTE
        for minute in range(0, 61):  # a new evaluator (a restart) every minute for an hour
            ev = _evaluator(data, hook.url, group_interval_s=300, repeat_interval_s=3600)
            ev.evaluate(at + minute * MINUTE)
            ev.deliver(at + minute * MINUTE)
        bodies = list(hook.bodies)
        for body in bodies:
            _check_v4(body)
        # two groups (one per workflow), each notified when it fired and again after the repeat interval
        assert sorted((b["groupLabels"]["workflow"], b["status"]) for b in bodies) == [
            ("chart", "firing")] * 2 + [("open", "firing")] * 2
        assert bodies[0]["groupLabels"] == {"alertname": "EveryRunFailing", "site": "ward-7", "workflow": "chart"}
        assert bodies[0]["groupKey"] == '{}:{alertname="EveryRunFailing", site="ward-7", workflow="chart"}'
        # the next successful run resolves it: one resolved notification, then silence
        add_runs([(at + 61 * MINUTE, "open", "ward-7", "ok", 1.0)])
        for minute in range(62, 75):
            ev = _evaluator(data, hook.url, group_interval_s=300, repeat_interval_s=3600)
            ev.evaluate(at + minute * MINUTE)
            ev.deliver(at + minute * MINUTE)
        resolved = [b for b in hook.bodies if b["status"] == "resolved"]
        assert len(resolved) == 1 and len(hook.bodies) == 5
        [alert] = resolved[0]["alerts"]
        assert alert["status"] == "resolved" and alert["labels"]["workflow"] == "open"
        assert "working normally again" in alert["annotations"]["clinician"]


def test_a_receiver_down_gets_every_notification_late_none_lost(add_runs) -> None:
    data = _fail(add_runs)
    hook = Recorder(free_port())  # not started: down
    ev = _evaluator(data, hook.url, group_interval_s=0, repeat_interval_s=3600)
    at = T0 + 3 * MINUTE
    for minute in range(10):  # ten minutes down: fired at once, resolved after five
        if minute == 5:
            add_runs([(at + 4 * MINUTE, "open", "ward-7", "ok", 1.0)])
        ev.evaluate(at + minute * MINUTE)  # never waits for the receiver
        assert ev.deliver(at + minute * MINUTE) in ([], ["receiver desk: ConnectError; retrying"])
    assert [i["body"]["status"] for i in ev.state["outbox"]] == ["firing", "resolved"]
    assert ev.state["outbox"][0]["attempts"] >= 3  # retried, backing off
    # what could not be delivered is there for the dashboard to show
    assert read_delivery(data) == [{"receiver": "desk", "waiting": 2, "since": at.isoformat(), "error": "ConnectError"}]
    hook.start()
    try:
        restarted = _evaluator(data, hook.url, group_interval_s=0, repeat_interval_s=3600)
        assert restarted.deliver(at + 20 * MINUTE) == []
        assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
        assert restarted.state["outbox"] == []
        assert read_delivery(data) == []
    finally:
        hook.stop()


def test_routes_choose_receivers_by_labels(add_runs) -> None:
    data = _fail(add_runs)
    with recorder() as pages, recorder() as tickets:
        config = AlertingConfig(
            receivers=[WebhookReceiver(name="pager", type="webhook", url=pages.url),
                       WebhookReceiver(name="desk", type="webhook", url=tickets.url)],
            routes=[{"matchers": {"severity": "page", "site": "ward-7"}, "receivers": ["pager"]},
                    {"matchers": {"severity": "ticket"}, "receivers": ["desk"]}])
        ev = Evaluator(data, config, AlertInputs(), Names())
        ev.evaluate(T0 + 3 * MINUTE)
        ev.deliver(T0 + 3 * MINUTE)
        assert len(pages.bodies) == 1 and tickets.bodies == []


def test_no_patient_data_and_no_secret_in_any_message(tmp_path: Path) -> None:
    patient, secret = "9434765919", "hunter2-receiver-token"
    rows = []
    for i in range(3):
        for row in run_rows(T0 + i * MINUTE, "open", "ward-7", [("read", 1.0, 503)], status="failed"):
            row[schema.STATUS_MESSAGE] = f"Patient/{patient} not found"
            row[schema.SPAN_ATTRIBUTES] = {**row[schema.SPAN_ATTRIBUTES], schema.URL_TEMPLATE: f"/Patient/{patient}"}
            rows.append(row)
    data = tmp_path / "data"
    write_spans(data, rows)
    with recorder() as hook:
        ev = _evaluator(data, hook.url + f"?token={secret}")
        ev.evaluate(T0 + 3 * MINUTE)
        assert ev.deliver(T0 + 3 * MINUTE) == []
        sent = json.dumps(hook.bodies)
    assert "EveryRunFailing" in sent
    assert patient not in sent and secret not in sent
    assert patient not in (data / "alerting" / "state.json").read_text()
