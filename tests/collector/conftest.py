"""Fixtures for the collector's tests: real HTTP servers on loopback and in-memory span capture."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@contextmanager
def serve(app: Any, *, certfile: Path | None = None, keyfile: Path | None = None) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 on a free port (HTTPS with a certificate and key);
    yields its base URL; stops on exit."""
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)} if certfile and keyfile else {}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none", **tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def resetting_server() -> Iterator[str]:
    """A TCP server that reads the request, then resets the connection (RST); yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


TOKEN = "tok-" + "x" * 20
SECRET = "mini-secret-value"
MRN_SYSTEM = "https://testbed.wardwatch.example/mrn"


def mini_fhir_app(*, token_lifetime_s: int = 300) -> Starlette:
    """A tiny FHIR-like server: enough to exercise the runner before the testbed exists.

    Records every request's path, headers and traceparent in ``app.state.seen``.
    """
    seen: list[dict[str, Any]] = []
    token_requests: list[int] = []

    def authorised(request: Request) -> bool:
        seen.append({"path": request.url.path, "query": str(request.url.query), "headers": dict(request.headers)})
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    async def token(request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        token_requests.append(1)
        if form.get("client_secret") != SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse({"access_token": TOKEN, "token_type": "bearer", "expires_in": token_lifetime_s})

    async def patient_search(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        identifier = request.query_params.get("identifier", "")
        entries = []
        if identifier.startswith(MRN_SYSTEM + "|MRN"):
            number = int(identifier.rsplit("MRN", 1)[1])
            entries = [{"resource": {"resourceType": "Patient", "id": f"pat-{number:04d}"}}]
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})

    async def patient_read(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        patient_id = request.path_params["id"]
        if not patient_id.startswith("pat-"):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
        return JSONResponse({"resourceType": "Patient", "id": patient_id, "name": [{"family": "Testperson"}]})

    async def encounters(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        page = int(request.query_params.get("page", "1"))
        patient = request.query_params.get("patient", "")
        entries = [{"resource": {"resourceType": "Encounter", "id": f"enc-{page}-{i}"}} for i in range(3)]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": 9, "entry": entries, "link": []}
        if page < 3:
            bundle["link"].append({"relation": "next", "url": f"{request.base_url}fhir/Encounter?patient={patient}&page={page + 1}"})
        return JSONResponse(bundle)

    async def delay(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("ms", "0")) / 1000)
        return JSONResponse({"resourceType": "Bundle", "total": 0})

    async def status(request: Request) -> Response:
        return JSONResponse({"resourceType": "OperationOutcome"}, status_code=int(request.path_params["code"]))

    async def malformed(request: Request) -> Response:
        return Response(b'{"resourceType": "Bundle", "total": ', media_type="application/fhir+json")

    async def bad_gzip(request: Request) -> Response:
        return Response(b"not gzip at all", media_type="application/fhir+json", headers={"Content-Encoding": "gzip"})

    async def bad_next(request: Request) -> Response:
        return JSONResponse({"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": "http://[bad"}]})

    async def odd_id(request: Request) -> Response:
        return JSONResponse({"resourceType": "Bundle", "entry": [{"resource": {"id": "caf\u00e9\u2603"}}]})

    async def off_target(request: Request) -> Response:
        return JSONResponse(
            {"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": "http://192.0.2.1/fhir/x"}]}
        )

    app = Starlette(
        routes=[
            Route("/auth/token", token, methods=["POST"]),
            Route("/fhir/Patient", patient_search),
            Route("/fhir/Patient/{id}", patient_read),
            Route("/fhir/Encounter", encounters),
            Route("/fhir/delay", delay),
            Route("/fhir/status/{code:int}", status),
            Route("/fhir/malformed", malformed),
            Route("/fhir/off-target", off_target),
            Route("/fhir/bad-gzip", bad_gzip),
            Route("/fhir/bad-next", bad_next),
            Route("/fhir/odd-id", odd_id),
        ]
    )
    app.state.seen = seen
    app.state.token_requests = token_requests
    return app


@pytest.fixture
def serve_app() -> Any:
    """The :func:`serve` context manager, for tests that start their own servers."""
    return serve


@pytest.fixture
def reset_url() -> Iterator[str]:
    with resetting_server() as url:
        yield url


@pytest.fixture
def mini_app() -> Starlette:
    return mini_fhir_app()


@pytest.fixture
def mini_url(mini_app: Starlette) -> Iterator[str]:
    with serve(mini_app) as url:
        yield url


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracer(tracer_provider: TracerProvider) -> Any:
    return tracer_provider.get_tracer("tests.collector")


# -- The real testbed -----------------------------------------------------------------------------

TESTBED_ENV = {"WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}


@pytest.fixture(scope="module")
def _testbed_server_spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def testbed_scenario() -> Any:
    """Flat 2 ms service time, 10 ms network at the community hospital (override per module)."""
    from testbed.scenario import scenario_for_tests

    return scenario_for_tests(2.0, network_ms={"community-hospital": 10.0})


@pytest.fixture(scope="module")
def _testbed_server(_testbed_server_spans: InMemorySpanExporter, testbed_scenario: Any) -> Iterator[Any]:
    from testbed.server import TestbedServer

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_testbed_server_spans))
    with TestbedServer(testbed_scenario, tracer_provider=provider, shutdown_timeout_s=1.0) as server:
        yield server
    provider.shutdown()


@pytest.fixture
def server_spans(_testbed_server_spans: InMemorySpanExporter) -> InMemorySpanExporter:
    """The testbed's own server spans, from this test only."""
    _testbed_server_spans.clear()
    return _testbed_server_spans


