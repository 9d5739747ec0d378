"""Receiver `type: alertmanager`, against Debian's real Prometheus Alertmanager on loopback."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx

from alerting.config import AlertingConfig, AlertmanagerReceiver
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
import pytest

from tests.alerting import servers
from tests.alerting.servers import alertmanager, recorder

LABELS = {"alertname": "EveryRunFailing", "site": "ward-7", "workflow": "open-patient-record", "severity": "page"}


def _active(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/v2/alerts", params={"active": "true", "silenced": "false"}, timeout=5).json()


def test_firing_then_resolved_through_a_real_alertmanager(tmp_path: Path, add_runs) -> None:
    now = dt.datetime.now(dt.UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    with recorder() as hook, alertmanager(tmp_path, hook.url) as am:
        config = AlertingConfig(receivers=[AlertmanagerReceiver(name="trust-am", type="alertmanager", url=am)],
                                dashboard_url="http://wardwatch.example:8050")
        names = Names(sites={"ward-7": "Ward 7"}, dashboard_url=config.dashboard_url)
        ev = Evaluator(data, config, AlertInputs(), names)
        ev.evaluate(now)
        assert ev.deliver(now) == []
        [alert] = _active(am)
        assert alert["labels"] == LABELS
        assert alert["annotations"]["clinician"].startswith("Open patient record is not working at Ward 7 since")
        assert alert["generatorURL"] == ("http://wardwatch.example:8050/status?window=1d&"
                                         "workflow=open-patient-record&site=ward-7")
        assert alert["status"]["state"] == "active"
        # Alertmanager groups it and notifies its own webhook receiver
        [notification] = hook.wait_for(1)
        assert notification["status"] == "firing" and notification["groupLabels"] == {
            k: LABELS[k] for k in ("alertname", "site", "workflow")}
        assert notification["alerts"][0]["labels"] == LABELS
        # sent again at the next evaluation (as Prometheus does), still one alert
        ev.evaluate(now + dt.timedelta(seconds=1))
        assert ev.deliver(now + dt.timedelta(seconds=1)) == []
        assert len(_active(am)) == 1

        add_runs([(now, "open-patient-record", "ward-7", "ok", 1.0)])
        later = dt.datetime.now(dt.UTC)
        ev.evaluate(later)
        assert ev.deliver(later) == []
        assert _active(am) == []
        deadline = time.monotonic() + 30
        while not any(b["status"] == "resolved" for b in hook.bodies) and time.monotonic() < deadline:
            time.sleep(0.2)
        resolved = [b for b in hook.bodies if b["status"] == "resolved"]
        assert resolved and resolved[0]["alerts"][0]["labels"] == LABELS
        # resolved is sent once: the next evaluation posts nothing
        ev.evaluate(later + dt.timedelta(seconds=1))
        assert ev.state["outbox"] == []


def test_without_alertmanager_a_developer_skips_and_ci_fails(monkeypatch) -> None:
    monkeypatch.delenv("WARDWATCH_ALERTMANAGER", raising=False)
    monkeypatch.setattr(servers.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.delenv("WARDWATCH_REQUIRE_ALERTMANAGER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus-alertmanager"):
        servers.alertmanager_binary()
    monkeypatch.setenv("WARDWATCH_REQUIRE_ALERTMANAGER", "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        servers.alertmanager_binary()


def test_our_webhook_has_the_shape_of_the_real_alertmanagers(tmp_path: Path, add_runs) -> None:
    """The same alert through a real Alertmanager's webhook and through ours: the same keys, the same
    group key and labels, the same kinds of values (the published format, version 4, by example)."""
    from alerting.config import WebhookReceiver

    now = dt.datetime.now(dt.UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    with recorder() as theirs, recorder() as ours, alertmanager(tmp_path, theirs.url) as am:
        config = AlertingConfig(receivers=[AlertmanagerReceiver(name="trust-am", type="alertmanager", url=am),
                                           WebhookReceiver(name="recorder", type="webhook", url=ours.url)])
        ev = Evaluator(data, config, AlertInputs(), Names(sites={"ward-7": "Ward 7"}))
        ev.evaluate(now)
        assert ev.deliver(now) == []
        [real] = theirs.wait_for(1)
        [mine] = ours.bodies
    assert set(mine) == set(real)
    assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in real.items()}
    for key in ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
                "truncatedAlerts"):
        assert mine[key] == real[key], key
    [their_alert], [my_alert] = real["alerts"], mine["alerts"]
    assert set(my_alert) == set(their_alert)
    for key in ("status", "labels", "annotations", "generatorURL", "endsAt"):
        assert my_alert[key] == their_alert[key], key
    started = [dt.datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) for a in (my_alert, their_alert)]
    assert started[0] == started[1]
    assert all(len(a["fingerprint"]) == 16 and int(a["fingerprint"], 16) >= 0 for a in (my_alert, their_alert))
