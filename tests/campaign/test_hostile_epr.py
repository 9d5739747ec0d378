"""A hostile EPR on a raw socket: what it sends never reaches a message, never crashes or holds a run.

Issue 18, items 1, 2, 9, 10 and 15. The server (``hostile.py``) writes exactly the bytes a test
scripts: malformed status lines and headers, bad chunk headers, random bytes, tokens and values
with CR/LF, bodies dripped a byte at a time, bodies too large on the wire or once inflated.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import socket
import threading
import time
import tracemalloc
import zlib
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from click.testing import CliRunner

from collector.config import SiteConfig, TargetConfig, TestPatientConfig, WorkflowConfig
from collector.runner import RunResult, run_workflow
from tests.campaign.hostile import Request, answer, drip, hostile_server
from tests.campaign.support import TESTBED_SECRET, TESTBED_SECRET_VARIABLE, write_config
from tests.campaign.test_secrets_never_leave import otlp_receiver, payload_text, store_text  # noqa: F401 - a fixture
from wardwatch.cli import main

SITE = SiteConfig(name="ward-7", timezone="Europe/London", title="Ward 7")
PATIENTS = [TestPatientConfig(identifier="https://testbed.wardwatch.example/mrn|MRN000042")]
SECRET = "hostile-client-secret"
# What a hostile answer carries; none of it may reach a message, a span or a log line.
PATIENT = ("John", "SMITH", "MRN123456")
SEEDS = range(20261207, 20261207 + 60)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider.get_tracer("tests.campaign.hostile")
    provider.shutdown()


def target(base_url: str, *, oauth: bool = False, **fields: Any) -> TargetConfig:
    auth: dict[str, Any] = {"type": "none"}
    if oauth:
        auth = {
            "type": "oauth2_client_credentials",
            "token_url": f"{base_url}/auth/token",
            "client_id": "probe",
            "client_secret": "${env:HOSTILE_SECRET}",
        }
    return TargetConfig.model_validate({"base_url": f"{base_url}/fhir", "auth": auth, **fields})


def workflow(steps: list[dict[str, Any]] | None = None, **fields: Any) -> WorkflowConfig:
    steps = steps or [{"name": "find-patient", "path": "/Patient", "query": {"identifier": "{{ patient_identifier }}"}}]
    return WorkflowConfig.model_validate({"name": "open-record", "target": "epr", "steps": steps, **fields})


def run(wf: WorkflowConfig, tgt: TargetConfig, tracer: Any) -> RunResult:
    return run_workflow(
        wf, tgt, SITE, tracer=tracer, target_name="epr", patients=PATIENTS,
        environ={"HOSTILE_SECRET": SECRET}, rng=random.Random(1),
    )


def texts(result: RunResult, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every message the run produced: its result, its steps, its spans' statuses and attributes, the log."""
    found = [result.message or ""] + [step.message or "" for step in result.steps]
    for span in spans.get_finished_spans():
        found.append(span.status.description or "")
        found.extend(str(value) for value in (span.attributes or {}).values())
    found.extend(record.getMessage() for record in caplog.records)
    return found


def assert_nothing_of(secrets: tuple[str, ...], found: list[str]) -> None:
    for text in found:
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {text!r}"


def fixed(raw: bytes) -> Any:
    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        conn.sendall(raw)
        conn.close()

    return behaviour


MALFORMED = {
    "status-line": b"HTTP/1.1 2x0 Patient John SMITH MRN123456\r\nContent-Length: 0\r\n\r\n",
    "status-line-no-version": b"John SMITH MRN123456 200 OK\r\n\r\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nPatient John SMITH MRN123456\r\n\r\n{}",
    "header-bad-value": b"HTTP/1.1 200 OK\r\nContent-Length: John SMITH MRN123456\r\n\r\n{}",
    "bad-chunk-header": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"John SMITH MRN123456\r\n{}\r\n0\r\n\r\n"
    ),
    "chunk-too-short": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nJohn SMITH MRN123456"
    ),
    "reason-phrase": b"HTTP/1.1 500 Patient John SMITH MRN123456\r\nContent-Length: 0\r\n\r\n",
    "status-999": b"HTTP/1.1 999 John SMITH MRN123456\r\nContent-Length: 0\r\n\r\n",
    "json-error-quoting": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"x\": John SMITH MRN123456 }  ",
    "http-0.9": b"John SMITH MRN123456\n",
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-Patient: John\x00SMITH MRN123456\r\nContent-Length: 0\r\n\r\n",
    "header-name-with-space": b"HTTP/1.1 200 OK\r\nJohn SMITH: MRN123456\r\nContent-Length: 0\r\n\r\n",
    "conflicting-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\nX-Patient: John SMITH MRN123456\r\n\r\n{}",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\nX-Patient: John SMITH MRN123456\r\n\r\n{}",
    "unknown-transfer-encoding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: John SMITH MRN123456\r\n\r\n{}",
    "chunk-size-overflow": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\nJohn SMITH MRN123456\r\n",
    "obsolete-line-folding": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n John SMITH MRN123456\r\nContent-Length: 0\r\n\r\n",
    "huge-header-line": b"HTTP/1.1 200 OK\r\nX-Patient: " + b"John SMITH MRN123456 " * 5000 + b"\r\n\r\n",
    "tls-on-a-plain-port": b"\x16\x03\x01\x00\x2aJohn SMITH MRN123456" + bytes(range(32)),
    "truncated-body": b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"name\": \"John SMITH MRN123456",
    "location-redirect": b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/Patient/John-SMITH-MRN123456\r\nContent-Length: 0\r\n\r\n",
    "gzip-garbage": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\nJohn SMITH MRN123456",
}


