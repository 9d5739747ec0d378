"""Silences from the configuration: an SLA's agreed maintenance and a change's planned window
silence the alerts about the workflows and sites they cover, while they last; here and in a real
Alertmanager."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from alerting.config import AlertingConfig, AlertmanagerReceiver, WebhookReceiver
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.planned import planned_windows
from alerting.rules import AlertInputs
from analysis.changelog import record_change, recorded_changes
from analysis.config import ChangeEventConfig, SLAConfig
from tests.alerting.servers import alertmanager, recorder

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
MAINTENANCE = {"start": T0.isoformat(), "end": (T0 + 30 * MINUTE).isoformat(), "title": "agreed patching"}


def _failing(add_runs, *pairs):
    for workflow, site in pairs:
        data = add_runs([(T0 + i * MINUTE, workflow, site, "failed", 1.0) for i in range(3)])
    return data


def _notified(bodies) -> list[tuple[str, str]]:
    return sorted((b["groupLabels"].get("workflow", ""), b["groupLabels"]["site"]) for b in bodies)


def test_an_sla_exclusion_silences_what_it_covers_while_it_lasts(add_runs) -> None:
    data = _failing(add_runs, ("open", "ward-7"), ("chart", "ward-7"), ("open", "clinic"))
    sla = SLAConfig(name="records", workflows=["open"], sites=["ward-7"], metric="availability", target=0.999,
                    exclusions=[MAINTENANCE])
    inputs = AlertInputs(slas=[sla])
    with recorder() as hook:
        config = AlertingConfig(receivers=[WebhookReceiver(name="desk", type="webhook", url=hook.url)],
                                group_interval_s=0)
        ev = Evaluator(data, config, inputs, Names())
        alerts = ev.evaluate(T0 + 3 * MINUTE)
        ev.deliver(T0 + 3 * MINUTE)
        covered = [a for a in alerts if a["silenced"]]
        assert [(a["labels"]["workflow"], a["labels"]["site"]) for a in covered] == [("open", "ward-7")]
        assert covered[0]["planned"] == "agreed maintenance of SLA 'records' (agreed patching)"
        assert _notified(hook.bodies) == [("chart", "ward-7"), ("open", "clinic")]
        # the window ends while it still fires: notified then, once
        for minute in (20, 29, 30, 31):
            ev = Evaluator(data, config, inputs, Names())  # restarted
            ev.evaluate(T0 + minute * MINUTE)
            ev.deliver(T0 + minute * MINUTE)
        assert _notified(hook.bodies[2:]) == [("open", "ward-7")]


def test_a_silent_site_is_not_the_epr_s_maintenance(add_runs) -> None:
    data = _failing(add_runs, ("open", "ward-7"))
    sla = SLAConfig(name="all", metric="availability", target=0.999, exclusions=[MAINTENANCE])
    alerts = Evaluator(data, AlertingConfig(), AlertInputs(slas=[sla], cadence_s={"ward-7": 60.0}),
                       Names()).evaluate(T0 + 10 * MINUTE)
    assert {a["labels"]["alertname"]: a["silenced"] for a in alerts} == {"EveryRunFailing": True, "SiteSilent": False}


def test_a_recorded_change_with_a_planned_window_silences_its_workflows(add_runs) -> None:
    data = _failing(add_runs, ("open", "ward-7"), ("chart", "ward-7"))
    release = ChangeEventConfig(at=T0, until=T0 + 20 * MINUTE, title="Release 24.5", workflows=["open"])
    record_change(data, release)
    assert recorded_changes(data)[0].until == T0 + 20 * MINUTE  # kept in changes.yaml
    ev = Evaluator(data, AlertingConfig(), AlertInputs(), Names())
    alerts = ev.evaluate(T0 + 5 * MINUTE)
    assert {a["labels"]["workflow"]: a["planned"] for a in alerts} == {
        "open": "planned change 'Release 24.5'", "chart": None}
    assert {a["labels"]["workflow"]: a["silenced"] for a in ev.evaluate(T0 + 20 * MINUTE)} == {
        "open": False, "chart": False}
    with pytest.raises(ValidationError, match="until must be after at"):
        ChangeEventConfig(at=T0, until=T0, title="x")
    assert planned_windows([], [ChangeEventConfig(at=T0, title="no window")]) == []


def test_a_planned_window_is_made_once_in_a_real_alertmanager(tmp_path: Path, add_runs) -> None:
    now = dt.datetime.now(UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    release = ChangeEventConfig(at=now - MINUTE, until=now + dt.timedelta(hours=1), title="Release 24.5",
                                workflows=["open-patient-record"])
    with recorder() as hook, alertmanager(tmp_path, hook.url) as am:
        config = AlertingConfig(receivers=[AlertmanagerReceiver(name="trust-am", type="alertmanager", url=am)])
        for restart in range(3):
            ev = Evaluator(data, config, AlertInputs(changes=[release]), Names())
            ev.evaluate(now + restart * MINUTE)
            assert ev.deliver(now + restart * MINUTE) == []
        [silence] = httpx.get(f"{am}/api/v2/silences", timeout=5).json()
        assert silence["comment"] == "planned change 'Release 24.5'" and silence["status"]["state"] == "active"
        [alert] = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
        assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"] == [silence["id"]]
        time.sleep(3)  # group_wait 1 s: a notification would have arrived by now
        assert hook.bodies == []


def test_change_add_records_a_planned_window(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wardwatch.cli import main

    path = tmp_path / "wardwatch.yaml"
    path.write_text(f"store: {{path: {tmp_path / 'data'}}}\n", encoding="utf-8")
    runner = CliRunner()
    base = ["change", "add", "-c", str(path), "--at", "2026-11-14T06:00:00Z", "--title", "Release 24.5"]
    backwards = runner.invoke(main, [*base, "--until", "2026-11-14T05:00:00Z"])
    assert backwards.exit_code == 2 and "--until: until must be after at" in backwards.output
    assert runner.invoke(main, [*base, "--until", "soon"]).exit_code == 2
    made = runner.invoke(main, [*base, "--until", "2026-11-14T07:00:00Z"])
    assert made.exit_code == 0, made.output
    [change] = recorded_changes(tmp_path / "data")
    assert change.until == dt.datetime(2026, 11, 14, 7, tzinfo=UTC)


def test_alerts_once_says_which_window_silences_an_alert(tmp_path: Path, add_runs) -> None:
    from click.testing import CliRunner

    from wardwatch.cli import main

    now = dt.datetime.now(UTC).replace(microsecond=0)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open", "ward-7", "failed", 1.0) for i in range(3)])
    path = tmp_path / "wardwatch.yaml"
    path.write_text(f"""\
store: {{path: {data}}}
sites: [{{name: ward-7, timezone: Europe/London}}]
slas:
  - name: availability
    metric: availability
    target: 0.995
    exclusions: [{{start: "{(now - dt.timedelta(hours=1)).isoformat()}", end: "{(now + dt.timedelta(hours=1)).isoformat()}", title: agreed patching}}]
alerting: {{findings_days: 0}}
""", encoding="utf-8")
    result = CliRunner().invoke(main, ["alerts", "-c", str(path), "--once"])
    assert result.exit_code == 0, result.output
    assert ("firing (silenced: agreed maintenance of SLA 'availability' (agreed patching)) EveryRunFailing "
            "severity=page site=ward-7 workflow=open") in result.output
