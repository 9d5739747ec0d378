"""End to end over the testbed's model: an alert fires during the ward-round slowdown and resolves
after it; each group is notified once when it fires, on each change, each repeat interval and
once resolved, across restarts of the evaluator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from tests.alerting.servers import recorder
from wardwatch import simulate
from wardwatch.alerts import evaluator
from wardwatch.config import load_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "testbed.yaml"
UTC = dt.UTC
DAY = dt.datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday; London is on UTC in winter
ENV = {"WARDWATCH_TESTBED_CLIENT_SECRET": "x", "WARDWATCH_SITE_TOKEN_WARD_7": "a",
       "WARDWATCH_SITE_TOKEN_OUTPATIENT_CLINIC": "b", "WARDWATCH_SITE_TOKEN_COMMUNITY_HOSPITAL": "c",
       "WARDWATCH_EPR_TOKEN_TESTBED": "d"}


def _config(tmp_path: Path, hook_url: str):
    """The demo's configuration, probing only the record at the community hospital (3.4 s in ward
    rounds, by the testbed's model), held to an objective of 99% within 3 s in ward rounds."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["store"]["path"] = str(tmp_path / "data")
    document["workflows"] = [{**w, "sites": ["community-hospital"]} for w in document["workflows"]
                             if w["name"] == "open-patient-record"]
    document["objectives"] = [{"name": "records open within 3 s on ward rounds", "workflow": "open-patient-record",
                               "threshold_s": 3, "target": 0.99, "periods": ["ward rounds"],
                               "sites": ["community-hospital"]}]
    document["slas"], document["task_volumes"], document["changes"] = [], [], []
    document["alerting"] = {"findings_days": 0, "group_interval_s": 300, "repeat_interval_s": 14_400,
                            "receivers": [{"name": "desk", "type": "webhook", "url": hook_url}]}
    path = tmp_path / "wardwatch.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path, environ=ENV)


def test_the_ward_round_slowdown_fires_and_resolves_notified_once_each(tmp_path: Path) -> None:
    with recorder() as hook:
        config = _config(tmp_path, hook.url)
        simulate.simulate_history(config, days=1, end=DAY + dt.timedelta(hours=17), interval_s=0, workers=1)
        sent_at = []
        ev = evaluator(config)
        for minute in range(7 * 60 + 50, 17 * 60, 2):  # 07:50 to 17:00, every two minutes
            at = DAY + dt.timedelta(minutes=minute)
            if minute % 14 == 0:
                ev = evaluator(config)  # a restart: the state is read back from the data directory
            ev.evaluate(at)
            before = len(hook.bodies)
            assert ev.deliver(at) == []
            sent_at += [at] * (len(hook.bodies) - before)
    bodies = hook.bodies
    said = [(at.strftime("%H:%M"), b["status"],
             sorted(a["labels"]["window"] for a in b["alerts"] if a["status"] == "firing"),
             sorted(a["labels"]["window"] for a in b["alerts"] if a["status"] == "resolved"))
            for at, b in zip(sent_at, bodies, strict=True)]
    # one group (ObjectiveBurnRate at the community hospital for the record); its three alerts fire
    # within minutes of 08:00, when every run takes 3.4 s
    assert {b["groupKey"] for b in bodies} == {
        '{}:{alertname="ObjectiveBurnRate", site="community-hospital", workflow="open-patient-record"}'}
    first = said[0]
    assert first[0] <= "08:06" and first[1:] == ("firing", ["1h", "3d", "6h"], [])
    # after the ward round: the fast page resolves when its 5 minutes hold no ward-round run, the
    # 6-hour page when its 30 minutes hold none, the 3-day ticket when its 6 hours hold none
    changes = [s for s in said[1:] if s[3]]
    assert [(s[2], s[3]) for s in changes] == [(["3d", "6h"], ["1h"]), (["3d"], ["6h"]), ([], ["3d"])]
    assert "10:30" < changes[0][0] <= "10:40" and "10:55" < changes[1][0] <= "11:05"
    assert "16:25" < changes[2][0] <= "16:35" and changes[2][1] == "resolved"
    # still firing four hours after the last notification of the group: one repeat, no more
    repeats = [s for s in said[1:] if not s[3]]
    assert [(s[1], s[2]) for s in repeats] == [("firing", ["3d"])]
    assert repeats[0][0] == (dt.datetime.strptime(changes[1][0], "%H:%M") + dt.timedelta(hours=4)).strftime("%H:%M")
    # every alert: notified firing, then resolved, once each
    for window in ("1h", "6h", "3d"):
        resolved = [s for s in said if window in s[3]]
        assert len(resolved) == 1
    assert len(bodies) == 5