# Odd but within what HTTP/1.1 parsers accept (a folded header line, a 100 KB header): ok runs.
ACCEPTED = {"obsolete-line-folding", "huge-header-line"}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_answer_never_reaches_a_message(kind, tracer, spans, caplog):
    caplog.set_level(logging.DEBUG)
    with hostile_server(fixed(MALFORMED[kind])) as (base_url, _seen):
        result = run(workflow(), target(base_url), tracer)
    if kind in ACCEPTED:
        assert result.status == "ok", result.message
        assert_nothing_of(PATIENT, texts(result, spans, caplog))
        return
    assert result.status == "failed"
    assert result.error_type in ("invalid_response", "connect", "http_5xx", "timeout"), result.message
    assert "unexpectedly" not in (result.message or "")
    assert_nothing_of(PATIENT, texts(result, spans, caplog))


def test_random_bytes_never_reach_a_message(tracer, spans, caplog):
    """60 seeded answers of random bytes (half after a valid status line) with the patient inside."""
    caplog.set_level(logging.DEBUG)
    kinds: dict[str, int] = {}
    for seed in SEEDS:
        rng = random.Random(seed)
        def noise(most: int) -> bytes:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(most)))

        # A line of random bytes with the patient inside (as the status line, or after a valid
        # one as a header line), then more random bytes.
        raw = noise(20) + b" John SMITH MRN123456 " + noise(40) + b"\r\n" + noise(300) + b"\r\n\r\n" + noise(100)
        if seed % 2:
            raw = b"HTTP/1.1 200 OK\r\n" + raw
        spans.clear()
        caplog.clear()
        with hostile_server(fixed(raw)) as (base_url, _seen):
            result = run(workflow(), target(base_url), tracer)
        assert result.status == "failed" and "unexpectedly" not in (result.message or ""), result.message
        assert_nothing_of(PATIENT, texts(result, spans, caplog))
        kinds[result.error_type or ""] = kinds.get(result.error_type or "", 0) + 1
    assert set(kinds) <= {"invalid_response", "connect"}, kinds


def token_endpoint(token_body: bytes, resource_body: bytes = b'{"resourceType": "Bundle", "entry": []}') -> Any:
    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        if request.path.startswith("/auth/token"):
            conn.sendall(answer(200, token_body, content_type="application/json"))
        else:
            conn.sendall(answer(200, resource_body))

    return behaviour


