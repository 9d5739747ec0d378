"""The key promise: the delay a client measures is the delay the model gives."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from testbed import DELAY_HEADER, SITE_HEADER, TestbedServer, load_scenario, modelled_delay
from testbed.scenario import scenario_for_tests

TOLERANCE_S = 0.005
REQUESTS = 10
FIXED_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a quiet Sunday noon in London


def _measure(client: httpx.Client, base_url: str, path: str, site: str,
             n: int = REQUESTS) -> tuple[float, float, float]:
    """Time ``n`` requests on a warm connection.

    Returns the median wall time of the modelled request, the median wall time of an unmodelled
    request (``GET /admin/faults``: no delay, same connection, interleaved) — the client's and the
    loopback's own cost — and the modelled delay the server reported (all seconds).
    """
    headers = {SITE_HEADER: site}
    client.get(path, headers=headers).raise_for_status()  # warm the connection
    samples, baseline, header_ms = [], [], set()
    for _ in range(n):
        started = time.perf_counter()
        client.get(f"{base_url}/admin/faults").raise_for_status()
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        header_ms.add(response.headers[DELAY_HEADER])
    assert len(header_ms) == 1  # a fixed clock gives one modelled value
    return statistics.median(samples), statistics.median(baseline), float(header_ms.pop()) / 1000


def _assert_matches(measured_s: float, baseline_s: float, model_s: float) -> None:
    """The server never answers early, and the wait it adds is the model within 5 ms."""
    assert measured_s >= model_s, (measured_s, model_s)
    assert abs((measured_s - baseline_s) - model_s) < TOLERANCE_S, (measured_s, baseline_s,
                                                                     model_s)
    assert measured_s - model_s < 3 * TOLERANCE_S, (measured_s, model_s)


@pytest.fixture(scope="module")
def flat_server(token_for) -> Iterator[tuple[TestbedServer, str]]:  # type: ignore[no-untyped-def]
    scenario = scenario_for_tests(
        50.0,
        service_ms={"GET /Patient/{id}": 120.0, "GET /Observation": 60.0},
        network_ms={"ward-7": 2.0, "community-hospital": 80.0},
    )
    with TestbedServer(scenario, clock=lambda: FIXED_NOW) as server:
        yield server, token_for(server)


@pytest.mark.parametrize(("path", "endpoint", "site", "expected_s"), [
    ("/Patient/pat-0001", "GET /Patient/{id}", "ward-7", 0.122),
    ("/Patient/pat-0001", "GET /Patient/{id}", "community-hospital", 0.200),
    ("/Observation?patient=pat-0001&category=vital-signs&_sort=-date&_count=10",
     "GET /Observation", "community-hospital", 0.140),
    ("/AllergyIntolerance?patient=pat-0001", "GET /AllergyIntolerance", "ward-7", 0.052),
])
def test_measured_delay_matches_the_flat_model(flat_server: tuple[TestbedServer, str], path: str,
                                               endpoint: str, site: str,
                                               expected_s: float) -> None:
    server, token = flat_server
    with httpx.Client(base_url=server.fhir_url,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        median_s, baseline_s, header_s = _measure(client, server.base_url, path, site)
    assert header_s == pytest.approx(expected_s, abs=1e-6)
    _assert_matches(median_s, baseline_s, expected_s)


def test_measured_delay_matches_the_default_model_at_a_fixed_time(token_for) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario()
    with TestbedServer(scenario, clock=lambda: FIXED_NOW) as server:
        token = token_for(server)
        with httpx.Client(base_url=server.fhir_url,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            measured = {}
            for site in ("ward-7", "community-hospital"):
                median_s, baseline_s, header_s = _measure(client, server.base_url,
                                                          "/Patient/pat-0002", site)
                model = modelled_delay("GET /Patient/{id}", site, FIXED_NOW, scenario)
                assert header_s == pytest.approx(model.total_s, abs=1e-6)
                _assert_matches(median_s, baseline_s, model.total_s)
                measured[site] = median_s - baseline_s
    # the WAN site waits longer by its network delay (78 ms more than Ward 7's LAN) give or take
    # the jitter, which differs per site
    difference_s = measured["community-hospital"] - measured["ward-7"]
    jitter_s = scenario.jitter_ms / 1000
    assert 0.078 - jitter_s - TOLERANCE_S < difference_s < 0.078 + jitter_s + TOLERANCE_S


def test_without_sleep_the_model_is_reported_but_not_waited(token_for) -> None:  # type: ignore[no-untyped-def]
    scenario = scenario_for_tests(400.0)
    with TestbedServer(scenario, sleep=False) as server:
        token = token_for(server)
        started = time.perf_counter()
        response = httpx.get(f"{server.fhir_url}/Patient/pat-0001",
                             headers={"Authorization": f"Bearer {token}"})
        elapsed_s = time.perf_counter() - started
    assert float(response.headers[DELAY_HEADER]) == pytest.approx(400.0)
    assert elapsed_s < 0.4
