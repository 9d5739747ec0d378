"""The demo's own alert receiver: a webhook endpoint on loopback and a page of what it received.

A trust points ``alerting.receivers`` at its on-call tool; the demo has none, so it starts this one
for every ``webhook`` receiver of its configuration whose URL is on this machine (127.0.0.1 or
localhost). It takes Alertmanager's webhook format (version 4), as any such tool does, keeps the
newest notifications in memory, and serves them at ``/`` newest first, in plain words: when it came,
firing or resolved, each alert's summary, the service owner's figures, the clinician's words and
the dashboard link. Nothing is stored: it is a window on delivery, not a record.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

__all__ = ["DemoReceiver", "loopback_webhooks", "started"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
KEEP = 200  # the newest notifications shown
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def loopback_webhooks(receivers: Iterable[Any]) -> list[tuple[str, str, int, str]]:
    """``(name, host, port, path)`` of each webhook receiver whose URL is on this machine."""
    found = []
    for receiver in receivers:
        if getattr(receiver, "type", None) != "webhook":
            continue
        parts = urlsplit(receiver.url)
        if parts.scheme == "http" and parts.hostname in _LOOPBACK:
            found.append((receiver.name, parts.hostname, parts.port or 80, parts.path or "/"))
    return found


class DemoReceiver:
    """A webhook endpoint at ``hook_path`` and the page at ``/``, on ``host:port`` (0: any free port)."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, hook_path: str = "/hook",
                 timezone: str = "Europe/London") -> None:
        self.name = name
        self.hook_path = hook_path
        self.timezone = ZoneInfo(timezone)
        self.received: deque[tuple[dt.datetime, dict[str, Any]]] = deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> DemoReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"receiver-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DemoReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def take(self, body: Any) -> str | None:
        """Keep a notification; why not when it is not Alertmanager's webhook format."""
        if not isinstance(body, dict) or body.get("version") != "4" or not isinstance(body.get("alerts"), list):
            return "not an Alertmanager webhook notification (version 4)"
        if not all(isinstance(a, dict) and isinstance(a.get("annotations", {}), dict) for a in body["alerts"]):
            return "its alerts are not objects"
        with self._lock:
            self.received.append((dt.datetime.now(dt.UTC), body))
        return None

    def page(self) -> str:
        """What was received, newest first, in plain words."""
        with self._lock:
            items = list(self.received)[::-1]
        parts = [f"<h1>Alerts received by {html.escape(self.name)}</h1>",
                 "<p>The demo's own receiver: Wardwatch delivers its alerts here as it would to a trust's "
                 "on-call tool (Alertmanager's webhook format). Newest first; this page refreshes itself.</p>"]
        if not items:
            parts.append("<p>Nothing received yet. Wardwatch judges its alerts every minute and sends a "
                         "group when it starts firing, when it changes, every few hours while it fires, and "
                         "once when it is over.</p>")
        for at, body in items:
            parts.append(_notification(at.astimezone(self.timezone), body))
        return ("<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=15>"
                f"<title>Alerts received by {html.escape(self.name)}</title><style>"
                "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;line-height:1.4}"
                "section{border-top:1px solid #ccc;padding:.5em 0}.firing{color:#b00}.resolved{color:#070}"
                "p.who{color:#555;margin:.2em 0 .2em 1em}</style></head><body>"
                + "".join(parts) + "</body></html>")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
                if self.path.split("?")[0] != receiver.hook_path:
                    return self._answer(404, "text/plain", b"no such endpoint\n")
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    return self._answer(413, "text/plain", b"too large\n")
                try:
                    problem = receiver.take(json.loads(self.rfile.read(length)))
                except ValueError:
                    problem = "not JSON"
                if problem:
                    return self._answer(400, "text/plain", f"{problem}\n".encode())
                return self._answer(200, "text/plain", b"ok\n")

            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] != "/":
                    return self._answer(404, "text/plain", b"not found\n")
                return self._answer(200, "text/html; charset=utf-8", receiver.page().encode())

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _notification(at: dt.datetime, body: Mapping[str, Any]) -> str:
    alerts = body["alerts"]
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    resolved = len(alerts) - firing
    said = ", ".join(part for part in (f"{firing} firing" if firing else "", f"{resolved} over" if resolved else "") if part)
    lines = [f"<section><h2>{at:%a} {at.day} {at:%b %H:%M:%S}: "
             f"<span class={html.escape(str(body.get('status')))}>{html.escape(said)}</span></h2>"]
    for alert in alerts:
        notes = alert.get("annotations") or {}
        state = "over" if alert.get("status") == "resolved" else "firing"
        lines.append(f"<p><b>{html.escape(state.capitalize())}: {html.escape(str(notes.get('summary', '')))}</b></p>")
        if notes.get("description"):
            lines.append(f"<p class=who>For the service owner: {html.escape(str(notes['description']))}</p>")
        if notes.get("clinician"):
            lines.append(f"<p class=who>For clinicians: {html.escape(str(notes['clinician']))}</p>")
        link = str(notes.get("dashboard", ""))
        if link.startswith(("http://", "https://")):
            lines.append(f"<p class=who><a href=\"{html.escape(link, quote=True)}\">On the dashboard</a></p>")
    return "".join(lines) + "</section>"


@contextmanager
def started(config: Any) -> Iterator[list[DemoReceiver]]:
    """A receiver for each webhook receiver of ``config.alerting`` on this machine, while inside
    (one whose port is taken is named and skipped: something else listens there)."""
    alerting = getattr(config, "alerting", None)
    running: list[DemoReceiver] = []
    try:
        for name, host, port, path in loopback_webhooks(alerting.receivers if alerting else ()):
            try:
                running.append(DemoReceiver(name, host, port, path, config.dashboard.timezone).start())
            except OSError as exc:
                log.warning("receiver %s: cannot listen on %s:%d (%s); the demo does not start it", name, host,
                            port, exc.strerror or exc)
        yield running
    finally:
        for receiver in running:
            receiver.stop()
