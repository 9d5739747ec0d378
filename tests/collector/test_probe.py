"""The probe: jobs per workflow x site, resource attributes per site, scheduling and shutdown."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.client import ProbeClients
from collector.config import SiteConfig, TargetConfig, WorkflowConfig
from collector.probe import Probe, UnknownNameError
from store import schema

SITES = [SiteConfig(name="ward-7", timezone="Europe/London"), SiteConfig(name="clinic", timezone="Europe/Dublin")]


class CountingExporter(SpanExporter):
    """Records spans and how often it was shut down."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.shutdowns = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shutdowns += 1


def make_probe(base_url: str, exporters: Sequence[SpanExporter], **workflow_fields) -> Probe:
    target = TargetConfig(base_url=f"{base_url}/fhir", headers={"X-Wardwatch-Site": "{{ site }}"})
    workflows = [
        WorkflowConfig.model_validate({"name": "a", "target": "mini", "steps": [{"name": "s", "path": "/delay"}], **workflow_fields}),
        WorkflowConfig.model_validate({"name": "b", "target": "mini", "sites": ["clinic"], "steps": [{"name": "s", "path": "/delay"}]}),
    ]
    return Probe({"mini": target}, SITES, [], workflows, exporters, environ={}, probe_id="probe-1")


def test_run_once_runs_every_workflow_at_its_sites_with_site_resources(mini_url):
    exporter = CountingExporter()
    probe = make_probe(mini_url, [exporter])
    results = probe.run_once()
    probe.shutdown()
    assert [(r.workflow, r.site, r.status) for r in results] == [("a", "ward-7", "ok"), ("a", "clinic", "ok"), ("b", "clinic", "ok")]
    roots = [s for s in exporter.spans if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    assert len(roots) == 3
    for span in roots:
        resource = span.resource.attributes
        assert resource[schema.SERVICE_NAME_ATTR] == "wardwatch-probe"
        assert resource[schema.ATTR_PROBE_ID] == "probe-1"
        assert resource[schema.ATTR_SIMULATED] == "false"
        assert resource[schema.ATTR_SITE] == span.attributes[schema.ATTR_SITE]
        assert resource[schema.ATTR_SITE_TIMEZONE] == {"ward-7": "Europe/London", "clinic": "Europe/Dublin"}[resource[schema.ATTR_SITE]]
        assert schema.ATTR_SLOT in span.attributes
    assert exporter.shutdowns == 1  # shared by two site providers, shut down once by the probe


def test_run_once_narrows_to_a_site_and_workflow(mini_url):
    probe = make_probe(mini_url, [InMemorySpanExporter()])
    assert [(r.workflow, r.site) for r in probe.run_once(site="clinic", workflow="b")] == [("b", "clinic")]
    assert probe.run_once(site="ward-7", workflow="b") == []
    with pytest.raises(UnknownNameError, match="ward-9"):
        probe.run_once(site="ward-9")
    with pytest.raises(UnknownNameError, match="known: a, b"):
        probe.run_once(workflow="zzz")
    probe.shutdown()
    probe.shutdown()  # idempotent


def test_unknown_target_is_refused(mini_url):
    workflow = WorkflowConfig.model_validate({"name": "a", "target": "nowhere", "steps": [{"name": "s", "path": "/x"}]})
    with pytest.raises(UnknownNameError, match="nowhere"):
        Probe({}, SITES, [], [workflow], [], environ={}, probe_id="p")


def test_run_forever_runs_at_slots_and_stops_cleanly(mini_url):
    exporter = InMemorySpanExporter()
    probe = make_probe(mini_url, [exporter], interval_s=0.2, jitter_s=0.05, sites=["ward-7"])
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop,), kwargs={"workflow": "a"})
    thread.start()
    time.sleep(0.9)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    probe.shutdown()
    roots = [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    assert 3 <= len(roots) <= 5
    offsets = [s.attributes[schema.ATTR_SLOT_OFFSET_S] for s in roots]
    assert all(0 <= offset < 0.2 for offset in offsets)
    slots = sorted(s.attributes[schema.ATTR_SLOT] for s in roots)
    assert len(set(slots)) == len(slots)


def missed_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_MISSED_SLOT]


