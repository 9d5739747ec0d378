"""Receiver `type: email`: a group's notification through SMTP, against aiosmtpd on loopback."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from tests.alerting.servers import free_port
from wardwatch.cli import main

PASSWORD = "smtp-password-never-in-a-message"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_firing_alert_by_email_with_a_password_from_the_environment(tmp_path: Path, add_runs, monkeypatch) -> None:
    now = dt.datetime.now(dt.UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open-patient-record", "ward-7", "failed", 1.0)
                     for i in range(3)])
    inbox = Inbox()
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == PASSWORD.encode())

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        monkeypatch.setenv("WARDWATCH_SMTP_PASSWORD", PASSWORD)
        path = tmp_path / "wardwatch.yaml"
        path.write_text(f"""\
store: {{path: {data}}}
sites: [{{name: ward-7, timezone: Europe/London, title: Ward 7}}]
alerting:
  receivers:
    - name: ward-managers
      type: email
      host: 127.0.0.1
      port: {port}
      starttls: false
      sender: wardwatch@trust.example
      to: [ward7-managers@trust.example]
      username: wardwatch
      password: "${{env:WARDWATCH_SMTP_PASSWORD}}"
""", encoding="utf-8")
        result = CliRunner().invoke(main, ["alerts", "-c", str(path), "--once"])
        assert result.exit_code == 0, result.output
    finally:
        controller.stop()
    assert logins == [(b"wardwatch", PASSWORD.encode())]
    [(sender, to, raw)] = inbox.messages
    assert sender == "wardwatch@trust.example" and to == ["ward7-managers@trust.example"]
    message = message_from_bytes(raw)
    assert message["Subject"] == "[FIRING:1] Every run of Open patient record at Ward 7 is failing"
    text = message.get_payload(decode=True).decode()
    assert "For clinicians: Open patient record is not working at Ward 7 since" in text
    assert PASSWORD not in raw.decode()


def test_a_password_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wardwatch.yaml"
    path.write_text("alerting:\n  receivers:\n    - {name: m, type: email, host: smtp, sender: a@b.c, to: [d@e.f],"
                    " password: hunter2}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 2 and "alerting.receivers.0.password: Value error, write a secret reference" in result.output
    assert "hunter2" not in result.output
