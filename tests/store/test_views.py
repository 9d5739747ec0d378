"""The requests and missed_slots views, over spans made with the real SDK."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from store import ParquetSpanExporter, connect, schema

NS = 1_000_000_000
T0 = int(dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC).timestamp()) * NS


def _rows(con, query: str) -> list[dict]:
    return con.execute(query).to_arrow_table().to_pylist()


def test_requests_and_missed_slots(tmp_path: Path, make_probe) -> None:
    data = tmp_path / "data"
    probe = make_probe(path=data)
    tracer = probe.provider.get_tracer("wardwatch.collector")
    server_provider = TracerProvider(resource=Resource.create({"service.name": "wardwatch-testbed"}))
    server_provider.add_span_processor(SimpleSpanProcessor(ParquetSpanExporter(data)))
    server = server_provider.get_tracer("testbed")

    root = tracer.start_span("open_patient_record", start_time=T0, attributes={
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: "open_patient_record",
        schema.ATTR_RUN_STATUS: schema.RUN_OK,
    })
    ctx = set_span_in_context(root)
    auth = tracer.start_span("token", context=ctx, kind=SpanKind.CLIENT, start_time=T0,
                             attributes={schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_AUTH,
                                         schema.HTTP_REQUEST_METHOD: "POST"})
    auth.end(end_time=T0 + NS // 10)
    # A single-request step: the step span is the request.
    single = tracer.start_span("read_patient", context=ctx, kind=SpanKind.CLIENT,
                               start_time=T0 + NS, attributes={
                                   schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
                                   schema.ATTR_STEP: "read_patient",
                                   schema.HTTP_REQUEST_METHOD: "GET",
                                   schema.URL_TEMPLATE: "/fhir/Patient/{id}",
                                   schema.HTTP_RESPONSE_STATUS_CODE: 200})
    handled = server.start_span("GET /fhir/Patient/{id}", context=set_span_in_context(single),
                                kind=SpanKind.SERVER, start_time=T0 + NS + NS // 100,
                                attributes={schema.HTTP_RESPONSE_STATUS_CODE: 200})
    handled.end(end_time=T0 + NS + NS // 5)
    single.end(end_time=T0 + NS + NS // 4)
    # A paging step: two request grandchildren; the step itself is not a request.
    paged = tracer.start_span("notes", context=ctx, kind=SpanKind.CLIENT, start_time=T0 + 2 * NS,
                              attributes={schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
                                          schema.ATTR_STEP: "notes"})
    for page in range(2):
        request = tracer.start_span(f"page {page}", context=set_span_in_context(paged),
                                    kind=SpanKind.CLIENT, start_time=T0 + (2 + page) * NS,
                                    attributes={schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_REQUEST,
                                                schema.ATTR_STEP: "notes",
                                                schema.HTTP_RESPONSE_STATUS_CODE: 200 + page * 303})
        if page:
            request.set_status(Status(StatusCode.ERROR, "HTTP 503"))
        request.end(end_time=T0 + (2 + page) * NS + NS // 2)
    paged.end(end_time=T0 + 4 * NS)
    root.end(end_time=T0 + 4 * NS)
    missed = tracer.start_span("missed slot", start_time=T0 + 60 * NS, attributes={
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT, schema.ATTR_WORKFLOW: "handover",
        schema.ATTR_SLOT: "2026-11-27T08:31:00.000+00:00", schema.ATTR_MISSED_REASON: "busy"})
    missed.end(end_time=T0 + 60 * NS)
    server_provider.shutdown()

    with connect(data) as con:
        requests = _rows(con, "SELECT * FROM requests ORDER BY start, source")
        slots = _rows(con, "SELECT * FROM missed_slots")
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE requests)")
                     .fetchall())
    summary = [(r["span_type"], r["source"], r["step"], r["http_status"], r["status"],
                r["duration_s"]) for r in requests]
    assert summary == [
        ("auth", "probe", None, None, "ok", 0.1),
        ("step", "probe", "read_patient", 200, "ok", 0.25),
        ("server", "server", None, 200, "ok", 0.19),
        ("request", "probe", "notes", 200, "ok", 0.5),
        ("request", "probe", "notes", 503, "failed", 0.5),
    ]
    assert {r["workflow"] for r in requests} == {"open_patient_record"}  # joined by trace id
    assert {r["site"] for r in requests} == {"Ward 7"}
    assert requests[2]["service_name"] == "wardwatch-testbed"
    assert requests[1]["url_template"] == "/fhir/Patient/{id}"
    assert types["start"] == "TIMESTAMP WITH TIME ZONE" and types["duration_s"] == "DOUBLE"
    assert slots == [{
        "trace_id": slots[0]["trace_id"], "span_id": slots[0]["span_id"],
        "slot": dt.datetime(2026, 11, 27, 8, 31, tzinfo=dt.UTC), "workflow": "handover",
        "site": "Ward 7", "reason": "busy", "simulated": False,
    }]
