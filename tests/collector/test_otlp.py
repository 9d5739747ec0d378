"""Spans leave the probe over OTLP/HTTP to a real receiver started by the test; an unreachable
OTLP endpoint never blocks probing and never costs the local copy."""

from __future__ import annotations

import gzip
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.probe import Probe
from store import schema

SECRET = "testbed-demo-secret"


def receiver_app() -> Starlette:
    """An OTLP/HTTP traces receiver (protobuf) that keeps every request, raw and decoded."""
    received: list[tuple[bytes, ExportTraceServiceRequest]] = []

    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        received.append((body, message))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    app.state.received = received
    return app


def probe_for(example: Any, exporters: list[Any]) -> Probe:
    workflows = [example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.0})]
    return Probe(
        example.targets, example.sites[:1], example.patients, workflows, exporters,
        environ={"WARDWATCH_TESTBED_CLIENT_SECRET": SECRET}, probe_id="otlp-test",
    )


def test_spans_reach_an_otlp_receiver_without_patient_data(example, serve_app):
    app = receiver_app()
    with serve_app(app) as url:
        probe = probe_for(example, [OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=5)])
        (result,) = probe.run_once()
        probe.shutdown()
    assert result.status == "ok", result.message
    spans = [
        (resource_spans.resource, span)
        for _raw, message in app.state.received
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    types = sorted(next(a.value.string_value for a in span.attributes if a.key == schema.ATTR_SPAN_TYPE) for _r, span in spans)
    assert types.count(schema.SPAN_TYPE_RUN) == 1 and types.count(schema.SPAN_TYPE_STEP) == len(result.steps)
    resource = {a.key: a.value.string_value for a in spans[0][0].attributes}
    assert resource[schema.SERVICE_NAME_ATTR] == "wardwatch-probe"
    assert resource[schema.ATTR_SITE] == "ward-7"
    assert resource[schema.ATTR_PROBE_ID] == "otlp-test"
    payload = b"".join(raw for raw, _message in app.state.received)
    for patient in example.patients:
        assert patient.value.encode() not in payload
    assert b"pat-0" not in payload and SECRET.encode() not in payload


def test_an_unreachable_otlp_endpoint_does_not_block_probing_or_the_local_copy(example, serve_app):
    with serve_app(receiver_app()) as url:
        pass  # gone: its port now refuses connections
    local = InMemorySpanExporter()
    probe = probe_for(example, [OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=1), local])
    started = time.perf_counter()
    results = probe.run_once() + probe.run_once()
    elapsed_s = time.perf_counter() - started
    assert [r.status for r in results] == ["ok", "ok"]
    assert elapsed_s < 2.0  # runs do not wait for the export
    probe.shutdown()
    roots = [s for s in local.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    assert len(roots) == 2
