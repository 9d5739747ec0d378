"""The example workflows against the real testbed on loopback: spans, propagation, values, failures."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from collector.auth import TokenCache
from collector.config import TestPatientConfig, check_references
from store import schema

PHASES = (schema.ATTR_DNS_S, schema.ATTR_CONNECT_S, schema.ATTR_TLS_S, schema.ATTR_TTFB_S, schema.ATTR_TRANSFER_S)


def run(example: Any, workflow: Any, tracer: Any, site: str = "ward-7", **kwargs: Any) -> Any:
    return example.run(workflow, tracer, site, **kwargs)


def typed(spans: Any, span_type: str) -> list[Any]:
    return [s for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == span_type]


def test_example_sections_are_consistent(example):
    env = {"WARDWATCH_TESTBED_CLIENT_SECRET": "x"}
    assert check_references(example.targets, example.sites, example.patients, list(example.workflows.values()), environ=env) == []


def test_open_patient_record_makes_one_root_and_one_child_per_step(example, tracer, span_exporter, server_spans):
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.0})
    result = run(example, workflow, tracer)
    assert result.status == schema.RUN_OK, result.message
    assert [s.name for s in result.steps] == [s.name for s in workflow.steps]

    spans = span_exporter.get_finished_spans()
    (root,) = typed(spans, schema.SPAN_TYPE_RUN)
    steps = typed(spans, schema.SPAN_TYPE_STEP)
    assert root.kind == SpanKind.INTERNAL and root.parent is None
    assert root.attributes[schema.ATTR_RUN_STATUS] == "ok"
    assert root.attributes[schema.ATTR_WORKFLOW] == "open-patient-record"
    assert root.attributes[schema.USER_AGENT_SYNTHETIC_TYPE] == "test"
    assert schema.ERROR_TYPE not in root.attributes
    assert [s.attributes[schema.ATTR_STEP] for s in steps] == [s.name for s in workflow.steps]
    assert [s.attributes[schema.ATTR_STEP_INDEX] for s in steps] == list(range(len(workflow.steps)))
    for span in steps:
        assert span.kind == SpanKind.CLIENT
        assert span.parent.span_id == root.context.span_id
        assert span.attributes[schema.HTTP_REQUEST_METHOD] == "GET"
        assert span.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 200
        assert span.attributes[schema.SERVER_ADDRESS] == "127.0.0.1"
        assert span.attributes[schema.ATTR_RESPONSE_BYTES] > 0
        # phases add up to the step's duration, and the span's Duration is that duration
        assert sum(span.attributes[key] for key in PHASES) == pytest.approx((span.end_time - span.start_time) / 1e9, abs=1e-9)
        assert span.attributes[schema.ATTR_CONNECT_S] > 0  # connection: fresh
    assert steps[0].attributes[schema.URL_QUERY] == "identifier=REDACTED"
    assert steps[2].attributes[schema.URL_QUERY] == "patient=REDACTED&_sort=REDACTED&_count=REDACTED"
    assert schema.URL_QUERY not in steps[1].attributes
    templates = [s.attributes[schema.URL_TEMPLATE] for s in steps]
    assert templates[:2] == ["/fhir/Patient", "/fhir/Patient/{patient_id}"]
    assert not any("pat-" in t or "MRN" in t for t in templates)
    assert root.attributes[schema.ATTR_RUN_WAITING_S] == pytest.approx(sum((s.end_time - s.start_time) / 1e9 for s in steps))


def test_traceparent_joins_the_testbed_server_spans_to_the_step(example, tracer, span_exporter, server_spans):
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.0})
    result = run(example, workflow, tracer)
    probe = span_exporter.get_finished_spans()
    (root,) = typed(probe, schema.SPAN_TYPE_RUN)
    client_ids = {s.context.span_id: s for s in probe if s.kind == SpanKind.CLIENT}
    requests_sent = sum(len(step.requests) for step in result.steps) + 1  # and the token request
    deadline = time.monotonic() + 5
    while len(server_spans.get_finished_spans()) < requests_sent and time.monotonic() < deadline:
        time.sleep(0.01)  # the server ends its span just after the response has gone
    servers = [s for s in server_spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(servers) == requests_sent
    fhir_servers = [s for s in servers if (s.attributes.get("url.template") or "").startswith("/fhir")]
    for span in servers:
        assert span.context.trace_id == root.context.trace_id
        assert span.parent is not None and span.parent.span_id in client_ids
    step_ids = {s.context.span_id for s in typed(probe, schema.SPAN_TYPE_STEP)}
    # a single-request step is itself the client span; the paged notes step parents via request spans
    assert {s.parent.span_id for s in fhir_servers} & step_ids


def test_chart_observations_posts_and_reads_back(example, tracer, span_exporter):
    workflow = example.workflows["chart-observations"].model_copy(update={"think_time_s": 0.0})
    result = run(example, workflow, tracer)
    assert result.status == "ok", result.message
    post = next(s for s in typed(span_exporter.get_finished_spans(), schema.SPAN_TYPE_STEP) if s.attributes[schema.ATTR_STEP] == "chart-heart-rate")
    assert post.attributes[schema.HTTP_REQUEST_METHOD] == "POST"
    assert post.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 201
    # connection: reuse: the token request opened the connection, no step connects again
    assert all(t.connected is False for step in result.steps for t in step.requests)


def test_ward_handover_requests_each_patient(example, tracer, span_exporter, testbed):
    workflow = example.workflows["ward-handover"].model_copy(update={"steps": (
        example.workflows["ward-handover"].steps[0],
        example.workflows["ward-handover"].steps[1].model_copy(update={"max_items": 5}),
    )})
    result = run(example, workflow, tracer)
    assert result.status == "ok", result.message
    spans = span_exporter.get_finished_spans()
    latest = next(s for s in typed(spans, schema.SPAN_TYPE_STEP) if s.attributes[schema.ATTR_STEP] == "latest-vitals")
    requests = typed(spans, schema.SPAN_TYPE_REQUEST)
    assert len(requests) == 5 == len(result.steps[1].requests)
    assert all(r.parent.span_id == latest.context.span_id for r in requests)
    assert all(r.attributes[schema.URL_TEMPLATE] == "/fhir/Observation" for r in requests)
    assert (latest.end_time - latest.start_time) == sum(r.end_time - r.start_time for r in requests)


def test_a_missing_patient_is_a_4xx_failure_recorded_not_raised(example, tracer, span_exporter):
    base = example.workflows["open-patient-record"]
    workflow = base.model_copy(update={"think_time_s": 0.0, "steps": (base.steps[1].model_copy(update={"path": "/Patient/pat-9999"}),)})
    result = run(example, workflow, tracer)
    assert (result.status, result.error_type) == ("failed", "http_4xx")
    assert "404" in result.message
    (root,) = typed(span_exporter.get_finished_spans(), schema.SPAN_TYPE_RUN)
    assert root.attributes[schema.ATTR_RUN_STATUS] == "failed"
    assert root.attributes[schema.ERROR_TYPE] == "http_4xx"


def test_an_unknown_mrn_fails_the_assertion_and_stops_the_run(example, tracer):
    patients = [TestPatientConfig(identifier="https://testbed.wardwatch.example/mrn|MRN999999")]
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.0})
    result = run(example, workflow, tracer, patients=patients)
    assert (result.status, result.error_type) == ("failed", "assertion")
    assert [s.name for s in result.steps] == ["find-patient"]
    assert "MRN999999" not in result.message


def test_think_time_is_excluded_from_waiting_time(example, tracer):
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.05})
    result = run(example, workflow, tracer)
    assert result.status == "ok"
    assert result.wall_s >= result.waiting_s + 6 * 0.05
    assert result.waiting_s == pytest.approx(sum(s.duration_s for s in result.steps))


def test_site_header_reaches_the_network_model(example, tracer, server_spans):
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.0})
    modelled_s: dict[str, list[float]] = {}
    for site in ("ward-7", "community-hospital"):
        server_spans.clear()
        result = run(example, workflow, tracer, site=site, token_cache=TokenCache())
        assert result.status == "ok", result.message
        sent = sum(len(step.requests) for step in result.steps) + 1  # and the token request
        deadline = time.monotonic() + 5
        while len(server_spans.get_finished_spans()) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        modelled_s[site] = sorted(
            s.attributes["wardwatch.testbed.modelled_delay_s"]
            for s in server_spans.get_finished_spans()
            if (s.attributes.get("url.template") or "").startswith("/fhir")
        )
    # 2 ms service everywhere, plus 10 ms of modelled network from the community hospital
    assert len(modelled_s["ward-7"]) >= 7 and len(modelled_s["community-hospital"]) >= 7
    assert modelled_s["ward-7"] == pytest.approx([0.002] * len(modelled_s["ward-7"]))
    assert modelled_s["community-hospital"] == pytest.approx([0.012] * len(modelled_s["community-hospital"]))


def test_bundle_paging_against_the_testbed_records_pages_and_request_spans(example, tracer, span_exporter, server_spans):
    base = example.workflows["ward-handover"]
    step = base.steps[0].model_copy(update={"query": {"location": "Location/ward-7", "status": "in-progress", "_count": 5}, "follow_next_pages": 2})
    workflow = base.model_copy(update={"steps": (step,)})
    result = run(example, workflow, tracer)
    assert result.status == "ok", result.message
    assert result.steps[0].pages == 3 and len(result.steps[0].requests) == 3
    spans = span_exporter.get_finished_spans()
    (step_span,) = typed(spans, schema.SPAN_TYPE_STEP)
    requests = typed(spans, schema.SPAN_TYPE_REQUEST)
    assert step_span.attributes[schema.ATTR_BUNDLE_PAGES] == 3
    assert [r.parent.span_id for r in requests] == [step_span.context.span_id] * 3
    assert {r.attributes[schema.URL_TEMPLATE] for r in requests} == {"/fhir/Encounter"}
    assert step_span.attributes[schema.ATTR_RESPONSE_BYTES] == sum(r.attributes[schema.ATTR_RESPONSE_BYTES] for r in requests)
    deadline = time.monotonic() + 5
    while len(server_spans.get_finished_spans()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    request_ids = {r.context.span_id for r in requests}
    encounter_servers = [s for s in server_spans.get_finished_spans() if s.attributes.get("url.template") == "/fhir/Encounter"]
    assert {s.parent.span_id for s in encounter_servers} == request_ids
