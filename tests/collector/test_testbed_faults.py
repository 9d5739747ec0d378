"""Every fault the testbed injects maps to the right error.type, in both connection modes, and the
probe keeps going: the next run after the fault clears is ok."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.auth import TokenCache
from collector.probe import Probe
from store import schema

TESTBED_ENV = {"WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}


def two_steps(example: Any, connection: str, **fields: Any) -> Any:
    """find-patient then read-patient, no think time."""
    base = example.workflows["open-patient-record"]
    return base.model_copy(update={"steps": base.steps[:2], "think_time_s": 0.0, "connection": connection, **fields})


def put_faults(testbed: Any, rules: list[dict[str, Any]]) -> None:
    response = httpx.put(f"{testbed.base_url}/admin/faults", json=rules)
    response.raise_for_status()


@pytest.mark.parametrize("connection", ["fresh", "reuse"])
@pytest.mark.parametrize(
    ("rule", "error_type", "status"),
    [
        ({"kind": "5xx", "status": 503}, "http_5xx", "failed"),
        ({"kind": "reset"}, "connect", "failed"),
        ({"kind": "malformed_json"}, "invalid_response", "failed"),
        ({"kind": "401"}, "auth", "failed"),
        ({"kind": "hang", "hang_s": 3.0}, "timeout", "timed_out"),
    ],
)
def test_each_fault_kind_yields_its_error_type(example, testbed, tracer, span_exporter, rule, error_type, status, connection):
    # A step timeout far above an unfaulted step's time even on a loaded machine (a fresh
    # connection per step included), and far below the hang.
    workflow = two_steps(example, connection, step_timeout_s=1.0)
    cache = TokenCache()
    put_faults(testbed, [{"endpoint": "GET /Patient/{id}", **rule}])
    result = example.run(workflow, tracer, token_cache=cache)
    assert (result.status, result.error_type) == (status, error_type), result.message
    assert [s.status for s in result.steps] == ["ok", "failed"]
    failed = result.steps[1]
    spans = span_exporter.get_finished_spans()
    step_span = next(s for s in spans if s.attributes.get(schema.ATTR_STEP) == "read-patient")
    root = next(s for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == schema.SPAN_TYPE_RUN)
    assert step_span.attributes[schema.ERROR_TYPE] == root.attributes[schema.ERROR_TYPE] == error_type
    assert root.attributes[schema.ATTR_RUN_STATUS] == status
    assert step_span.status.description == failed.message
    assert "pat-" not in failed.message and "MRN" not in failed.message
    if error_type == "timeout":  # cut at the step timeout, well before the 3 s hang ends
        # (1 s for the whole exchange: its phases, which miss the moments between them, a
        # little less)
        assert 0.95 <= failed.duration_s < 2.5

    httpx.delete(f"{testbed.base_url}/admin/faults").raise_for_status()
    again = example.run(workflow, tracer, token_cache=cache)
    assert again.status == "ok", again.message


def test_token_endpoint_failure_is_an_auth_error_with_its_own_span(example, testbed, tracer, span_exporter):
    put_faults(testbed, [{"endpoint": "POST /auth/token", "kind": "5xx"}])
    result = example.run(two_steps(example, "reuse"), tracer)
    assert (result.status, result.error_type) == ("failed", "auth")
    auth = [s for s in span_exporter.get_finished_spans() if s.attributes.get(schema.ATTR_SPAN_TYPE) == schema.SPAN_TYPE_AUTH]
    assert len(auth) == 1
    assert auth[0].attributes[schema.ERROR_TYPE] == "auth"
    assert auth[0].attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 500


def test_run_timeout_cuts_a_hanging_step(example, testbed, tracer):
    put_faults(testbed, [{"endpoint": "GET /Patient/{id}", "kind": "hang", "hang_s": 3.0}])
    workflow = two_steps(example, "reuse", step_timeout_s=2.5, timeout_s=1.5)
    result = example.run(workflow, tracer)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    assert result.wall_s < 2.4  # the run's 1.5 s, not the step's 2.5 s nor the 3 s hang
    assert "run's timeout" in result.message


def test_failures_in_some_runs_do_not_stop_later_runs(example, testbed, tracer):
    put_faults(testbed, [{"endpoint": "GET /Patient/{id}", "kind": "5xx", "rate": 0.5}])
    workflow = two_steps(example, "reuse")
    cache = TokenCache()
    statuses = [example.run(workflow, tracer, token_cache=cache).status for _ in range(12)]
    assert set(statuses) == {"ok", "failed"}


def test_a_hanging_target_gives_timed_out_runs_and_busy_missed_slots_not_silence(example, testbed):
    """Target down is not probe down: runs are recorded as timed out, and the slots that passed
    while a run waited for the hanging target are recorded as missed (busy)."""
    put_faults(testbed, [{"endpoint": "GET /Patient", "kind": "hang", "hang_s": 1.0}])
    exporter = InMemorySpanExporter()
    workflow = two_steps(example, "reuse", interval_s=0.1, jitter_s=0.0, step_timeout_s=0.35, timeout_s=1.0)
    probe = Probe(
        example.targets, example.sites[:1], example.patients, [workflow], [exporter],
        environ=TESTBED_ENV, probe_id="outage-test",
    )
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop,))
    thread.start()
    time.sleep(1.2)
    stop.set()
    thread.join(timeout=5)
    probe.shutdown()
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    missed = [s for s in spans if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_MISSED_SLOT]
    assert runs and {r.attributes[schema.ATTR_RUN_STATUS] for r in runs} <= {"timed_out", "interrupted"}
    assert runs[0].attributes[schema.ERROR_TYPE] == "timeout"
    assert len(missed) >= 2 and {m.attributes[schema.ATTR_MISSED_REASON] for m in missed} == {"busy"}
