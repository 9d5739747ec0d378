"""The runner against a small local server: spans, values between steps, failures as data."""

from __future__ import annotations

import random
from typing import Any

import pytest

from collector.auth import TokenCache
from collector.config import SiteConfig, TargetConfig, TestPatientConfig, WorkflowConfig
from collector.runner import run_workflow
from store import schema

MRN_SYSTEM = "https://testbed.wardwatch.example/mrn"
SECRET = "mini-secret-value"  # the mini server's client secret (conftest.SECRET)
SITE = SiteConfig(name="ward-7", timezone="Europe/London", title="Ward 7")
PATIENTS = [TestPatientConfig(identifier=f"{MRN_SYSTEM}|MRN000042")]
ENV = {"MINI_SECRET": SECRET}


def target(base_url: str, **auth: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "base_url": f"{base_url}/fhir",
            "headers": {"X-Wardwatch-Site": "{{ site }}"},
            "auth": auth
            or {
                "type": "oauth2_client_credentials",
                "token_url": f"{base_url}/auth/token",
                "client_id": "wardwatch-probe",
                "client_secret": "${env:MINI_SECRET}",
            },
        }
    )


def workflow(steps: list[dict[str, Any]], **fields: Any) -> WorkflowConfig:
    return WorkflowConfig.model_validate({"name": "open-record", "target": "mini", "steps": steps, **fields})


OPEN_RECORD = [
    {
        "name": "find-patient",
        "path": "/Patient",
        "query": {"identifier": "{{ patient_identifier }}"},
        "assert": [{"path": "$.total", "equals": 1}],
        "extract": {"patient_id": "$.entry[0].resource.id"},
    },
    {"name": "read-patient", "path": "/Patient/{{ patient_id }}", "assert": [{"path": "$.id", "exists": True}]},
]


def run(wf: WorkflowConfig, tgt: TargetConfig, tracer: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("patients", PATIENTS)
    kwargs.setdefault("environ", ENV)
    kwargs.setdefault("rng", random.Random(1))
    return run_workflow(wf, tgt, SITE, tracer=tracer, target_name="mini", **kwargs)


def by_type(spans: Any, span_type: str) -> list[Any]:
    return [s for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == span_type]


def test_values_flow_between_steps_and_spans_form_one_trace(mini_url, mini_app, tracer, span_exporter):
    result = run(workflow(OPEN_RECORD), target(mini_url), tracer)

    assert result.status == schema.RUN_OK, result.message
    assert [s.status for s in result.steps] == ["ok", "ok"]
    paths = [entry["path"] for entry in mini_app.state.seen]
    assert paths == ["/fhir/Patient", "/fhir/Patient/pat-0042"]
    assert all(entry["headers"]["x-wardwatch-site"] == "ward-7" for entry in mini_app.state.seen)

    spans = span_exporter.get_finished_spans()
    (root,) = by_type(spans, schema.SPAN_TYPE_RUN)
    steps = by_type(spans, schema.SPAN_TYPE_STEP)
    (auth,) = by_type(spans, schema.SPAN_TYPE_AUTH)
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert [s.parent.span_id for s in steps + [auth]] == [root.context.span_id] * 3
    assert steps[1].attributes[schema.URL_TEMPLATE] == "/fhir/Patient/{patient_id}"
    assert "pat-0042" not in str([dict(s.attributes) for s in spans])
    # the traceparent sent with each step names that step's span
    sent = [entry["headers"]["traceparent"].split("-")[1:3] for entry in mini_app.state.seen]
    assert sent == [[f"{root.context.trace_id:032x}", f"{s.context.span_id:016x}"] for s in steps]
    assert root.attributes[schema.ATTR_RUN_WAITING_S] == pytest.approx(sum(s.duration_s for s in result.steps))


def test_step_span_duration_is_the_sum_of_its_phases(mini_url, tracer, span_exporter):
    result = run(workflow(OPEN_RECORD, connection="fresh"), target(mini_url), tracer)
    for step, span in zip(result.steps, by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_STEP)):
        phases = [span.attributes[key] for key in (schema.ATTR_DNS_S, schema.ATTR_CONNECT_S, schema.ATTR_TLS_S, schema.ATTR_TTFB_S, schema.ATTR_TRANSFER_S)]
        assert (span.end_time - span.start_time) / 1e9 == pytest.approx(sum(phases), abs=1e-9)
        assert step.duration_s == pytest.approx(sum(phases), abs=1e-9)
        assert span.attributes[schema.ATTR_CONNECT_S] > 0  # fresh: every request connects
        assert span.attributes[schema.ATTR_DNS_S] == 0  # an IP literal is not resolved


