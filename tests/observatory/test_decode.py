"""Decoding remembers each attribute's redacted form by its encoded bytes: what it stores is what
rendering and redacting every attribute afresh gives, on the first body and on every repeat."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from observatory import decode
from store import redact


def _body(attributes: list[tuple[str, AnyValue]]) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes(range(1, 17)), bytes(range(1, 9))
    span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_000_500_000_000
    span.name = "GET /fhir/Patient/MRN123?identifier=999"
    span.attributes.extend(KeyValue(key=k, value=v) for k, v in attributes)
    return request.SerializeToString()


ATTRIBUTES = [
    ("url.full", AnyValue(string_value="https://epr.example/fhir/Patient/MRN123?identifier=999")),
    ("http.route", AnyValue(string_value="/fhir/Patient/9434765919")),
    ("url.query", AnyValue(string_value="identifier=9434765919&_count=5")),
    ("exception.message", AnyValue(string_value="patient 9434765919 not found")),
    ("http.response.status_code", AnyValue(int_value=404)),
    ("wardwatch.run.waiting_s", AnyValue(double_value=0.1 + 0.2)),
    ("retry", AnyValue(bool_value=True)),
    ("enduser.id", AnyValue(string_value="dr-who")),
    ("enduser.id", AnyValue(string_value="dr-who")),  # a dropped key given twice
    ("http.response.status_code", AnyValue(int_value=200)),  # a key given twice: the last is kept
]


def test_remembered_attributes_are_the_fresh_ones() -> None:
    expected = redact.redact_attributes({k: decode._render(v) for k, v in ATTRIBUTES})
    for _ in range(3):  # the first decode fills the memo; the others read it
        [stored] = decode.decode_traces(_body(ATTRIBUTES), decode.PROTOBUF).columns["SpanAttributes"]
        assert dict(stored) == expected
        assert "9434765919" not in repr(stored) and "enduser.id" not in dict(stored)
    [name] = decode.decode_traces(_body(ATTRIBUTES), decode.PROTOBUF).columns["SpanName"]
    assert "MRN123" not in name and name == redact.redact_span_name("GET /fhir/Patient/MRN123?identifier=999")


def test_the_memo_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(decode, "_PAIRS_MAX", 4)
    decode._PAIRS.clear()
    for n in range(20):
        decode.decode_traces(_body([("n", AnyValue(int_value=n)), *ATTRIBUTES[:2]]), decode.PROTOBUF)
        assert len(decode._PAIRS) <= 4
