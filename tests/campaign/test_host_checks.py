"""DNS rebinding (issue 18 item 16): the dashboard and the testbed on 127.0.0.1 answered any
``Host`` (``evil.example``) and the testbed's unauthenticated ``PUT /admin/faults`` any ``Origin``.
Both now answer only to the addresses they serve (and configured allowed hosts), and the
testbed's admin endpoints refuse cross-origin requests. Real servers on loopback, real requests.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import testbed
from dashboard import DashboardServer, create_app
from dashboard.app import host_allowed
from store import write_spans
from tests.campaign.support import write_config
from wardwatch import wiring
from wardwatch.config import load_config

FAULT = [{"endpoint": "GET /Patient/{id}", "kind": "5xx", "status": 503, "rate": 1.0}]


@pytest.fixture(scope="module")
def epr() -> testbed.TestbedServer:
    with testbed.TestbedServer(sleep=False, patients=5, allowed_hosts=["epr-testbed.ward7.example"]) as server:
        yield server


def test_the_testbed_refuses_a_foreign_host(epr: testbed.TestbedServer) -> None:
    base = epr.base_url
    assert httpx.get(f"{base}/fhir/metadata").status_code == 200
    assert httpx.get(f"{base}/fhir/metadata", headers={"Host": f"localhost:{epr.port}"}).status_code == 200
    assert httpx.get(f"{base}/fhir/metadata", headers={"Host": "epr-testbed.ward7.example"}).status_code == 200
    for host in ("evil.example", f"evil.example:{epr.port}", "127.0.0.1.evil.example", ""):
        response = httpx.get(f"{base}/fhir/metadata", headers={"Host": host})
        assert response.status_code in (400, 421), (host, response.status_code)
        response = httpx.put(f"{base}/admin/faults", json=FAULT, headers={"Host": host})
        assert response.status_code in (400, 421), host
    assert list(epr.state.faults.rules) == []


def test_the_testbed_admin_refuses_cross_origin_requests(epr: testbed.TestbedServer) -> None:
    base = epr.base_url
    for origin in ("http://evil.example", f"http://localhost:{epr.port + 1}", "null"):
        for method in ("PUT", "DELETE", "GET"):
            response = httpx.request(method, f"{base}/admin/faults", json=FAULT, headers={"Origin": origin})
            assert response.status_code == 403, (origin, method)
    assert list(epr.state.faults.rules) == []
    same_origin = httpx.put(f"{base}/admin/faults", json=FAULT, headers={"Origin": base})
    assert same_origin.status_code == 200 and len(epr.state.faults.rules) == 1
    assert httpx.delete(f"{base}/admin/faults").status_code == 204  # a script, no Origin: as before
    # FHIR reads from a web front end on another origin are not admin: they still answer
    assert httpx.get(f"{base}/fhir/metadata", headers={"Origin": "http://evil.example"}).status_code == 200


def test_a_delay_query_before_year_one_in_utc_is_a_bad_request(epr: testbed.TestbedServer) -> None:
    """``0001-01-01T00:00:00+14:00`` is in year 0 once in UTC: it answered 500 (OverflowError)."""
    response = httpx.get(f"{epr.base_url}/admin/delay",
                         params={"endpoint": "GET /Patient/{id}", "at": "0001-01-01T00:00:00+14:00"})
    assert response.status_code == 400 and "bad at" in response.json()["error"]


@pytest.fixture
def dashboard(tmp_path: Path):
    data = tmp_path / "data"
    write_spans(data, [{"Timestamp": 1_795_000_000 * 10**9, "TraceId": "1" * 32, "SpanId": "2" * 16}])
    config = write_config(tmp_path / "wardwatch.yaml", "http://127.0.0.1:9", data)
    context = wiring.dashboard_context(load_config(config), config.parent)
    with DashboardServer(create_app(context), port=0, allowed_hosts=["wardwatch.ward7.example"]) as server:
        yield server


def test_the_dashboard_refuses_a_foreign_host_and_cross_origin_changes(dashboard: DashboardServer) -> None:
    base = dashboard.url.rstrip("/")
    port = dashboard.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "wardwatch.ward7.example"):
        assert httpx.get(f"{base}/_dash-layout", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "10.0.0.1"):
        assert httpx.get(f"{base}/", headers={"Host": host}).status_code == 421, host
        assert httpx.get(f"{base}/_dash-layout", headers={"Host": host}).status_code == 421, host
    update = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [], "changedPropIds": []}
    refused = httpx.post(f"{base}/_dash-update-component", json=update, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    same_site = httpx.post(f"{base}/_dash-update-component", json=update, headers={"Origin": base})
    assert same_site.status_code != 403


@pytest.mark.parametrize(("host", "bound", "allowed", "ok"), [
    ("127.0.0.1:8050", "127.0.0.1", (), True),
    ("[::1]:8050", "127.0.0.1", (), True),
    ("LOCALHOST:8050", "127.0.0.1", (), True),
    ("evil.example:8050", "127.0.0.1", (), False),
    ("10.0.0.7:8050", "0.0.0.0", (), True),  # an address cannot be rebound
    ("wardwatch.example", "0.0.0.0", (), False),
    ("wardwatch.example", "0.0.0.0", ("Wardwatch.example",), True),
    ("10.0.0.8", "10.0.0.7", (), False),
    ("", "127.0.0.1", (), False),
])
def test_host_allowed(host: str, bound: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, bound, allowed) is ok
    assert testbed.hostguard.host_allowed(host, bound, allowed) is ok


def test_wardwatch_testbed_answers_the_names_it_is_told(tmp_path: Path) -> None:
    import socket
    import subprocess
    import time

    from tests.campaign.support import WARDWATCH, child_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "testbed.log").open("w")
    server = subprocess.Popen([*WARDWATCH, "testbed", "--port", str(port), "--allow-host", "epr.ward7.example"],
                              stdout=log, stderr=subprocess.STDOUT, env=child_env())
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/fhir/metadata", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "testbed.log").read_text()
                time.sleep(0.1)
        assert httpx.get(f"{base}/fhir/metadata", headers={"Host": "epr.ward7.example"}).status_code == 200
        assert httpx.get(f"{base}/fhir/metadata", headers={"Host": "evil.example"}).status_code == 421
        assert httpx.put(f"{base}/admin/faults", json=FAULT, headers={"Origin": "http://evil.example"}).status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
