"""`wardwatch alerts -c FILE --once` and the `alerting` section of the configuration file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from alerting.state import STATE_FILE
from wardwatch.cli import main

CONFIG = """\
store: {{path: {data}}}
sites:
  - {{name: ward-7, timezone: Europe/London, title: Ward 7}}
alerting:
  receivers:
    - {{name: desk, type: webhook, url: "http://127.0.0.1:9/hook"}}
  routes:
    - matchers: {{severity: page}}
      receivers: [{route}]
"""


def _write(tmp_path: Path, data: Path, route: str = "desk") -> Path:
    path = tmp_path / "wardwatch.yaml"
    path.write_text(CONFIG.format(data=data, route=route), encoding="utf-8")
    return path


def test_a_route_to_an_unknown_receiver_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, tmp_path / "data", route="pager")
    result = CliRunner().invoke(main, ["alerts", "-c", str(path), "--once"])
    assert result.exit_code == 2
    assert f"{path}:9:19: alerting.routes.0.receivers.0: no receiver named 'pager' (known: desk)" in result.output


def test_an_unknown_receiver_type_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, tmp_path / "data")
    path.write_text(path.read_text().replace("type: webhook", "type: pager"), encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 2
    assert f"{path}:6:" in result.output and "alerting.receivers.0" in result.output


def test_once_evaluates_lists_and_keeps_what_it_could_not_deliver(tmp_path: Path, add_runs) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open", "ward-7", "failed", 1.0) for i in range(3)])
    path = _write(tmp_path, data)
    result = CliRunner().invoke(main, ["alerts", "-c", str(path), "--once"])
    # nothing listens on port 9: the notification is kept for the next attempt, exit 1
    assert result.exit_code == 1, result.output
    assert "firing   EveryRunFailing severity=page site=ward-7 workflow=open: Every run of Open at Ward 7 is failing" in result.output
    assert "receiver desk: ConnectError; retrying" in result.output
    state = json.loads((data / STATE_FILE).read_text())
    [item] = state["outbox"]
    assert item["receiver"] == "desk" and item["attempts"] == 1
