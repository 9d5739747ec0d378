"""Secrets and patient identifiers never leave the process.

Every example workflow runs at every site through the command line (`wardwatch -v probe --once`),
as in production: spans to the Parquet store and, since OTEL_EXPORTER_OTLP_ENDPOINT is set, to a
real OTLP/HTTP receiver on 127.0.0.1 (traces and metrics); the testbed's own server spans go to
the same places, as in the demo. Then again with faults (5xx, malformed JSON, 401, connection
reset) and once with a wrong client secret. Every log record
(root logger at DEBUG), the command's output, every Parquet column of every segment (attribute
maps and events included) and every OTLP payload (raw protobuf bytes and their JSON) is scanned
for each test patient's MRN, identifier, resource id and names, any testbed patient id, every
token the testbed issued, and both secret values.

Extends tests/collector/test_privacy.py (which scans the collector's own logs, spans and store
after a direct Probe) with the command line, OTLP, metrics, the testbed's spans and wrong secrets;
its ``forbidden_strings`` and ``PATIENT_ID`` are reused.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import uvicorn
from click.testing import CliRunner
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import testbed
from collector.config import TestPatientConfig
from tests.campaign.support import TESTBED_SECRET, TESTBED_SECRET_VARIABLE, example_data, write_config
from tests.collector.test_privacy import PATIENT_ID, forbidden_strings
from wardwatch import wiring
from wardwatch.cli import main
from wardwatch.config import load_config

WRONG_SECRET = "wrong-secret-campaign-91c2"


@pytest.fixture
def otlp_receiver() -> Iterator[SimpleNamespace]:
    """An OTLP/HTTP receiver on 127.0.0.1 keeping every request body by path."""
    received: list[tuple[str, bytes]] = []

    async def collect(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        received.append((request.url.path, body))
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route(path, collect, methods=["POST"]) for path in ("/v1/traces", "/v1/metrics", "/v1/logs")])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the OTLP receiver did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", received=received)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def payload_text(received: list[tuple[str, bytes]]) -> str:
    parts = []
    for path, body in received:
        parts.append(body.decode("utf-8", errors="replace"))  # protobuf strings are raw UTF-8
        message = ExportTraceServiceRequest() if path == "/v1/traces" else ExportMetricsServiceRequest()
        if path in ("/v1/traces", "/v1/metrics"):
            message.ParseFromString(body)
            parts.append(MessageToJson(message))
    return "\n".join(parts)


def store_text(path: Path) -> str:
    segments = sorted(p for p in path.rglob("*.parquet"))
    assert segments
    return json.dumps([pq.ParquetFile(s).read().to_pylist() for s in segments], default=str)


def test_no_secret_or_patient_identifier_leaves_through_store_logs_output_or_otlp(
    tmp_path: Path, otlp_receiver: SimpleNamespace, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "500")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    caplog.set_level(logging.DEBUG)
    store_path = tmp_path / "data"
    scenario = testbed.scenario_for_tests(2.0, network_ms={"community-hospital": 10.0})
    provisional = write_config(tmp_path / "wardwatch.yaml", "http://127.0.0.1:9", store_path)
    # the testbed's server spans go where the probe's go, as in the demo
    epr_spans = wiring.testbed_tracer_provider(
        wiring.build_exporters(load_config(provisional), {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url})
    )
    tokens: set[str] = set()
    outputs: list[str] = []
    try:
        with testbed.TestbedServer(scenario, tracer_provider=epr_spans, shutdown_timeout_s=1.0) as epr:
            config = write_config(tmp_path / "wardwatch.yaml", epr.base_url, store_path)
            runner = CliRunner()

            def probe(*args: str, secret: str = TESTBED_SECRET, exit_code: int = 1) -> str:
                result = runner.invoke(main, ["-v", "probe", "-c", str(config), "--once", *args],
                                       env={TESTBED_SECRET_VARIABLE: secret, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url})
                assert result.exit_code == exit_code, result.output  # 1: some run was not ok
                tokens.update(epr.state.tokens)
                outputs.append(result.output)
                return result.output

            everywhere = probe(exit_code=0)
            assert everywhere.count(": ok,") == sum(len(w["sites"]) for w in example_data()["workflows"]), everywhere
            epr.set_faults([
                {"endpoint": "GET /Patient/{id}", "kind": "5xx"},
                {"endpoint": "GET /Observation", "kind": "malformed_json"},
                {"endpoint": "GET /Encounter", "kind": "401"},
                {"endpoint": "GET /MedicationRequest", "kind": "reset"},
            ])
            faulty = probe("--site", "ward-7")
            assert "failed" in faulty and "ok," not in faulty
            epr.clear_faults()
            wrong = probe("--site", "outpatient-clinic", secret=WRONG_SECRET)
            assert "auth" in wrong
            dataset = epr.state.dataset
    finally:
        epr_spans.shutdown()

    patients = [TestPatientConfig.model_validate(p) for p in example_data()["patients"]]
    forbidden = forbidden_strings(SimpleNamespace(patients=patients),
                                  SimpleNamespace(state=SimpleNamespace(tokens=tokens, dataset=dataset)))
    forbidden += [WRONG_SECRET]
    assert len(tokens) >= 1 and len(forbidden) > 4 * len(patients)
    paths = {path for path, _ in otlp_receiver.received}
    assert {"/v1/traces", "/v1/metrics"} <= paths, paths
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "open-patient-record" in logs  # the probe did log its runs
    stored = store_text(store_path)
    assert "/fhir/Patient/{patient_id}" in stored and "wardwatch-testbed" in stored  # probe and EPR spans
    for where, text in (("store", stored), ("logs", logs), ("output", "\n".join(outputs)),
                        ("OTLP", payload_text(otlp_receiver.received))):
        leaked = sorted({item for item in forbidden if item in text})
        assert not leaked, f"{where} contain {leaked}"
        found = PATIENT_ID.search(text)
        assert not found, f"{where} contain a patient id: {text[max(0, found.start() - 80): found.end() + 40]!r}"


def test_no_patient_identifier_in_the_logs_when_the_probe_is_used_as_a_library(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The command line keeps httpx's loggers at WARNING; an application (or a notebook) that
    runs the probe through `wardwatch.wiring` or `collector.Probe` with logging at INFO does not."""
    caplog.set_level(logging.INFO)
    for name in ("httpx", "httpcore"):  # as an application leaves them (the CLI, run earlier, raised them)
        caplog.set_level(logging.NOTSET, logger=name)
    with testbed.TestbedServer(testbed.scenario_for_tests(1.0), shutdown_timeout_s=1.0) as epr:
        config = load_config(write_config(tmp_path / "c.yaml", epr.base_url, tmp_path / "data",
                                          workflows=["open-patient-record"]))
        results = wiring.probe_once(config, site="ward-7", environ={TESTBED_SECRET_VARIABLE: TESTBED_SECRET})
    assert [r.status for r in results] == ["ok"]
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    found = PATIENT_ID.search(logs) or ("MRN0000" in logs and "MRN")
    assert not found, f"the logs contain a patient identifier: {logs[:300]!r}"
