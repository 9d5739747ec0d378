"""A browser run's waterfall read back from the store: steps, the page's requests under them, the
EPR's server spans under the request each answered, and the step's long tasks, paints and the
moment it was visible as marks."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

import analysis
from analysis.waterfall import run_waterfall
from store import ParquetSpanExporter, schema

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_795_000_000 * NS  # 2026-11-18


def browser_run(probe, server: TracerProvider) -> str:
    """One browser run made with the SDK as the browser runner makes it: two steps, the second
    with two page requests answered by the EPR's server spans (children of the step, as the
    step's traceparent makes them), a long task, two paints and the visible moment."""
    tracer, epr = probe.provider.get_tracer("wardwatch"), server.get_tracer("epr")
    root = tracer.start_span("open-record-in-browser", start_time=T0, attributes={
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: "open-record-in-browser",
        schema.ATTR_RUN_STATUS: "ok", schema.ATTR_RUN_WAITING_S: 1.3})
    common = {schema.ATTR_WORKFLOW: "open-record-in-browser"}
    sign_in = tracer.start_span("sign-in", context=set_span_in_context(root), kind=SpanKind.CLIENT, start_time=T0,
                                attributes={**common, schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, schema.ATTR_STEP: "sign-in"})
    sign_in.end(end_time=T0 + 300 * MS)
    start = T0 + 1000 * MS
    step = tracer.start_span("open-record", context=set_span_in_context(root), kind=SpanKind.CLIENT, start_time=start,
                             attributes={**common, schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
                                         schema.ATTR_STEP: "open-record"})
    for offset_ms, path in ((10, "/fhir/Encounter"), (250, "/fhir/DocumentReference")):
        request = tracer.start_span(f"GET {path}", context=set_span_in_context(step), kind=SpanKind.CLIENT,
                                    start_time=start + offset_ms * MS, attributes={
                                        **common, schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_PAGE_REQUEST,
                                        schema.ATTR_SOURCE: schema.SOURCE_PAGE, schema.ATTR_STEP: "open-record",
                                        schema.HTTP_REQUEST_METHOD: "GET", schema.URL_TEMPLATE: path,
                                        schema.HTTP_RESPONSE_STATUS_CODE: 200})
        served = epr.start_span(f"GET {path}", context=set_span_in_context(step), kind=SpanKind.SERVER,
                                start_time=start + (offset_ms + 5) * MS)
        served.end(end_time=start + (offset_ms + 185) * MS)
        request.end(end_time=start + (offset_ms + 200) * MS)
    step.add_event(schema.EVENT_LCP, timestamp=start + 300 * MS)
    step.add_event(schema.EVENT_LONG_TASK, {schema.ATTR_EVENT_DURATION_S: 0.12}, timestamp=start + 460 * MS)
    step.add_event(schema.EVENT_LCP, timestamp=start + 600 * MS)
    step.add_event(schema.EVENT_VISIBLE, timestamp=start + 1000 * MS)
    step.end(end_time=start + 1000 * MS)
    root.end(end_time=start + 1100 * MS)
    return format(root.get_span_context().trace_id, "032x")


@pytest.fixture
def store_and_trace(make_probe: Callable, tmp_path) -> tuple[analysis.Store, str]:
    probe = make_probe(site="ward-7")
    server = TracerProvider(resource=Resource.create({"service.name": "the-epr"}))
    server.add_span_processor(SimpleSpanProcessor(ParquetSpanExporter(tmp_path / "data")))
    trace_id = browser_run(probe, server)
    server.shutdown()
    return analysis.open_store(tmp_path / "data"), trace_id


def test_the_epr_spans_sit_under_the_page_request_they_answered(store_and_trace) -> None:
    store, trace_id = store_and_trace
    spans = run_waterfall(store, trace_id).spans
    rows = list(zip(spans["depth"], spans["name"], spans["source"], strict=True))
    assert rows == [
        (0, "open-record-in-browser", "probe"),
        (1, "sign-in", "probe"),
        (1, "open-record", "probe"),
        (2, "GET /fhir/Encounter", "probe"),
        (3, "GET /fhir/Encounter", "server"),
        (2, "GET /fhir/DocumentReference", "probe"),
        (3, "GET /fhir/DocumentReference", "server"),
    ]
    assert spans["span_type"].tolist()[3] == schema.SPAN_TYPE_PAGE_REQUEST
    assert spans["http_status"].tolist()[3] == 200
    assert spans["duration_s"].tolist()[4] == pytest.approx(0.18)


def test_the_steps_long_tasks_paints_and_visible_moment_are_marks(store_and_trace) -> None:
    store, trace_id = store_and_trace
    waterfall = run_waterfall(store, trace_id)
    step_id = waterfall.spans.loc[waterfall.spans["name"] == "open-record", "span_id"].item()
    marks = waterfall.marks
    assert marks["kind"].tolist() == [schema.EVENT_LCP, schema.EVENT_LONG_TASK, schema.EVENT_LCP, schema.EVENT_VISIBLE]
    assert set(marks["span_id"]) == {step_id}
    start = pd.Timestamp(T0 + 1000 * MS, unit="ns", tz="UTC")
    assert ((marks["at"] - start).dt.total_seconds() * 1000).round().tolist() == [300, 460, 600, 1000]
    assert marks.loc[marks["kind"] == schema.EVENT_LONG_TASK, "duration_s"].tolist() == [pytest.approx(0.12)]
    assert marks.loc[marks["kind"] != schema.EVENT_LONG_TASK, "duration_s"].isna().all()


def test_a_run_that_is_not_stored_has_an_empty_waterfall(store_and_trace) -> None:
    store, _trace_id = store_and_trace
    waterfall = run_waterfall(store, "0" * 32)
    assert waterfall.empty and waterfall.marks.empty
