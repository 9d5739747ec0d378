"""Real `wardwatch observatory` and `wardwatch probe` processes on loopback, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from store import list_segments, schema

SITES = ("ward-7", "outpatient-clinic", "community-hospital")
TOKEN_ENV = {f"WARDWATCH_SITE_TOKEN_{s.upper().replace('-', '_')}": f"token-of-{s}" for s in SITES}
ENV = {**os.environ, **TOKEN_ENV, "WARDWATCH_EPR_TOKEN_TESTBED": "token-of-the-testbed",
       "WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def observatory_config(tmp_path: Path, store: Path, extra: str = "") -> Path:
    path = tmp_path / "observatory.yaml"
    tokens = "\n".join(f"    {s}: ${{env:WARDWATCH_SITE_TOKEN_{s.upper().replace('-', '_')}}}" for s in SITES)
    sites = "\n".join(f"  - {{name: {s}, timezone: Europe/London}}" for s in SITES)
    path.write_text(f"store: {{path: {store}}}\nsites:\n{sites}\nobservatory:\n  tokens:\n{tokens}\n{extra}",
                    encoding="utf-8")
    return path


class ObservatoryProcess:
    """`wardwatch observatory --no-dashboard` in its own process; start, kill -9, start again."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> ObservatoryProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wardwatch", "observatory", "-c", str(self.config), "--port", str(self.port),
                 "--no-dashboard"], env=ENV, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the observatory exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the observatory did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def stored_ids(store: Path) -> list[tuple[str, str]]:
    ids: list[tuple[str, str]] = []
    for segment in list_segments(store):
        table = pq.read_table(segment, columns=[schema.TRACE_ID, schema.SPAN_ID])
        ids += zip(table[schema.TRACE_ID].to_pylist(), table[schema.SPAN_ID].to_pylist(), strict=True)
    return ids


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"


def site_config(tmp_path: Path, store: Path, fhir_url: str, token_url: str, *, interval_s: float | None = None) -> Path:
    """The demo's configuration aimed at a test's testbed and data directory (no think time)."""
    import yaml

    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["store"] = {"path": str(store)}
    target = document["targets"]["testbed"]
    target["base_url"] = fhir_url
    target["auth"]["token_url"] = token_url
    target["max_requests_per_min"] = 100_000
    # HTTP workflows only: a browser run's page is at the demo's fixed address, not this testbed's.
    document["workflows"] = [w for w in document["workflows"] if w.get("kind", "http") == "http"]
    # The example's alerts go to the demo's receiver (127.0.0.1:8051): a demo running beside the
    # tests would receive the tests' alerts, and a test's demo could not start its receiver there.
    document["alerting"]["receivers"] = [{"name": "demo-receiver", "type": "webhook",
                                          "url": f"http://127.0.0.1:{free_port()}/hook"}]
    for workflow in document["workflows"]:
        workflow["think_time_s"] = 0
        if interval_s is not None:
            workflow["interval_s"] = interval_s
            workflow.pop("jitter_s", None)
            workflow["timeout_s"] = min(workflow.get("timeout_s", 60), interval_s * 10)
            workflow["step_timeout_s"] = min(workflow.get("step_timeout_s", 10), workflow["timeout_s"])
    path = tmp_path / "wardwatch.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def probe_command(config: Path, observatory_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "wardwatch", "probe", "-c", str(config), "--observatory", observatory_url, *args]


def spool_counters(spool: Path) -> dict[str, int]:
    """The spool's own tally, summed over its sites: spans spooled, sent, batches dropped."""
    import sqlite3

    totals: dict[str, int] = {}
    for path in sorted(spool.glob("*.sqlite")):
        db = sqlite3.connect(path)
        try:
            for name, value in db.execute("SELECT name, value FROM counters"):
                totals[name] = totals.get(name, 0) + value
            (waiting,) = db.execute("SELECT COALESCE(SUM(spans), 0) FROM batches").fetchone()
            totals["waiting_spans"] = totals.get("waiting_spans", 0) + waiting
        finally:
            db.close()
    return totals
