"""The probe's log line for a run that was not ok names its error, and nothing when there is none
(issue 18 item 18: an interrupted run was logged "interrupted, waited 1.818 s (None: None)")."""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.config import SiteConfig, TargetConfig, WorkflowConfig
from collector.probe import Probe
from store import schema


def test_an_interrupted_run_is_logged_without_none(mini_url, caplog) -> None:
    exporter = InMemorySpanExporter()
    target = TargetConfig(base_url=f"{mini_url}/fhir")
    workflow = WorkflowConfig.model_validate(
        {"name": "long", "target": "mini", "interval_s": 0.1, "think_time_s": 0.3,
         "steps": [{"name": f"s{i}", "path": "/delay"} for i in range(5)]}
    )
    probe = Probe({"mini": target}, [SiteConfig(name="ward-7", timezone="Europe/London")], [], [workflow],
                  [exporter], environ={}, probe_id="p")
    caplog.set_level(logging.INFO, logger="collector.probe")
    thread = threading.Thread(target=probe.run_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_STEP for s in exporter.get_finished_spans()
    ):
        time.sleep(0.01)
    time.sleep(0.05)  # inside the run's think time
    probe.stop()
    thread.join(timeout=3)
    probe.shutdown()
    lines = [r.getMessage() for r in caplog.records if "waited" in r.getMessage()]
    assert any("interrupted, waited" in line for line in lines), lines
    assert not any("None" in line for line in lines), lines
