"""Receiver `type: apprise`: a group's notification through the apprise library (its json:// service
posting to a recording server on loopback); URLs only as secret references."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from tests.alerting.servers import recorder
from wardwatch.cli import main


def test_a_firing_group_through_apprise(tmp_path: Path, add_runs, monkeypatch) -> None:
    now = dt.datetime.now(dt.UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    with recorder() as chat:
        monkeypatch.setenv("WARDWATCH_CHAT_URL", f"json://127.0.0.1:{chat.port}/hook")
        path = tmp_path / "wardwatch.yaml"
        path.write_text(f"store: {{path: {data}}}\nsites: [{{name: ward-7, timezone: Europe/London, title: Ward 7}}]\n"
                        "alerting:\n  receivers:\n"
                        "    - {name: ward-chat, type: apprise, urls: [\"${env:WARDWATCH_CHAT_URL}\"]}\n",
                        encoding="utf-8")
        result = CliRunner().invoke(main, ["alerts", "-c", str(path), "--once"])
        assert result.exit_code == 0, result.output
        [message] = chat.bodies
    assert message["title"] == "[FIRING:1] Every run of Open patient record at Ward 7 is failing"
    assert "For clinicians: Open patient record is not working at Ward 7 since" in message["message"]


def test_an_apprise_url_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wardwatch.yaml"
    path.write_text("alerting:\n  receivers:\n    - {name: c, type: apprise, urls: [\"slack://T0/B0/token-abc\"]}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 2 and "alerting.receivers.0.urls: Value error, write each URL as a secret reference" in result.output
    assert "token-abc" not in result.output
