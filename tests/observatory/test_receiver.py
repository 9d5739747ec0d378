"""The observatory's receiver on loopback: the SDK's OTLP exporter in, segments out; every refusal
has its status and a reason, and the observatory keeps serving after each."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from store import schema

from .conftest import EPR_TOKEN, TOKENS, site_provider

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def recorded_spans(site: str = "ward-7", n: int = 3, service: str = "wardwatch-probe", **span_attrs: str):
    """Spans made by the SDK (kept in memory), so a test can send the same bytes twice."""
    memory = InMemorySpanExporter()
    resource = {"service.name": service, **({schema.ATTR_SITE: site} if site else {})}
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"step {i}", attributes=span_attrs):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def body(spans) -> bytes:
    return encode_spans(spans).SerializeToString()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **PROTOBUF}


def test_the_sdk_exporter_delivers_spans_into_the_store(observatory):
    provider = site_provider(observatory.url, "ward-7", TOKENS["ward-7"])
    tracer = provider.get_tracer("probe")
    with tracer.start_as_current_span("open-patient-record", attributes={schema.ATTR_WORKFLOW: "open"}):
        with tracer.start_as_current_span("read", kind=SpanKind.CLIENT, attributes={schema.ATTR_STEP: "read"}):
            pass
    provider.shutdown()
    rows = observatory.stored()
    assert sorted(r[schema.SPAN_NAME] for r in rows) == ["open-patient-record", "read"]
    assert {r[schema.SITE] for r in rows} == {"ward-7"}  # promoted at write time, as the probe's own writes


def test_a_batch_sent_twice_is_stored_once(observatory):
    spans = recorded_spans(n=5)
    for _ in range(2):
        answer = httpx.post(f"{observatory.url}/v1/traces", content=body(spans), headers=bearer(TOKENS["ward-7"]))
        assert answer.status_code == 200, answer.text
    assert len(observatory.stored()) == 5
    assert observatory.ingest.duplicate_spans == 5


def test_json_and_gzip_bodies_are_accepted(observatory):
    spans = recorded_spans(n=2)
    # OTLP/JSON as the specification writes it: ids in hex, enums as numbers
    from google.protobuf import json_format

    document = json_format.MessageToDict(encode_spans(spans))
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = __import__("base64").b64decode(span[key]).hex()
    answer = httpx.post(f"{observatory.url}/v1/traces", content=json.dumps(document).encode(),
                        headers={"Authorization": f"Bearer {TOKENS['ward-7']}", "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    more = recorded_spans(n=3)
    answer = httpx.post(f"{observatory.url}/v1/traces", content=gzip.compress(body(more)),
                        headers={**bearer(TOKENS["ward-7"]), "Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    stored = {(r[schema.TRACE_ID], r[schema.SPAN_ID]) for r in observatory.stored()}
    sent = {(format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in (*spans, *more)}
    assert stored == sent


def test_refusals_have_their_status_and_a_reason(observatory):
    url = f"{observatory.url}/v1/traces"
    ward_7 = body(recorded_spans("ward-7"))
    cases = [
        ({**PROTOBUF}, ward_7, 401, "Bearer"),
        (bearer("not-a-token"), ward_7, 401, "not one this observatory knows"),
        (bearer(TOKENS["ward-7"]), body(recorded_spans("community-hospital")), 403, "cannot write spans of site 'community-hospital'"),
        (bearer(TOKENS["ward-7"]), body(recorded_spans("ward-7", **{schema.ATTR_SITE: "community-hospital"})), 403, "community-hospital"),
        (bearer(TOKENS["ward-7"]), body(recorded_spans(site="")), 403, "wardwatch.site"),
        (bearer(TOKENS["ward-7"]), b"\x0a\xff\xff\xff\xff\x0f", 400, "not an OTLP protobuf message"),
        ({**bearer(TOKENS["ward-7"]), "Content-Type": "application/json"}, b"{not json", 400, "not OTLP/JSON"),
        ({**bearer(TOKENS["ward-7"]), "Content-Type": "text/plain"}, ward_7, 415, "Content-Type"),
        (bearer(TOKENS["ward-7"]), b"\0" * (2 * 1024 * 1024), 413, "over the limit"),
        ({**bearer(TOKENS["ward-7"]), "Content-Encoding": "gzip"}, gzip.compress(b"\0" * (64 * 1024 * 1024)), 413, "inflates"),
        ({**bearer(TOKENS["ward-7"]), "Content-Encoding": "gzip"}, gzip.compress(ward_7)[:-12], 400, "cut off"),
        ({**bearer(TOKENS["ward-7"]), "Content-Encoding": "br"}, ward_7, 400, "not supported"),
        (bearer(EPR_TOKEN), ward_7, 403, "service 'epr' cannot write spans of site 'ward-7'"),
    ]
    for headers, content, status, reason in cases:
        answer = httpx.post(url, content=content, headers=headers)
        assert (answer.status_code, reason in answer.text) == (status, True), (status, reason, answer.text)
    # and it keeps serving
    assert httpx.post(url, content=ward_7, headers=bearer(TOKENS["ward-7"])).status_code == 200
    assert len(observatory.stored()) == 3


def test_a_malformed_span_id_is_refused_with_its_location(observatory):
    request = encode_spans(recorded_spans(n=2))
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
    answer = httpx.post(f"{observatory.url}/v1/traces", content=request.SerializeToString(), headers=bearer(TOKENS["ward-7"]))
    assert answer.status_code == 400
    assert "resourceSpans[0].scopeSpans[0].spans[1]: spanId must be 8 bytes" in answer.text
    assert observatory.stored() == []  # nothing of a refused request is stored


def test_the_eprs_server_spans_are_accepted_and_redacted(observatory):
    spans = recorded_spans(site="", service="epr", **{
        "url.full": "https://epr.example/fhir/Patient/MRN123456?family=SMITH",
        schema.HTTP_ROUTE: "/fhir/Patient/9000000009",
        "exception.message": "no patient SMITH",
    })
    answer = httpx.post(f"{observatory.url}/v1/traces", content=body(spans), headers=bearer(EPR_TOKEN))
    assert answer.status_code == 200, answer.text
    rows = observatory.stored()
    assert len(rows) == 3
    text = json.dumps(rows, default=str)
    assert "MRN123456" not in text and "SMITH" not in text and "9000000009" not in text
    attrs = dict(rows[0][schema.SPAN_ATTRIBUTES])
    assert attrs["url.full"] == "https://epr.example/fhir/Patient/{id}?family=REDACTED"
    assert attrs[schema.ATTR_SOURCE] == schema.SOURCE_OTLP
    assert dict(rows[0][schema.RESOURCE_ATTRIBUTES])[schema.ATTR_TARGET] == "testbed"
    # an EPR's token writes only its own service's spans
    other = body(recorded_spans(site="", service="another-epr"))
    assert httpx.post(f"{observatory.url}/v1/traces", content=other, headers=bearer(EPR_TOKEN)).status_code == 403


def test_a_writer_behind_gets_429_with_retry_after(observatory):
    observatory.ingest.max_pending_spans = 0  # as if the queue were full
    answer = httpx.post(f"{observatory.url}/v1/traces", content=body(recorded_spans()), headers=bearer(TOKENS["ward-7"]))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"


def test_metrics_are_accepted_from_the_sites_token(observatory):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add().resource
    kv = resource.attributes.add()
    kv.key, kv.value.string_value = schema.ATTR_SITE, "ward-7"
    url = f"{observatory.url}/v1/metrics"
    assert httpx.post(url, content=request.SerializeToString(), headers=bearer(TOKENS["ward-7"])).status_code == 200
    assert httpx.post(url, content=request.SerializeToString(), headers=bearer(TOKENS["community-hospital"])).status_code == 403


def test_metric_points_not_kept_are_said_so_in_otlps_partial_success(observatory):
    """The store keeps spans: a sender learns its points were counted, not stored, in the answer."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    kv = resource_metrics.resource.attributes.add()
    kv.key, kv.value.string_value = schema.ATTR_SITE, "ward-7"
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = "wardwatch.workflow.duration"
    metric.histogram.data_points.add(count=3, sum=4.2)
    metric.histogram.data_points.add(count=1, sum=0.4)
    answer = httpx.post(f"{observatory.url}/v1/metrics", content=request.SerializeToString(), headers=bearer(TOKENS["ward-7"]))
    assert answer.status_code == 200
    response = ExportMetricsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_data_points == 2
    assert "keeps spans only" in response.partial_success.error_message
    json_answer = httpx.post(f"{observatory.url}/v1/metrics", json={"resourceMetrics": []},
                             headers={**bearer(TOKENS["ward-7"]), "Content-Type": "application/json"})
    assert json_answer.status_code == 200 and json_answer.json() == {}, json_answer.text