@pytest.fixture
def testbed(_testbed_server: Any, server_spans: InMemorySpanExporter) -> Iterator[Any]:
    """A running testbed on a free loopback port (one per test module), without faults."""
    _testbed_server.clear_faults()
    yield _testbed_server
    _testbed_server.clear_faults()


@pytest.fixture(scope="session")
def example_factory() -> type[Example]:
    """The :class:`Example` class: ``example_factory(base_url)`` aims the examples elsewhere."""
    return Example


@pytest.fixture
def example(testbed: Any) -> Any:
    """The example workflow sections, aimed at the test's testbed."""
    return Example(testbed.base_url)


class Example:
    """The collector sections of ``examples/testbed.yaml`` parsed, with the target pointed at ``base_url``."""

    PATH = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"

    def __init__(self, base_url: str) -> None:
        from collector.config import SiteConfig, TargetConfig, TestPatientConfig, WorkflowConfig

        raw = yaml.safe_load(self.PATH.read_text(encoding="utf-8"))
        target = raw["targets"]["testbed"]
        target["base_url"] = f"{base_url}/fhir"
        target["auth"]["token_url"] = f"{base_url}/auth/token"
        self.raw = raw
        self.targets = {name: TargetConfig.model_validate(t) for name, t in raw["targets"].items()}
        self.sites = [SiteConfig.model_validate(s) for s in raw["sites"]]
        self.patients = [TestPatientConfig.model_validate(p) for p in raw["patients"]]
        self.workflows = {w["name"]: WorkflowConfig.model_validate(w) for w in raw["workflows"]
                          if w.get("kind", "http") == "http"}  # the browser workflow has its own tests
        from collector.client import ProbeClients

        self.clients = ProbeClients()

    def site(self, name: str) -> Any:
        return next(s for s in self.sites if s.name == name)

    def run(self, workflow: Any, tracer: Any, site: str = "ward-7", **kwargs: Any) -> Any:
        """Run a workflow (or its name) once from ``site``."""
        import random

        from collector.runner import run_workflow

        spec = self.workflows[workflow] if isinstance(workflow, str) else workflow
        kwargs.setdefault("patients", self.patients)
        kwargs.setdefault("environ", TESTBED_ENV)
        kwargs.setdefault("rng", random.Random(3))
        kwargs.setdefault("client_factory", self.clients)
        return run_workflow(spec, self.targets[spec.target], self.site(site), tracer=tracer, target_name=spec.target, **kwargs)
