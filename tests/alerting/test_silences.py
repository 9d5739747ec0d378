"""Silences: a local one suppresses exactly what it matches; `wardwatch silence add` also silences
a real Alertmanager; list and expire."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from alerting.config import AlertingConfig, AlertmanagerReceiver, WebhookReceiver
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from alerting.silences import add_silence, expire_silence
from tests.alerting.servers import alertmanager, recorder
from wardwatch.cli import main

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def test_a_local_silence_suppresses_exactly_what_it_matches(add_runs) -> None:
    for workflow, site in (("open", "ward-7"), ("chart", "ward-7"), ("open", "clinic")):
        data = add_runs([(T0 + i * MINUTE, workflow, site, "failed", 1.0) for i in range(3)])
    at = T0 + 3 * MINUTE
    silence = add_silence(data, {"workflow": "open", "site": "ward-7"}, at + 10 * MINUTE, "supplier fixing it", at)
    with recorder() as hook:
        config = AlertingConfig(receivers=[WebhookReceiver(name="desk", type="webhook", url=hook.url)],
                                group_interval_s=0)
        ev = Evaluator(data, config, AlertInputs(), Names())
        ev.evaluate(at)
        ev.deliver(at)
        notified = sorted((b["groupLabels"]["workflow"], b["groupLabels"]["site"]) for b in hook.bodies)
        assert notified == [("chart", "ward-7"), ("open", "clinic")]
        # expired: the silenced alert, still firing, is notified at the next evaluation
        expire_silence(data, silence["id"], at + MINUTE)
        ev.evaluate(at + 2 * MINUTE)
        ev.deliver(at + 2 * MINUTE)
        assert [(b["groupLabels"]["workflow"], b["groupLabels"]["site"]) for b in hook.bodies[2:]] == [("open", "ward-7")]


def test_silence_add_holds_the_alert_back_in_a_real_alertmanager_too(tmp_path: Path, add_runs) -> None:
    now = dt.datetime.now(UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    with recorder() as hook, alertmanager(tmp_path, hook.url) as am:
        path = tmp_path / "wardwatch.yaml"
        path.write_text(f"store: {{path: {data}}}\nalerting:\n  receivers:\n"
                        f"    - {{name: trust-am, type: alertmanager, url: \"{am}\"}}\n", encoding="utf-8")
        runner = CliRunner()
        added = runner.invoke(main, ["silence", "add", "-c", str(path), "--matcher", "workflow=open-patient-record",
                                     "--matcher", "site=ward-7", "--until", "2h", "--reason", "planned fix"])
        assert added.exit_code == 0, added.output
        silence_id = added.output.split()[0]
        [am_silence] = httpx.get(f"{am}/api/v2/silences", timeout=5).json()
        assert am_silence["status"]["state"] == "active" and am_silence["comment"] == "planned fix"
        assert sorted((m["name"], m["value"]) for m in am_silence["matchers"]) == [
            ("site", "ward-7"), ("workflow", "open-patient-record")]

        config = AlertingConfig(receivers=[AlertmanagerReceiver(name="trust-am", type="alertmanager", url=am)])
        ev = Evaluator(data, config, AlertInputs(), Names())
        ev.evaluate(now)
        assert ev.deliver(now) == []
        [alert] = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
        assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"] == [am_silence["id"]]
        time.sleep(3)  # group_wait 1 s: a notification would have arrived by now
        assert hook.bodies == []

        listed = runner.invoke(main, ["silence", "list", "-c", str(path)])
        assert listed.output.startswith(f"{silence_id} active until ")
        assert listed.output.endswith(" site=ward-7, workflow=open-patient-record: planned fix\n")
        expired = runner.invoke(main, ["silence", "expire", "-c", str(path), silence_id])
        assert expired.exit_code == 0, expired.output
        [am_silence] = httpx.get(f"{am}/api/v2/silences", timeout=5).json()
        assert am_silence["status"]["state"] == "expired"
        assert f"{silence_id} expired " in runner.invoke(main, ["silence", "list", "-c", str(path)]).output


def test_silence_add_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    path = tmp_path / "wardwatch.yaml"
    path.write_text(f"store: {{path: {tmp_path / 'data'}}}\n", encoding="utf-8")
    runner = CliRunner()
    bad = runner.invoke(main, ["silence", "add", "-c", str(path), "--matcher", "site", "--until", "1h", "--reason", "x"])
    assert bad.exit_code == 2 and "'site' is not KEY=VALUE" in bad.output
    past = runner.invoke(main, ["silence", "add", "-c", str(path), "--matcher", "site=ward-7",
                                "--until", "2020-01-01T00:00", "--reason", "x"])
    assert past.exit_code == 2 and "is not in the future" in past.output
    unknown = runner.invoke(main, ["silence", "expire", "-c", str(path), "nope"])
    assert unknown.exit_code == 2 and "no silence with id 'nope'" in unknown.output