def test_slots_passing_during_a_long_run_are_recorded_as_busy(mini_url):
    target = TargetConfig(base_url=f"{mini_url}/fhir")
    slow = WorkflowConfig.model_validate(
        {"name": "slow", "target": "mini", "interval_s": 0.1, "steps": [{"name": "s", "path": "/delay", "query": {"ms": 350}}]}
    )
    exporter = InMemorySpanExporter()
    probe = Probe({"mini": target}, SITES[:1], [], [slow], [exporter], environ={}, probe_id="p")
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop,))
    thread.start()
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=5)
    probe.shutdown()
    runs = [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    missed = missed_spans(exporter)
    assert len(runs) >= 2 and len(missed) >= 2 * (len(runs) - 1)
    assert {s.attributes[schema.ATTR_MISSED_REASON] for s in missed} == {"busy"}
    assert all(s.end_time == s.start_time for s in missed)
    # every slot from the first to the last is accounted for: run or missed, none twice
    slots = sorted(s.attributes[schema.ATTR_SLOT] for s in runs + missed)
    assert len(set(slots)) == len(slots)
    stamps = sorted(round(datetime.fromisoformat(slot).timestamp() * 10) for slot in slots)
    assert stamps == list(range(stamps[0], stamps[-1] + 1))


def test_a_slot_passing_while_missed_slots_are_recorded_is_run_not_lost(mini_url, monkeypatch):
    """The next slot is decided with the missed ones: a slot boundary that passes while they are
    being recorded (a loaded machine) once left a slot neither run nor recorded as missed."""
    now = [100.0]
    workflow = WorkflowConfig.model_validate(
        {"name": "slow", "target": "mini", "interval_s": 0.1, "steps": [{"name": "s", "path": "/delay"}]})
    exporter = InMemorySpanExporter()
    probe = Probe({"mini": TargetConfig(base_url=f"{mini_url}/fhir")}, SITES[:1], [], [workflow], [exporter],
                  environ={}, probe_id="p", clock=lambda: now[0])
    job = probe.jobs()[0]

    def run_job(*_args: Any, **_kwargs: Any) -> None:
        now[0] = 100.43  # the run took 0.43 s: slots 1001-1003 passed, 1004 is the latest

    record = probe.record_missed_slot

    def slow_record(*args: Any, **kwargs: Any) -> None:
        record(*args, **kwargs)
        now[0] += 0.1  # each record takes a slot's length

    monkeypatch.setattr(probe, "run_job", run_job)
    monkeypatch.setattr(probe, "record_missed_slot", slow_record)
    assert probe._run_slot(job, 1000) == 1004
    probe.shutdown()
    missed = sorted(round(datetime.fromisoformat(s.attributes[schema.ATTR_SLOT]).timestamp() * 10)
                    for s in missed_spans(exporter))
    assert missed == [1001, 1002, 1003]


def test_a_restart_records_the_slots_missed_while_the_probe_was_down(mini_url, tmp_path):
    now_s = 1_000_005.0
    (tmp_path / "probe-state.json").write_text(
        json.dumps({"version": 1, "heartbeat_s": 999_962.0, "jobs": {"a@ward-7": {"last_slot_s": 999_960.0}}})
    )
    exporter = InMemorySpanExporter()
    target = TargetConfig(base_url=f"{mini_url}/fhir")
    workflow = WorkflowConfig.model_validate({"name": "a", "target": "mini", "interval_s": 10, "steps": [{"name": "s", "path": "/delay"}]})
    reader = InMemoryMetricReader()
    probe = Probe(
        {"mini": target}, SITES, [], [workflow], [exporter],
        environ={}, probe_id="p", state_dir=tmp_path, clock=lambda: now_s, metric_readers=[reader],
    )
    stopped = threading.Event()
    stopped.set()
    probe.run_forever(stopped)
    missed = missed_spans(exporter) if probe.force_flush() else []
    assert [s.attributes[schema.ATTR_SLOT] for s in missed] == [
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds") for t in (999_970.0, 999_980.0, 999_990.0, 1_000_000.0)
    ]
    assert {s.attributes[schema.ATTR_MISSED_REASON] for s in missed} == {"probe_down"}
    assert {s.attributes[schema.ATTR_MISSED_SINCE] for s in missed} == {datetime.fromtimestamp(999_962.0, tz=UTC).isoformat(timespec="milliseconds")}
    assert {s.attributes[schema.ATTR_SITE] for s in missed} == {"ward-7"}  # clinic had no previous state
    state = json.loads((tmp_path / "probe-state.json").read_text())
    assert state["jobs"]["a@ward-7"]["last_slot_s"] == 1_000_000.0
    probe.shutdown()
    counts = metric_points(reader, "wardwatch.slots.missed")
    assert [(p.attributes[schema.ATTR_MISSED_REASON], p.value) for p in counts] == [("probe_down", 4)]


def test_a_restart_after_kill_9_records_as_missed_every_slot_after_the_last_one_stored(mini_url, tmp_path):
    """The state file says slot 999,960 was handled, but its run (and the one before) died in
    memory with the process: the store's last recorded slot is 999,930. Every slot after it is
    missed, so none is left with neither a run nor a missed slot."""
    from store.writer import last_slots, write_spans

    def stored(slot_s: float, span_type: str, span_id: str) -> dict[str, Any]:
        return {
            schema.TIMESTAMP: int(slot_s * 1e9), schema.TRACE_ID: "a" * 32, schema.SPAN_ID: span_id,
            schema.SPAN_ATTRIBUTES: {
                schema.ATTR_SPAN_TYPE: span_type, schema.ATTR_WORKFLOW: "a", schema.ATTR_SITE: "ward-7",
                schema.ATTR_SLOT: datetime.fromtimestamp(slot_s, tz=UTC).isoformat(timespec="milliseconds"),
            },
        }

    write_spans(tmp_path, [stored(999_920.0, schema.SPAN_TYPE_MISSED_SLOT, "1" * 16), stored(999_930.0, schema.SPAN_TYPE_RUN, "2" * 16)])
    (tmp_path / "probe-state.json").write_text(
        json.dumps({"version": 1, "heartbeat_s": 999_962.0, "jobs": {"a@ward-7": {"last_slot_s": 999_960.0}}})
    )
    assert {key: slot.timestamp() for key, slot in last_slots(tmp_path).items()} == {("a", "ward-7"): 999_930.0}
    exporter = InMemorySpanExporter()
    workflow = WorkflowConfig.model_validate({"name": "a", "target": "mini", "interval_s": 10, "steps": [{"name": "s", "path": "/delay"}]})
    probe = Probe(
        {"mini": TargetConfig(base_url=f"{mini_url}/fhir")}, SITES, [], [workflow], [exporter],
        environ={}, probe_id="p", state_dir=tmp_path, clock=lambda: 1_000_005.0,
        recorded_slots=lambda: {f"{w}@{s}": slot.timestamp() for (w, s), slot in last_slots(tmp_path).items()},
    )
    stopped = threading.Event()
    stopped.set()
    probe.run_forever(stopped)
    missed = missed_spans(exporter) if probe.force_flush() else []
    probe.shutdown()
    assert [s.attributes[schema.ATTR_SLOT] for s in missed] == [
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")
        for t in (999_940.0, 999_950.0, 999_960.0, 999_970.0, 999_980.0, 999_990.0, 1_000_000.0)
    ]


def test_a_slot_passing_while_the_missed_ones_are_recorded_at_start_is_run_not_lost(mini_url, tmp_path):
    """Start at 1,000,009.99: slots up to 1,000,000 were missed while down. Recording them (and
    reading the store) takes time, and slot 1,000,010 passes meanwhile: it is run, late, not lost
    between the two (the job used to start from the clock read after recording)."""
    (tmp_path / "probe-state.json").write_text(
        json.dumps({"version": 1, "heartbeat_s": 999_962.0, "jobs": {"a@ward-7": {"last_slot_s": 999_960.0}}})
    )
    readings = iter([1_000_009.99])

    def clock() -> float:
        return next(readings, 1_000_010.5)

    exporter = InMemorySpanExporter()
    workflow = WorkflowConfig.model_validate({"name": "a", "target": "mini", "interval_s": 10, "steps": [{"name": "s", "path": "/delay"}]})
    probe = Probe(
        {"mini": TargetConfig(base_url=f"{mini_url}/fhir")}, SITES[:1], [], [workflow], [exporter],
        environ={}, probe_id="p", state_dir=tmp_path, clock=clock,
    )
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not [s for s in exporter.get_finished_spans() if s.attributes.get(schema.ATTR_SPAN_TYPE) == "run"]:
        assert time.monotonic() < deadline, "no run"
        probe.force_flush()
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    probe.force_flush()
    spans = exporter.get_finished_spans()
    missed = [s.attributes[schema.ATTR_SLOT] for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == "missed_slot"]
    ran = [s.attributes[schema.ATTR_SLOT] for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == "run"]
    probe.shutdown()
    iso = [datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds") for t in (999_970.0, 999_980.0, 999_990.0, 1_000_000.0, 1_000_010.0)]
    assert (missed, ran) == (iso[:4], iso[4:])


def test_stop_ends_run_forever_from_another_thread(mini_url):
    probe = make_probe(mini_url, [InMemorySpanExporter()], interval_s=30)
    thread = threading.Thread(target=probe.run_forever)
    thread.start()
    time.sleep(0.1)
    assert not probe.stopping
    probe.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    probe.shutdown()


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_metrics_record_runs_and_durations_with_objective_boundaries(mini_url):
    reader = InMemoryMetricReader()
    target = TargetConfig(base_url=f"{mini_url}/fhir")
    workflows = [
        WorkflowConfig.model_validate({"name": "a", "target": "mini", "steps": [{"name": "s", "path": "/delay"}, {"name": "t", "path": "/status/500"}]}),
    ]
    probe = Probe({"mini": target}, SITES, [], workflows, [], environ={}, probe_id="p", metric_readers=[reader], thresholds_s=[2.5, 0.8])
    probe.run_once()
    runs = metric_points(reader, "wardwatch.runs")
    assert sorted((p.attributes[schema.ATTR_SITE], p.attributes[schema.ATTR_RUN_STATUS], p.value) for p in runs) == [
        ("clinic", "failed", 1), ("ward-7", "failed", 1)
    ]
    (workflow_hist, *_) = metric_points(reader, "wardwatch.workflow.duration")
    assert 2.5 in workflow_hist.explicit_bounds and 0.8 in workflow_hist.explicit_bounds and 1.0 in workflow_hist.explicit_bounds
    assert list(workflow_hist.explicit_bounds) == sorted(workflow_hist.explicit_bounds)
    steps = metric_points(reader, "wardwatch.step.duration")
    assert sorted((p.attributes[schema.ATTR_STEP], p.attributes.get(schema.ERROR_TYPE), p.count) for p in steps) == [
        ("s", None, 1), ("s", None, 1), ("t", "http_5xx", 1), ("t", "http_5xx", 1)
    ]
    probe.shutdown()


def test_stopping_during_a_run_records_it_as_interrupted(mini_url):
    exporter = InMemorySpanExporter()
    target = TargetConfig(base_url=f"{mini_url}/fhir")
    workflow = WorkflowConfig.model_validate(
        {"name": "long", "target": "mini", "interval_s": 0.1, "think_time_s": 0.3, "steps": [{"name": f"s{i}", "path": "/delay"} for i in range(5)]}
    )
    probe = Probe({"mini": target}, SITES[:1], [], [workflow], [exporter], environ={}, probe_id="p")
    thread = threading.Thread(target=probe.run_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_STEP for s in exporter.get_finished_spans()
    ):
        time.sleep(0.01)
    time.sleep(0.05)  # inside the first run's think time (0.3 s after its first step)
    probe.stop()
    thread.join(timeout=3)
    assert not thread.is_alive()
    probe.shutdown()
    (root,) = [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    assert root.attributes[schema.ATTR_RUN_STATUS] == "interrupted"
    steps = [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_STEP]
    assert 1 <= len(steps) < 5


def test_runs_beyond_the_targets_concurrency_wait_their_turn_and_start_late(mini_url):
    exporter = InMemorySpanExporter()
    target = TargetConfig(base_url=f"{mini_url}/fhir", max_concurrent_runs=1)
    workflow = WorkflowConfig.model_validate(
        {"name": "slow", "target": "mini", "interval_s": 30, "steps": [{"name": "s", "path": "/delay", "query": {"ms": 300}}]}
    )
    now = [0.0]
    probe = Probe({"mini": target}, SITES, [], [workflow], [exporter], environ={}, probe_id="p", clock=lambda: now[0])
    now[0] = time.time()
    slot = datetime.fromtimestamp(now[0], tz=UTC)
    jobs = probe.jobs()
    threads = [threading.Thread(target=probe.run_job, args=(job,), kwargs={"slot": slot}) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    probe.shutdown()
    roots = [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    offsets = sorted(s.attributes[schema.ATTR_SLOT_OFFSET_S] for s in roots)
    assert len(offsets) == 2
    assert offsets[0] < 0.2 and offsets[1] >= 0.3  # the second waited for the first to finish


def test_a_bug_in_a_run_is_recorded_as_a_failed_run_and_the_job_keeps_its_schedule(mini_url, caplog):
    """An unexpected exception inside a run (here from building its client) is a failed run with
    a message, logged once with its stack (not its message, which could quote response data), and
    the job's thread goes on to its next slots."""
    clients = ProbeClients()
    calls: list[int] = []
    held_value = "MRN" + "000042"  # a value the bug's message quotes (not in this file's source as such)

    def first_call_fails(target: TargetConfig, keep_alive: bool) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"bug while holding {held_value}")
        return clients(target, keep_alive)

    exporter = InMemorySpanExporter()
    workflow = WorkflowConfig.model_validate(
        {"name": "a", "target": "mini", "interval_s": 0.2, "sites": ["ward-7"], "steps": [{"name": "s", "path": "/delay"}]}
    )
    probe = Probe({"mini": TargetConfig(base_url=f"{mini_url}/fhir")}, SITES, [], [workflow], [exporter],
                  environ={}, probe_id="probe-1", client_factory=first_call_fails)
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop,))
    with caplog.at_level(logging.ERROR, logger="collector"):
        thread.start()
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    probe.shutdown()
    roots = sorted(
        (s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_RUN),
        key=lambda s: s.start_time,
    )
    assert len(roots) >= 3
    first, *later = roots
    assert first.attributes[schema.ATTR_RUN_STATUS] == "failed"
    assert first.attributes[schema.ERROR_TYPE] == "invalid_response"
    assert "RuntimeError" in first.status.description
    assert all(s.attributes[schema.ATTR_RUN_STATUS] == "ok" for s in later)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "Traceback" in errors[0].getMessage() and "first_call_fails" in errors[0].getMessage()
    assert held_value not in caplog.text
