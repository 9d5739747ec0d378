"""Real receivers on loopback: a recording HTTP server, and Debian's Prometheus Alertmanager."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ALERTMANAGER = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An HTTP server that records every JSON body POSTed to it; stop and start it on one port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bodies: list[Any] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Recorder:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.bodies


@contextmanager
def recorder() -> Iterator[Recorder]:
    server = Recorder().start()
    try:
        yield server
    finally:
        server.stop()


def alertmanager_binary() -> str:
    """The Alertmanager to test against; a developer's machine without it skips, CI fails."""
    found = os.environ.get("WARDWATCH_ALERTMANAGER") or shutil.which(
        ALERTMANAGER, path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin")
    if found is None:
        if os.environ.get("WARDWATCH_REQUIRE_ALERTMANAGER") == "1":
            pytest.fail("Alertmanager is required (WARDWATCH_REQUIRE_ALERTMANAGER=1) but not installed")
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    return found


@contextmanager
def alertmanager(tmp_path: Path, webhook_url: str) -> Iterator[str]:
    """A real Alertmanager on loopback, clustering off, routing everything to ``webhook_url``."""
    binary = alertmanager_binary()
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""\
route:
  receiver: recorder
  group_by: [alertname, site, workflow]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: recorder
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
""", encoding="utf-8")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own arguments
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         "--web.external-url=http://127.0.0.1:%d" % port],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Alertmanager did not start: " + (tmp_path / "alertmanager.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
