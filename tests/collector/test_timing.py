"""Phase timings from httpcore's trace events, and the DNS phase of the probe's own resolver."""

from __future__ import annotations

import httpx
import pytest

from collector.timing import PhaseTimer, TimedResolverBackend, build_transport


def get(url: str, client: httpx.Client) -> tuple[httpx.Response, PhaseTimer]:
    timer = PhaseTimer()
    with timer.active():
        response = client.get(url, extensions={"trace": timer.trace})
    return response, timer


def test_transport_uses_the_timed_resolver():
    transport = build_transport()
    assert isinstance(transport._pool._network_backend, TimedResolverBackend)


def test_host_name_is_resolved_and_timed_separately(mini_url):
    port = mini_url.rsplit(":", 1)[1]
    with httpx.Client(transport=build_transport()) as client:
        response, timer = get(f"http://localhost:{port}/fhir/delay?ms=20", client)
    timing = timer.timing()
    assert response.status_code == 200
    assert timing.connected and timing.dns_ns > 0 and timing.connect_ns > 0
    assert timing.tls_ns == 0
    assert timing.ttfb_ns >= 20_000_000
    assert timing.total_ns == timing.dns_ns + timing.connect_ns + timing.ttfb_ns + timing.transfer_ns


def test_keep_alive_reuses_the_connection_and_fresh_does_not(mini_url):
    for keep_alive, expected in ((True, [True, False, False]), (False, [True, True, True])):
        with httpx.Client(transport=build_transport(keep_alive=keep_alive)) as client:
            connected = [get(f"{mini_url}/fhir/delay", client)[1].timing().connected for _ in range(3)]
        assert connected == expected


def test_ip_literal_has_no_dns_phase(mini_url):
    with httpx.Client(transport=build_transport()) as client:
        _, timer = get(f"{mini_url}/fhir/delay", client)
    assert timer.timing().dns_ns == 0


def test_failed_resolution_is_marked_as_dns():
    with httpx.Client(transport=build_transport()) as client:
        timer = PhaseTimer()
        with timer.active(), pytest.raises(httpx.ConnectError):
            client.get("http://no-such-host.invalid/", extensions={"trace": timer.trace})
    assert timer.dns_failed and timer.timing().failed_phase == "dns"


def test_phases_of_a_failed_request_end_where_it_failed(reset_url):
    with httpx.Client(transport=build_transport()) as client:
        timer = PhaseTimer()
        with timer.active(), pytest.raises(httpx.TransportError):
            client.get(reset_url, extensions={"trace": timer.trace})
    timing = timer.timing()
    assert timing.failed_phase == "ttfb"
    assert timing.connect_ns > 0 and timing.ttfb_ns > 0
