"""The probe: jobs per workflow x site, resource attributes per site, scheduling and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
