"""Alert state: pending, firing, resolved, kept across a restart of the evaluator, written whole."""

from __future__ import annotations

import datetime as dt
import json

from alerting.config import AlertingConfig
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from alerting.state import STATE_FILE

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def _failing_runs(add_runs):
    return add_runs([(T0 + i * MINUTE, "open", "ward-7", "failed", 1.0) for i in range(3)])


def test_pending_then_firing_then_resolved_across_restarts(add_runs) -> None:
    path = _failing_runs(add_runs)
    config = AlertingConfig(for_s=120)

    def evaluator():
        return Evaluator(path, config, AlertInputs(), Names())

    [alert] = evaluator().evaluate(T0 + 3 * MINUTE)
    assert alert["status"] == "pending" and alert["since"] == (T0 + 3 * MINUTE).isoformat()
    [alert] = evaluator().evaluate(T0 + 4 * MINUTE)  # a restart: still pending since the same moment
    assert alert["status"] == "pending" and alert["since"] == (T0 + 3 * MINUTE).isoformat()
    [alert] = evaluator().evaluate(T0 + 5 * MINUTE)
    assert alert["status"] == "firing" and alert["firing_since"] == (T0 + 5 * MINUTE).isoformat()
    assert "Every run of Open at ward-7 is failing" == alert["annotations"]["summary"]
    add_runs([(T0 + 5 * MINUTE, "open", "ward-7", "ok", 1.0)])
    assert evaluator().evaluate(T0 + 6 * MINUTE) == []
    saved = json.loads((path / STATE_FILE).read_text())
    [record] = saved["alerts"].values()
    assert record["status"] == "resolved" and record["resolved_at"] == (T0 + 6 * MINUTE).isoformat()
    assert "working normally again" in record["annotations"]["clinician"]
    assert [p.name for p in (path / STATE_FILE).parent.iterdir()] == ["state.json"]  # no temporary left


def test_a_condition_gone_while_pending_is_forgotten(add_runs) -> None:
    path = _failing_runs(add_runs)
    ev = Evaluator(path, AlertingConfig(for_s=600), AlertInputs(), Names())
    ev.evaluate(T0 + 3 * MINUTE)
    add_runs([(T0 + 3 * MINUTE, "open", "ward-7", "ok", 1.0)])
    ev.evaluate(T0 + 4 * MINUTE)
    assert ev.state["alerts"] == {}


def test_no_store_yet_is_nothing_to_judge(tmp_path) -> None:
    assert Evaluator(tmp_path / "empty", AlertingConfig(), AlertInputs(), Names()).evaluate(T0) == []
