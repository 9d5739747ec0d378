"""Fixtures for the testbed's tests: a running server on a free loopback port, and a token."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from testbed import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    TestbedServer,
    scenario_for_tests,
)


def fetch_token(server: TestbedServer) -> str:
    """A bearer token from the server's token endpoint (default demo credentials)."""
    response = httpx.post(server.token_url, data={
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    })
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="session")
def testbed_server() -> Iterator[TestbedServer]:
    """A testbed with no modelled delay (flat 0 ms), shared by the whole session; do not add
    faults to it (fault tests start their own)."""
    with TestbedServer(scenario_for_tests(0.0)) as server:
        yield server


@pytest.fixture(scope="session")
def token(testbed_server: TestbedServer) -> str:
    return fetch_token(testbed_server)


@pytest.fixture(scope="session")
def token_for() -> Callable[[TestbedServer], str]:
    """``token_for(server)`` fetches a token from another testbed server."""
    return fetch_token


@pytest.fixture
def fhir(testbed_server: TestbedServer, token: str) -> Iterator[httpx.Client]:
    """An authorised client whose base URL is the FHIR base."""
    with httpx.Client(base_url=testbed_server.fhir_url,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
