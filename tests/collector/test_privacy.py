"""After every example workflow has run (and failed in a few ways), no patient identifier, name,
token or secret appears in the exported spans, in the Parquet store, or in the collector's logs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.probe import Probe
from store import ParquetSpanExporter

SECRET = "testbed-demo-secret"
PATIENT_ID = re.compile(r"pat-\d{4}")


def span_text(spans: Any) -> str:
    return json.dumps(
        [
            {
                "name": span.name,
                "attributes": dict(span.attributes),
                "resource": dict(span.resource.attributes),
                "status": span.status.description,
                "events": [(event.name, dict(event.attributes)) for event in span.events],
            }
            for span in spans
        ],
        default=str,
    )


def store_text(path: Path) -> str:
    tables = [pq.read_table(segment).to_pylist() for segment in sorted(path.rglob("*.parquet"))]
    assert tables, "the store holds no segment"
    return json.dumps(tables, default=str)


def forbidden_strings(example: Any, testbed: Any) -> list[str]:
    """MRNs, patient names and ids of the configured test patients, tokens issued, the secret."""
    state = testbed.state
    found = [SECRET, *state.tokens]
    for patient in example.patients:
        found.append(patient.value)
        found.append(patient.identifier)
        for resource in state.dataset.resources["Patient"].values():
            if any(i.get("value") == patient.value for i in resource.get("identifier", [])):
                found.append(resource["id"])
                for name in resource.get("name", []):
                    found.append(name["family"])
                    found.extend(name.get("given", []))
    return [text for text in found if text]


def test_no_patient_data_or_secret_leaves_the_probe(example, testbed, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="collector")
    memory = InMemorySpanExporter()
    store_path = tmp_path / "store"
    probe = Probe(
        example.targets,
        example.sites,
        example.patients,
        [w.model_copy(update={"think_time_s": 0.0}) for w in example.workflows.values()],
        [ParquetSpanExporter(store_path), memory],
        environ={"WARDWATCH_TESTBED_CLIENT_SECRET": SECRET},
        probe_id="privacy-test",
    )
    ok = probe.run_once()
    # and failures, whose messages are the likeliest place for a leak
    httpx.put(f"{testbed.base_url}/admin/faults", json=[
        {"endpoint": "GET /Patient/{id}", "kind": "5xx"},
        {"endpoint": "GET /Observation", "kind": "malformed_json"},
        {"endpoint": "GET /Encounter", "kind": "401"},
    ]).raise_for_status()
    failed = probe.run_once(site="ward-7")
    probe.shutdown()

    assert {r.status for r in ok} == {"ok"}, [r.message for r in ok if r.status != "ok"]
    assert {r.status for r in failed} == {"failed"}
    exported = span_text(memory.get_finished_spans())
    stored = store_text(store_path)
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "open-patient-record@ward-7: ok" in logs and "http_5xx" in logs  # the probe does log its runs
    results = json.dumps([[r.message, [s.message for s in r.steps]] for r in ok + failed])
    forbidden = forbidden_strings(example, testbed)
    assert len(forbidden) > 3 * len(example.patients)
    for where, text in (("spans", exported), ("store", stored), ("logs", logs), ("results", results)):
        leaked = [item for item in forbidden if item in text]
        assert not leaked, f"{where} contain {leaked}"
        assert not PATIENT_ID.search(text), f"{where} contain a patient id: {PATIENT_ID.search(text)}"
    assert "/fhir/Patient/{patient_id}" in stored  # the template is there instead
