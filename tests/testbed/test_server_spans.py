"""Server spans: one SERVER span per request, continuing the caller's W3C trace."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from testbed import TestbedServer, scenario_for_tests

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[TestbedServer, InMemorySpanExporter, str]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestbedServer(scenario_for_tests(5.0), tracer_provider=provider) as server:
        token = httpx.post(server.token_url, data={
            "grant_type": "client_credentials", "client_id": "wardwatch-probe",
            "client_secret": "testbed-demo-secret"}).json()["access_token"]
        yield server, exporter, token
    provider.shutdown()


def _wait_for_span(exporter: InMemorySpanExporter, name: str, timeout_s: float = 2.0
                   ) -> ReadableSpan:
    """The span ends just after the response is sent: wait for it briefly."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        spans = [s for s in exporter.get_finished_spans() if s.name == name]
        if spans:
            return spans[-1]
        time.sleep(0.01)
    raise AssertionError(f"no span named {name!r}; have "
                         f"{[s.name for s in exporter.get_finished_spans()]}")


def test_a_request_with_traceparent_joins_the_callers_trace(
        traced: tuple[TestbedServer, InMemorySpanExporter, str]) -> None:
    server, exporter, token = traced
    exporter.clear()
    response = httpx.get(f"{server.fhir_url}/Patient/pat-0017", headers={
        "Authorization": f"Bearer {token}",
        "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
    })
    assert response.status_code == 200
    span = _wait_for_span(exporter, "GET /fhir/Patient/{id}")
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.parent.is_remote
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/fhir/Patient/{id}"
    assert attributes["url.template"] == "/fhir/Patient/{id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["wardwatch.testbed.modelled_delay_s"] == pytest.approx(0.005)
    # no raw ids, query values or tokens anywhere in the span
    for value in attributes.values():
        assert "pat-0017" not in str(value)
        assert token not in str(value)


def test_a_request_without_traceparent_starts_a_new_trace(
        traced: tuple[TestbedServer, InMemorySpanExporter, str]) -> None:
    server, exporter, token = traced
    exporter.clear()
    httpx.get(f"{server.fhir_url}/Observation",
              params={"patient": "pat-0003", "category": "vital-signs"},
              headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    span = _wait_for_span(exporter, "GET /fhir/Observation")
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE_ID
    assert all("pat-0003" not in str(v) for v in (span.attributes or {}).values())


def test_error_responses_are_recorded_on_the_span(
        traced: tuple[TestbedServer, InMemorySpanExporter, str]) -> None:
    server, exporter, _ = traced
    exporter.clear()
    assert httpx.get(f"{server.fhir_url}/Patient/pat-0001").status_code == 401
    span = _wait_for_span(exporter, "GET /fhir/Patient/{id}")
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 401
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's error
    server.set_faults([{"endpoint": "GET /Encounter", "kind": "5xx", "status": 502}])
    try:
        assert httpx.get(f"{server.fhir_url}/Encounter").status_code == 502
    finally:
        server.clear_faults()
    span = _wait_for_span(exporter, "GET /fhir/Encounter")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "502"
    assert span.attributes["wardwatch.testbed.fault"] == "5xx"


def test_the_token_endpoint_has_a_span_too(
        traced: tuple[TestbedServer, InMemorySpanExporter, str]) -> None:
    server, exporter, _ = traced
    exporter.clear()
    httpx.post(server.token_url, data={"grant_type": "client_credentials"})
    span = _wait_for_span(exporter, "POST /auth/token")
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 401


def test_attribute_names_match_the_store_schema() -> None:
    """The testbed spells semantic-convention keys itself (it imports nothing of ours)."""
    schema = pytest.importorskip("store.schema")
    from testbed import middleware

    assert middleware.HTTP_REQUEST_METHOD == schema.HTTP_REQUEST_METHOD
    assert middleware.HTTP_RESPONSE_STATUS_CODE == schema.HTTP_RESPONSE_STATUS_CODE
    assert middleware.URL_TEMPLATE == schema.URL_TEMPLATE
    assert middleware.ERROR_TYPE == schema.ERROR_TYPE


def test_the_span_is_finished_before_the_client_has_the_response(
        traced: tuple[TestbedServer, InMemorySpanExporter, str]) -> None:
    """So a test that clears its exporter between requests never sees a late span."""
    server, exporter, token = traced
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(20):
            exporter.clear()
            client.get(f"{server.fhir_url}/AllergyIntolerance",
                       params={"patient": "pat-0001"}).raise_for_status()
            names = [s.name for s in exporter.get_finished_spans()]
            assert names == ["GET /fhir/AllergyIntolerance"]


def test_the_server_span_leaves_out_the_sites_network_delay(
        token_for: Callable[[TestbedServer], str]) -> None:
    """The EPR's own telemetry sees service time; the WAN site's probe sees service + network."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    scenario = scenario_for_tests(30.0, network_ms={"community-hospital": 200.0})
    with TestbedServer(scenario, tracer_provider=provider, patients=5) as server:
        token = token_for(server)
        exporter.clear()
        with httpx.Client(headers={"Authorization": f"Bearer {token}",
                                   "X-Wardwatch-Site": "community-hospital"}) as client:
            client.get(f"{server.fhir_url}/metadata")
            exporter.clear()
            started_ns = time.time_ns()
            client.get(f"{server.fhir_url}/Patient/pat-0001").raise_for_status()
            finished_ns = time.time_ns()
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.start_time is not None and span.end_time is not None
    server_s = (span.end_time - span.start_time) / 1e9
    assert 0.030 <= server_s < 0.030 + 0.050  # service time, not the 230 ms the client waits
    assert (finished_ns - started_ns) / 1e9 >= 0.230
    assert span.start_time - started_ns >= 100_000_000  # half the network delay: inbound
    assert finished_ns - span.end_time >= 100_000_000  # and outbound