def test_reused_connection_has_no_connect_phase(mini_url, tracer):
    result = run(workflow(OPEN_RECORD, connection="reuse"), target(mini_url), tracer)
    # the token request opened the connection; both steps reuse it
    assert [timing.connected for step in result.steps for timing in step.requests] == [False, False]
    assert [step.requests[0].connect_ns for step in result.steps] == [0, 0]


def test_token_is_cached_across_runs(mini_url, mini_app, tracer, span_exporter):
    cache = TokenCache()
    for _ in range(3):
        assert run(workflow(OPEN_RECORD), target(mini_url), tracer, token_cache=cache).status == "ok"
    assert len(mini_app.state.token_requests) == 1
    assert len(by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_AUTH)) == 1


def test_wrong_secret_is_an_auth_failure_without_the_secret(mini_url, tracer, span_exporter):
    result = run(workflow(OPEN_RECORD), target(mini_url), tracer, environ={"MINI_SECRET": "wrong-one"})
    assert (result.status, result.error_type) == ("failed", "auth")
    spans = span_exporter.get_finished_spans()
    text = repr([(dict(s.attributes), s.status.description, s.name) for s in spans])
    assert "wrong-one" not in text and SECRET not in text


def test_missing_secret_variable_is_an_auth_failure(mini_url, tracer):
    result = run(workflow(OPEN_RECORD), target(mini_url), tracer, environ={})
    assert (result.status, result.error_type) == ("failed", "auth")
    assert "MINI_SECRET" in result.message


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("/status/404", "http_4xx"), ("/status/503", "http_5xx"), ("/status/403", "auth"), ("/malformed", "invalid_response")],
)
def test_http_failures_are_recorded_not_raised(mini_url, tracer, span_exporter, path, error_type):
    wf = workflow([{"name": "one", "path": path}, {"name": "two", "path": "/delay"}])
    result = run(wf, target(mini_url), tracer)
    assert (result.status, result.error_type) == ("failed", error_type)
    assert [s.name for s in result.steps] == ["one"]  # on_error: stop
    spans = span_exporter.get_finished_spans()
    (root,) = by_type(spans, schema.SPAN_TYPE_RUN)
    (step,) = by_type(spans, schema.SPAN_TYPE_STEP)
    assert root.attributes[schema.ATTR_RUN_STATUS] == "failed"
    assert root.attributes[schema.ERROR_TYPE] == step.attributes[schema.ERROR_TYPE] == error_type


def test_on_error_continue_runs_the_rest_and_skips_steps_missing_values(mini_url, tracer):
    steps = [
        {"name": "find", "path": "/Patient", "query": {"identifier": "nobody|x"}, "extract": {"patient_id": "$.entry[0].resource.id"}},
        {"name": "read", "path": "/Patient/{{ patient_id }}"},
        {"name": "other", "path": "/delay"},
    ]
    result = run(workflow(steps, on_error="continue"), target(mini_url), tracer)
    assert [s.status for s in result.steps] == ["failed", "skipped", "ok"]
    assert (result.status, result.error_type) == ("failed", "assertion")