def test_inflate_stops_at_the_limit_for_deflate_too():
    from observatory.decode import TooLarge, inflate

    bomb = zlib.compress(b"\0" * (32 * 1024 * 1024))
    with pytest.raises(TooLarge):
        inflate(bomb, "deflate", 1024)


def test_the_observatory_stores_what_the_probes_own_exporter_would(observatory, tmp_path):
    """Every column, span for span: the receiver's path equals ParquetSpanExporter's for the same spans."""
    import pyarrow.parquet as pq

    from store import list_segments, span_to_row, write_spans

    spans = recorded_spans(n=4, **{schema.ATTR_WORKFLOW: "open", schema.ATTR_STEP: "read",
                                   schema.URL_TEMPLATE: "/fhir/Patient/{id}", schema.ATTR_STEP_INDEX: 2,
                                   "wardwatch.http.ttfb_s": 0.25, "flag": True, "list": ["a", "b"]})
    answer = httpx.post(f"{observatory.url}/v1/traces", content=body(spans), headers=bearer(TOKENS["ward-7"]))
    assert answer.status_code == 200, answer.text
    write_spans(tmp_path / "direct", [span_to_row(s) for s in spans])

    def table(store):
        tables = [pq.read_table(p) for p in list_segments(store)]
        return __import__("pyarrow").concat_tables(tables).sort_by(schema.SPAN_ID).to_pylist()

    assert table(observatory.store) == table(tmp_path / "direct")
