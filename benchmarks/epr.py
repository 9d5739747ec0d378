"""The testbed EPR in its own process, as a real EPR is: the probe being measured shares no
interpreter (and no GIL) with the server. It runs in a session of its own with a server's
scheduling weight where permitted (:func:`testbed.server.prioritise_session`), so a machine
shared with other work delays the ground truth less; every contender measures the same server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from testbed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Scenario

__all__ = ["EprProcess", "fetch_token", "testbed_process"]


@dataclass(frozen=True)
class EprProcess:
    """A running testbed: its base URL (``http://127.0.0.1:PORT``) and its process id."""

    base_url: str
    pid: int

    @property
    def fhir_url(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def testbed_process(scenario: Scenario, workdir: Path, startup_timeout_s: float = 60.0) -> Iterator[EprProcess]:
    """Serve ``scenario`` on 127.0.0.1 in a child process until the block ends.

    Args:
        scenario: the testbed scenario (e.g. ``testbed.scenario_for_tests(service_ms=...)``).
        workdir: where the scenario file is written.
        startup_timeout_s: how long to wait for ``/fhir/metadata`` to answer.

    Raises:
        RuntimeError: the server did not come up.
    """
    data = scenario.model_dump(mode="json")
    data.setdefault("auth", {})["token_lifetime_s"] = 24 * 3600.0  # one token for a long benchmark
    path = workdir / "scenario.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    port = _free_port()
    code = (
        # On Linux the server ends with its parent, even one killed outright (its own session
        # would otherwise keep it running after a benchmark killed by a deadline).
        "import signal, sys\n"
        "if sys.platform == 'linux':\n"
        "    import ctypes; ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
        "from pathlib import Path; from testbed.server import prioritise_session, serve\n"
        f"prioritise_session(); serve('127.0.0.1', {port}, Path({str(path)!r}))"
    )
    # The server's log goes to a file: a pipe nobody reads while it runs could fill and stop it.
    log_path = workdir / "testbed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                httpx.get(f"{base_url}/fhir/metadata", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log_tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                    raise RuntimeError(f"the testbed did not answer on {base_url} within {startup_timeout_s:g} s "
                                       f"(exit status {process.returncode}); its log ends:\n{log_tail}") from None
                time.sleep(0.05)
        yield EprProcess(base_url, process.pid)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fetch_token(epr: EprProcess) -> str:
    """A bearer token from the testbed's OAuth2 client-credentials endpoint (its demo client)."""
    response = httpx.post(epr.token_url, data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }, timeout=10.0)
    response.raise_for_status()
    return str(response.json()["access_token"])
