"""Phase timings from httpcore's trace events, and the DNS phase of the probe's own resolver."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from collector.config import SiteConfig, TargetConfig, WorkflowConfig
from collector.runner import run_workflow
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


@pytest.fixture
def silent_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A system resolver that never answers for one name (as when the DNS server is unreachable);
    yields that name. Other names resolve as usual; the blocked lookups end at teardown."""
    name = "no-answer.invalid"
    release = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield name
    release.set()


def test_name_resolution_is_cut_at_the_connect_timeout(silent_resolver):
    with httpx.Client(transport=build_transport()) as client:
        timer = PhaseTimer()
        started = time.perf_counter()
        with timer.active(), pytest.raises(httpx.ConnectError) as raised:
            client.get(f"http://{silent_resolver}:9/", timeout=0.3, extensions={"trace": timer.trace})
        elapsed_s = time.perf_counter() - started
    assert 0.3 <= elapsed_s < 3.0, elapsed_s
    timing = timer.timing()
    assert timer.dns_failed and timing.failed_phase == "dns"
    assert timing.dns_ns >= 300_000_000
    assert "no answer within 0.3 s" in str(raised.value)


def test_a_run_whose_name_does_not_resolve_in_time_fails_as_dns_within_its_step_timeout(silent_resolver, tracer):
    target = TargetConfig(base_url=f"http://{silent_resolver}:9/fhir")
    workflow = WorkflowConfig.model_validate(
        {"name": "w", "target": "t", "step_timeout_s": 0.3, "steps": [{"name": "s", "path": "/metadata"}]}
    )
    started = time.perf_counter()
    result = run_workflow(workflow, target, SiteConfig(name="ward-7", timezone="UTC"), tracer=tracer, environ={})
    assert time.perf_counter() - started < 3.0
    assert (result.status, result.error_type) == ("failed", "dns")
    assert "in time" in result.message
    # The step's 0.3 s bound the whole exchange from its first network operation: name resolution
    # had it, less the moment it took to begin.
    assert 270_000_000 <= result.steps[0].requests[0].dns_ns < 350_000_000
