"""TestbedServer's lifecycle and the blocking ``serve`` behind ``wardwatch testbed``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from testbed import TestbedServer, TestbedServerError, scenario_for_tests


def test_port_zero_picks_a_free_port_and_urls_follow() -> None:
    with (TestbedServer(scenario_for_tests(), patients=5) as one,
          TestbedServer(scenario_for_tests(), patients=5) as two):
        assert one.port != two.port
        assert one.base_url == f"http://127.0.0.1:{one.port}"
        assert one.fhir_url == f"{one.base_url}/fhir"
        assert one.token_url == f"{one.base_url}/auth/token"
        assert httpx.get(f"{one.fhir_url}/metadata").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{one.fhir_url}/metadata")


def test_a_taken_port_is_a_clear_error() -> None:
    with TestbedServer(scenario_for_tests(), patients=5) as first:
        with pytest.raises(TestbedServerError, match="cannot bind"):
            TestbedServer(scenario_for_tests(), port=first.port, patients=5).start()


def test_start_twice_is_refused_and_stop_twice_is_harmless() -> None:
    server = TestbedServer(scenario_for_tests(), patients=5).start()
    try:
        with pytest.raises(TestbedServerError, match="already started"):
            server.start()
    finally:
        server.stop()
    server.stop()
    with pytest.raises(TestbedServerError, match="not started"):
        TestbedServer(scenario_for_tests(), patients=5).base_url


def test_stop_ends_a_hanging_request_at_once() -> None:
    scenario = scenario_for_tests(faults=[{"kind": "hang", "hang_s": 60}], auth_required=False)
    server = TestbedServer(scenario, patients=5).start()
    outcome: list[BaseException | httpx.Response] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{server.fhir_url}/Patient/pat-0001", timeout=30))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    server.stop()  # must not wait the 60 s hang
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx.TransportError)


def test_tokens_expire_by_the_injected_clock() -> None:
    now = [datetime(2026, 11, 16, 9, 0, tzinfo=UTC)]
    with TestbedServer(scenario_for_tests(), clock=lambda: now[0], patients=5) as server:
        token = httpx.post(server.token_url, data={
            "grant_type": "client_credentials", "client_id": "wardwatch-probe",
            "client_secret": "testbed-demo-secret"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{server.fhir_url}/Patient/pat-0001"
        now[0] += timedelta(seconds=299)
        assert httpx.get(url, headers=headers).status_code == 200
        now[0] += timedelta(seconds=1)
        expired = httpx.get(url, headers=headers)
        assert expired.status_code == 401
        assert "expired" in expired.json()["issue"][0]["diagnostics"]


def test_auth_can_be_switched_off_for_tests() -> None:
    with TestbedServer(scenario_for_tests(auth_required=False), patients=5) as server:
        assert httpx.get(f"{server.fhir_url}/Patient/pat-0001").status_code == 200


def test_admin_delay_explains_the_model(testbed_server: TestbedServer) -> None:
    response = httpx.get(f"{testbed_server.base_url}/admin/delay", params={
        "endpoint": "GET /Patient/{id}", "site": "ward-7", "at": "2026-11-16T08:30:00+00:00"})
    assert response.status_code == 200
    body = response.json()
    assert body["total_s"] == 0.0
    assert body["local_time"] == "2026-11-16T08:30:00+00:00"
    assert httpx.get(f"{testbed_server.base_url}/admin/delay").status_code == 400
    assert httpx.get(f"{testbed_server.base_url}/admin/delay",
                     params={"endpoint": "GET /Patient", "at": "yesterday"}).status_code == 400


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: cli\nservice_ms: {default: 1}\nauth: {required: false}\n")
    port = _free_port()
    code = ("from pathlib import Path; import testbed; "
            f"testbed.serve('127.0.0.1', {port}, Path({str(scenario)!r}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/fhir/Patient/pat-0001")
                break
            except httpx.ConnectError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200  # the scenario file was used: auth is off
        assert response.headers["x-wardwatch-modelled-delay-ms"] == "1.000"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_a_burst_of_sigterms_stops_serve(tmp_path: Path) -> None:
    """The shutdown flag is set on the event loop, not in the signal handler: set there, a
    second signal arriving while the first was handled deadlocked on the flag's lock."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: cli\nservice_ms: {default: 1}\nauth: {required: false}\n")
    port = _free_port()
    code = ("from pathlib import Path; import testbed; "
            f"testbed.serve('127.0.0.1', {port}, Path({str(scenario)!r}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/fhir/metadata")
                break
            except httpx.ConnectError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for _ in range(300):
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)  # raises TimeoutExpired if it hung
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM  # as uvicorn ends on SIGTERM