def test_a_token_with_cr_lf_is_an_auth_failure_that_never_shows_the_token(tracer, spans, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok-0123456789abcdef\r\nX-Patient: MRN123456"
    body = json.dumps({"access_token": token, "token_type": "bearer", "expires_in": 300}).encode()
    with hostile_server(token_endpoint(body)) as (base_url, seen):
        result = run(workflow(), target(base_url, oauth=True), tracer)
    assert (result.status, result.error_type) == ("failed", "auth"), result.message
    assert_nothing_of(("tok-0123456789abcdef", "MRN123456", SECRET), texts(result, spans, caplog))
    assert [r.path for r in seen] == ["/auth/token"], "the request with the bad token was not sent"


def test_an_extracted_value_with_cr_lf_is_never_sent_in_a_header_nor_echoed(tracer, spans, caplog):
    caplog.set_level(logging.DEBUG)
    resource = json.dumps({"resourceType": "Patient", "id": "pat-1\r\nX-Injected: John SMITH MRN123456"}).encode()
    steps = [
        {"name": "read-patient", "path": "/Patient/1", "extract": {"patient_id": "$.id"}},
        {"name": "chart", "path": "/Observation", "headers": {"X-Patient": "{{ patient_id }}"}},
    ]
    with hostile_server(token_endpoint(b"{}", resource)) as (base_url, seen):
        result = run(workflow(steps), target(base_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert "X-Patient" in (result.message or "")
    assert_nothing_of(PATIENT, texts(result, spans, caplog))
    assert [r.path for r in seen] == ["/fhir/Patient/1"]


def test_json_nested_200000_deep_is_an_invalid_response(tracer, spans, caplog):
    deep = b"[" * 200_000 + b"]" * 200_000
    with hostile_server(fixed(answer(200, deep))) as (base_url, _seen):
        result = run(workflow([{"name": "s", "path": "/Patient", "assert": [{"path": "$[0]", "exists": True}]}]),
                     target(base_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert "unexpectedly" not in (result.message or "")


def test_a_token_endpoint_with_deep_json_is_an_auth_failure(tracer, spans, caplog):
    deep = b"[" * 200_000 + b"]" * 200_000
    with hostile_server(token_endpoint(deep)) as (base_url, _seen):
        result = run(workflow(), target(base_url, oauth=True), tracer)
    assert (result.status, result.error_type) == ("failed", "auth"), result.message


def test_a_token_endpoint_with_bad_gzip_is_a_classified_failure(tracer, spans, caplog):
    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        conn.sendall(answer(200, b"not gzip at all John SMITH", content_type="application/json",
                            extra="Content-Encoding: gzip\r\n"))

    with hostile_server(behaviour) as (base_url, _seen):
        result = run(workflow(), target(base_url, oauth=True), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert "unexpectedly" not in (result.message or "") and "could not be decoded" in (result.message or "")


def test_status_999_is_an_invalid_response_not_a_server_error(tracer, spans, caplog):
    with hostile_server(fixed(answer(999, b"{}"))) as (base_url, _seen):
        result = run(workflow(), target(base_url), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert result.steps[0].http_status == 999


# -- Slow drip: the step's and the run's deadlines bound the whole exchange (item 9) -----------


def _headers_then_body_drip(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    drip(conn, b" " * 100, 0.5, stop)


def _continue_drip(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    drip(conn, b"HTTP/1.1 100 Continue\r\n\r\n" * 80, 0.5, stop, piece=len(b"HTTP/1.1 100 Continue\r\n\r\n"))


def _status_line_drip(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0.5, stop)


DRIPS = {"body-byte-by-byte": _headers_then_body_drip, "100-continue": _continue_drip, "status-line-byte-by-byte": _status_line_drip}


@pytest.mark.parametrize("behaviour", list(DRIPS.values()), ids=list(DRIPS))
def test_a_dripping_server_is_cut_at_the_step_deadline_and_the_run_timed_out(behaviour, tracer, spans):
    with hostile_server(behaviour) as (base_url, _seen):
        started = time.monotonic()
        result = run(workflow(step_timeout_s=1.0, timeout_s=10.0), target(base_url), tracer)
        elapsed_s = time.monotonic() - started
    assert (result.status, result.error_type) == ("timed_out", "timeout"), result.message
    # Cut at the deadline, not after the whole drip (40 s): a generous bound for a busy machine.
    assert elapsed_s < 2.5, elapsed_s
    assert result.steps[0].duration_s <= 1.2


@pytest.mark.parametrize("behaviour", list(DRIPS.values()), ids=list(DRIPS))
def test_a_dripping_server_is_cut_at_the_run_deadline(behaviour, tracer, spans):
    """The first step is answered at once; the second drips, and the run's 1.5 s run out first."""

    def first_fast_then_drip(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        if request.path.startswith("/fhir/Patient"):
            conn.sendall(answer(200, b"{}"))
        else:
            behaviour(conn, request, stop)

    steps = [{"name": "find-patient", "path": "/Patient"}, {"name": "read-notes", "path": "/DocumentReference"}]
    with hostile_server(first_fast_then_drip) as (base_url, _seen):
        started = time.monotonic()
        result = run(workflow(steps, step_timeout_s=1.5, timeout_s=1.5, think_time_s=0.7), target(base_url), tracer)
        elapsed_s = time.monotonic() - started
    assert (result.status, result.error_type) == ("timed_out", "timeout"), result.message
    assert "run's timeout" in (result.message or "")
    assert elapsed_s < 3.0, elapsed_s
    assert result.steps[1].duration_s <= 1.0


# -- Response size (item 10) ---------------------------------------------------------------------


def test_a_body_larger_than_the_limit_ends_the_read(tracer, spans):
    big = b'{"resourceType": "Bundle", "entry": [' + b'{"x": 1},' * 300_000 + b'{}]}'  # 2.7 MB

    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        # No Content-Length: the size is found only by reading.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        try:
            conn.sendall(big)
        except OSError:
            pass
        conn.close()

    with hostile_server(behaviour) as (base_url, _seen):
        result = run(workflow(), target(base_url, max_response_bytes=1024 * 1024), tracer)
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert "max_response_bytes" in (result.message or "")
    assert result.steps[0].response_bytes <= 1024 * 1024 + 256 * 1024
    with hostile_server(behaviour) as (base_url, _seen):
        assert run(workflow(), target(base_url), tracer).status == "ok", "the default limit takes a 2.7 MB page"


def test_a_declared_length_over_the_limit_is_refused_before_reading(tracer, spans):
    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400000000\r\n\r\n{")
        stop.wait(5)

    with hostile_server(behaviour) as (base_url, _seen):
        started = time.monotonic()
        result = run(workflow(), target(base_url), tracer)
        assert time.monotonic() - started < 2
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message


def gzip_bomb(megabytes: int) -> bytes:
    """A gzip body of ~200 KB that inflates to ``megabytes`` MB of valid JSON."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    spaces = b" " * 1_000_000
    parts = [deflater.compress(b"[")] + [deflater.compress(spaces) for _ in range(megabytes)]
    return b"".join([*parts, deflater.compress(b"]"), deflater.flush()])


@pytest.mark.parametrize("oauth", [False, True], ids=["step", "token-endpoint"])
def test_a_gzip_bomb_ends_at_the_limit_without_inflating(oauth, tracer, spans):
    bomb = gzip_bomb(200)

    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        if oauth or not request.path.startswith("/auth/token"):
            conn.sendall(answer(200, bomb, content_type="application/json", extra="Content-Encoding: gzip\r\n"))

    with hostile_server(behaviour) as (base_url, _seen):
        tracemalloc.start()
        try:
            result = run(workflow(), target(base_url, oauth=oauth), tracer)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (result.status, result.error_type) == ("failed", "invalid_response"), result.message
    assert "max_response_bytes" in (result.message or "")
    assert peak < 40 * 1024 * 1024, f"{peak / 1e6:.0f} MB allocated while reading"


def test_a_gzipped_page_within_the_limit_is_read(tracer, spans):
    page = json.dumps({"resourceType": "Bundle", "entry": [{"resource": {"id": f"r{i}"}} for i in range(20_000)]})
    body = gzip.compress(page.encode())
    with hostile_server(fixed(answer(200, body, extra="Content-Encoding: gzip\r\n"))) as (base_url, _seen):
        wf = workflow([{"name": "s", "path": "/Patient", "assert": [{"path": "$.entry[*]", "count_gte": 20_000}]}])
        result = run(wf, target(base_url), tracer)
    assert result.status == "ok", result.message


# -- End to end: the command line, the store and OTLP (item 1) ------------------------------------


@pytest.mark.parametrize("kind", ["status-line", "header-without-colon", "bad-chunk-header", "reason-phrase"])
def test_a_malformed_answer_reaches_neither_the_output_nor_the_store_nor_otlp(
    kind, tmp_path, otlp_receiver, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    token = json.dumps({"access_token": "tok-abc", "token_type": "bearer", "expires_in": 300}).encode()

    def behaviour(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        if request.path.startswith("/auth/token"):
            conn.sendall(answer(200, token, content_type="application/json"))
        else:
            conn.sendall(MALFORMED[kind])
            conn.close()

    with hostile_server(behaviour) as (base_url, _seen):
        config = write_config(tmp_path / "wardwatch.yaml", base_url, tmp_path / "data", workflows=["open-patient-record"])
        result = CliRunner().invoke(
            main, ["probe", "-c", str(config), "--once"],
            env={TESTBED_SECRET_VARIABLE: TESTBED_SECRET, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url},
        )
    assert result.exit_code == 1, result.output  # every run failed, and it says so
    assert "failed" in result.output
    assert any(path == "/v1/traces" for path, _ in otlp_receiver.received)
    for where, text in (("output", result.output), ("store", store_text(tmp_path / "data")),
                        ("OTLP", payload_text(otlp_receiver.received)),
                        ("log", "\n".join(r.getMessage() for r in caplog.records))):
        for secret in PATIENT:
            assert secret not in text, f"{secret} reached the {where}"


@pytest.mark.parametrize("kind", ["status-line", "header-without-colon", "deep-json"])
def test_smart_discovery_never_quotes_the_answer(kind, tmp_path, tracer, spans, caplog):
    """The token endpoint discovered from .well-known/smart-configuration: its answer is the EPR's too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    caplog.set_level(logging.DEBUG)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    raw = answer(200, b"[" * 200_000 + b"]" * 200_000) if kind == "deep-json" else MALFORMED[kind]
    with hostile_server(fixed(raw)) as (base_url, _seen):
        tgt = TargetConfig.model_validate({"base_url": f"{base_url}/fhir", "auth": {
            "type": "smart_backend_services", "client_id": "probe", "private_key": f"${{file:{key_file}}}",
            "scope": "system/Patient.rs"}})
        result = run(workflow(), tgt, tracer)
    assert (result.status, result.error_type) == ("failed", "auth"), result.message
    assert "unexpectedly" not in (result.message or "")
    assert_nothing_of(PATIENT, texts(result, spans, caplog))