def test_assertion_failure_message_has_no_response_values(mini_url, tracer):
    steps = [OPEN_RECORD[0], {"name": "read", "path": "/Patient/{{ patient_id }}", "assert": [{"path": "$.name[0].family", "equals": "Other"}]}]
    result = run(workflow(steps), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("failed", "assertion")
    assert result.message == "GET /fhir/Patient/{patient_id}: assertion failed: $.name[0].family does not equal the expected value"


def test_step_timeout_cuts_a_slow_response(mini_url, tracer):
    steps = [{"name": "slow", "path": "/delay", "query": {"ms": 900}}]
    result = run(workflow(steps, step_timeout_s=0.2, timeout_s=5), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    # cut near 0.2 s, well before the server's 0.9 s answer (the 0.2 s bound the whole exchange;
    # the phases miss the moments between them, so they may sum to a little less)
    assert 0.18 <= result.steps[0].duration_s < 0.6


def test_run_timeout_cuts_the_run(mini_url, tracer):
    steps = [{"name": f"s{i}", "path": "/delay", "query": {"ms": 150}} for i in range(5)]
    result = run(workflow(steps, step_timeout_s=0.3, timeout_s=0.4), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    assert len(result.steps) < 5


def test_think_time_is_waited_but_not_waiting_time(mini_url, tracer, span_exporter):
    steps = [{"name": f"s{i}", "path": "/delay"} for i in range(3)]
    result = run(workflow(steps, think_time_s=0.15), target(mini_url), tracer)
    assert result.status == "ok"
    assert result.wall_s >= result.waiting_s + 0.3  # two think times, not in the waiting time
    assert result.waiting_s == pytest.approx(sum(step.duration_s for step in result.steps))
    (root,) = by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_RUN)
    assert (root.end_time - root.start_time) / 1e9 >= 0.3
    assert root.attributes[schema.ATTR_RUN_WAITING_S] == pytest.approx(result.waiting_s)


def test_connection_refused_is_a_connect_error(tracer, serve_app, mini_app):
    with serve_app(mini_app) as url:
        pass  # the server is gone: its port now refuses connections
    wf = workflow([{"name": "one", "path": "/delay"}])
    result = run(wf, target(url, type="none"), tracer)
    assert (result.status, result.error_type) == ("failed", "connect")


def test_connection_reset_is_a_connect_error(tracer, reset_url):
    result = run(workflow([{"name": "one", "path": "/delay"}]), target(reset_url, type="none"), tracer)
    assert (result.status, result.error_type) == ("failed", "connect")


def test_unresolvable_name_is_a_dns_error(tracer):
    wf = workflow([{"name": "one", "path": "/x"}])
    result = run(wf, TargetConfig(base_url="http://no-such-host.invalid/fhir"), tracer)
    assert (result.status, result.error_type) == ("failed", "dns")


def test_bundle_next_pages_are_followed_with_request_spans(mini_url, tracer, span_exporter):
    steps = [
        {
            "name": "encounters",
            "path": "/Encounter",
            "query": {"patient": "pat-0001"},
            "follow_next_pages": 5,
            "assert": [{"path": "$.entry", "count_gte": 9}],
        }
    ]
    result = run(workflow(steps), target(mini_url), tracer)
    assert result.status == "ok", result.message
    assert result.steps[0].pages == 3
    spans = span_exporter.get_finished_spans()
    (step,) = by_type(spans, schema.SPAN_TYPE_STEP)
    requests = by_type(spans, schema.SPAN_TYPE_REQUEST)
    assert len(requests) == 3
    assert all(r.parent.span_id == step.context.span_id for r in requests)
    assert step.attributes[schema.ATTR_BUNDLE_PAGES] == 3
    assert sum(r.end_time - r.start_time for r in requests) == step.end_time - step.start_time


def test_paging_stops_at_the_limit(mini_url, tracer):
    steps = [{"name": "encounters", "path": "/Encounter", "query": {"patient": "p"}, "follow_next_pages": 1}]
    result = run(workflow(steps), target(mini_url), tracer)
    assert result.steps[0].pages == 2


def test_next_link_off_the_target_is_not_followed(mini_url, tracer):
    steps = [{"name": "x", "path": "/off-target", "follow_next_pages": 2}]
    result = run(workflow(steps), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response")


def test_unusable_tls_files_fail_the_run_instead_of_raising(mini_url, tracer, span_exporter, tmp_path):
    broken = TargetConfig.model_validate({"base_url": f"{mini_url}/fhir", "tls": {"ca_bundle": str(tmp_path / "missing.pem")}})
    result = run(workflow([{"name": "one", "path": "/delay"}]), broken, tracer)
    assert (result.status, result.error_type) == ("failed", "tls")
    (root,) = by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_RUN)
    assert root.attributes[schema.ERROR_TYPE] == "tls"


def test_expected_error_status_is_ok_and_a_step_can_override_think_time(mini_url, tracer):
    steps = [
        {"name": "gone", "path": "/status/404", "expect_status": 404, "think_time_s": 0.0},
        {"name": "other", "path": "/delay"},
        {"name": "last", "path": "/delay"},
    ]
    result = run(workflow(steps, think_time_s=0.3), target(mini_url), tracer)
    assert result.status == "ok", result.message
    assert result.steps[0].http_status == 404
    assert 0.3 <= result.wall_s - result.waiting_s < 0.55  # one think time of 0.3 s, not two


def test_an_unexpected_success_status_is_an_invalid_response(mini_url, tracer):
    result = run(workflow([{"name": "create", "path": "/delay", "expect_status": [201]}]), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response")
    assert "expected 201" in result.message


@pytest.mark.parametrize(
    "steps",
    [
        [{"name": "x", "path": "/bad-gzip"}],
        [{"name": "x", "path": "/bad-next", "follow_next_pages": 2}],
        [
            {"name": "x", "path": "/odd-id", "extract": {"odd": "$.entry[0].resource.id"}},
            {"name": "y", "path": "/delay", "headers": {"X-Echo": "{{ odd }}"}},
        ],
    ],
    ids=["undecodable-body", "malformed-next-link", "unsendable-extracted-value"],
)
def test_odd_responses_are_invalid_responses_not_exceptions(mini_url, tracer, steps):
    result = run(workflow(steps), target(mini_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
