"""Fault injection as a client sees it, on fresh and on kept-alive connections."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from testbed import FAULT_HEADER, TestbedServer, scenario_for_tests
from testbed.scenario import Scenario

READ = "/Patient/pat-0001"
FAULTED = "GET /Patient/{id}"


@pytest.fixture(scope="module")
def server() -> Iterator[TestbedServer]:
    with TestbedServer(scenario_for_tests(5.0), shutdown_timeout_s=1.0) as tb:
        yield tb


@pytest.fixture
def faulty(server: TestbedServer) -> Iterator[Callable[..., None]]:
    """``faulty(kind, **fields)`` puts one rule on ``GET /Patient/{id}`` via the admin endpoint;
    the rules are cleared after the test."""

    def put(kind: str, **fields: Any) -> None:
        rule = {"endpoint": FAULTED, "kind": kind, "rate": 1.0, **fields}
        response = httpx.put(f"{server.base_url}/admin/faults", json=[rule])
        assert response.status_code == 200
        assert response.json()[0]["kind"] == kind

    yield put
    assert httpx.delete(f"{server.base_url}/admin/faults").status_code == 204


@pytest.fixture(scope="module")
def token(server: TestbedServer, token_for: Callable[[TestbedServer], str]) -> str:
    return token_for(server)


class Connection:
    """A client on a fresh or a kept-alive connection; records whether a TCP connect happened."""

    def __init__(self, server: TestbedServer, token: str, kept_alive: bool,
                 timeout_s: float = 2.0) -> None:
        self.client = httpx.Client(base_url=server.fhir_url, timeout=timeout_s,
                                   headers={"Authorization": f"Bearer {token}"})
        self.connects = 0
        if kept_alive:
            self.client.get("/metadata").raise_for_status()
        self.connects = 0

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.connects += 1

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path, extensions={"trace": self._trace})

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["fresh", "kept-alive"])
def connection(request: pytest.FixtureRequest, server: TestbedServer,
               token: str) -> Iterator[Connection]:
    conn = Connection(server, token, kept_alive=request.param == "kept-alive", timeout_s=0.5)
    yield conn
    conn.close()


def _expect_connects(connection: Connection, request: pytest.FixtureRequest) -> None:
    expected = 0 if "kept-alive" in request.node.callspec.id else 1
    assert connection.connects == expected


def test_5xx(faulty: Callable[..., None], connection: Connection,
             request: pytest.FixtureRequest) -> None:
    faulty("5xx", status=503)
    response = connection.get(READ)
    _expect_connects(connection, request)
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers[FAULT_HEADER] == "5xx"
    assert connection.get("/Encounter?patient=pat-0001").status_code == 200  # other routes: fine


def test_hang_times_the_client_out(faulty: Callable[..., None], connection: Connection,
                                   request: pytest.FixtureRequest) -> None:
    faulty("hang", hang_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        connection.get(READ)
    _expect_connects(connection, request)


def test_hang_then_answers_a_patient_client(faulty: Callable[..., None], server: TestbedServer,
                                            token: str) -> None:
    faulty("hang", hang_s=0.3)
    response = httpx.get(f"{server.fhir_url}{READ}", timeout=2.0,
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3


def test_reset_is_a_transport_error(faulty: Callable[..., None], connection: Connection,
                                    request: pytest.FixtureRequest) -> None:
    faulty("reset")
    with pytest.raises(httpx.TransportError) as caught:
        connection.get(READ)
    assert isinstance(caught.value, (httpx.ReadError, httpx.RemoteProtocolError))
    assert not isinstance(caught.value, httpx.TimeoutException)
    _expect_connects(connection, request)


def test_malformed_json_is_a_200_that_does_not_parse(faulty: Callable[..., None],
                                                     connection: Connection,
                                                     request: pytest.FixtureRequest) -> None:
    faulty("malformed_json")
    response = connection.get(READ)
    _expect_connects(connection, request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content.startswith(b'{"resourceType":"Patient"')
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_401_rejects_a_valid_token(faulty: Callable[..., None], connection: Connection,
                                   request: pytest.FixtureRequest) -> None:
    faulty("401")
    response = connection.get(READ)
    _expect_connects(connection, request)
    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"


@pytest.mark.parametrize("kind", ["5xx", "hang", "reset", "malformed_json", "401"])
def test_the_connection_recovers_after_the_fault_is_cleared(
        kind: str, faulty: Callable[..., None], server: TestbedServer, token: str) -> None:
    conn = Connection(server, token, kept_alive=True, timeout_s=0.5)
    try:
        faulty(kind, hang_s=1.0)
        try:
            conn.get(READ)
        except httpx.TransportError:
            pass  # hang and reset: the client gives up or the connection is gone
        server.clear_faults()
        response = conn.get(READ)
        assert response.status_code == 200
        assert response.json()["id"] == "pat-0001"
    finally:
        conn.close()


def test_admin_endpoint_lists_replaces_and_clears(server: TestbedServer) -> None:
    url = f"{server.base_url}/admin/faults"
    assert httpx.get(url).json() == []
    rules = [{"endpoint": "GET /Encounter", "kind": "5xx", "status": 502, "rate": 0.5},
             {"endpoint": "GET /Observation*", "kind": "hang", "hang_s": 2.5,
              "sites": ["community-hospital"]}]
    try:
        assert httpx.put(url, json=rules).status_code == 200
        listed = httpx.get(url).json()
        assert [(r["endpoint"], r["kind"]) for r in listed] == [
            ("GET /Encounter", "5xx"), ("GET /Observation*", "hang")]
        assert listed[1]["sites"] == ["community-hospital"]
        assert httpx.put(url, json=[rules[0]]).json()[0]["status"] == 502  # replaces
        assert len(httpx.get(url).json()) == 1
    finally:
        assert httpx.delete(url).status_code == 204
    assert httpx.get(url).json() == []


@pytest.mark.parametrize("body", [
    b"not json", b'{"kind": "5xx"}', b'[{"kind": "teapot"}]', b'[{"kind": "5xx", "rate": 2}]',
    b'[{"kind": "5xx", "status": 404}]',
])
def test_admin_rejects_invalid_rules(server: TestbedServer, body: bytes) -> None:
    url = f"{server.base_url}/admin/faults"
    response = httpx.put(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert httpx.get(url).json() == []


def test_a_rule_can_be_limited_to_a_site(faulty: Callable[..., None], server: TestbedServer,
                                         token: str) -> None:
    faulty("5xx", status=500, sites=["community-hospital"])
    headers = {"Authorization": f"Bearer {token}"}
    wan = httpx.get(f"{server.fhir_url}{READ}",
                    headers={**headers, "X-Wardwatch-Site": "community-hospital"})
    lan = httpx.get(f"{server.fhir_url}{READ}", headers={**headers, "X-Wardwatch-Site": "ward-7"})
    assert (wan.status_code, lan.status_code) == (500, 200)


def _hits(scenario: Scenario, token_for: Callable[[TestbedServer], str], n: int = 40,
          seed: int = 7) -> list[bool]:
    with TestbedServer(scenario, seed=seed, patients=5) as tb:
        token = token_for(tb)
        with httpx.Client(base_url=tb.fhir_url,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            return [client.get(READ).status_code == 500 for _ in range(n)]


def test_rates_are_decided_by_a_seeded_rng(token_for: Callable[[TestbedServer], str]) -> None:
    scenario = scenario_for_tests(0.0, faults=[{"endpoint": FAULTED, "kind": "5xx",
                                                "rate": 0.5}])
    first = _hits(scenario, token_for)
    assert 5 < sum(first) < 35
    assert _hits(scenario, token_for) == first  # same seed, same requests: same faults
    never = scenario_for_tests(0.0, faults=[{"endpoint": FAULTED, "kind": "5xx", "rate": 0.0}])
    assert not any(_hits(never, token_for, n=10))


def test_outage_answers_503_during_its_window(token_for: Callable[[TestbedServer], str]) -> None:
    scenario = scenario_for_tests(0.0).with_overrides(outages=[{
        "name": "failover", "start": "2026-10-21T03:10:00Z", "end": "2026-10-21T03:25:00Z"}])
    inside = datetime(2026, 10, 21, 3, 12, tzinfo=UTC)
    with TestbedServer(scenario, clock=lambda: inside, patients=5) as tb:
        response = httpx.get(f"{tb.fhir_url}{READ}")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "60"
        assert response.json()["issue"][0]["code"] == "transient"
        assert httpx.post(tb.token_url, data={}).status_code == 503
