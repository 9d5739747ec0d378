"""Fixtures shared across areas: spans shaped like probe runs, and a headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from store import ParquetSpanExporter, schema

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("WARDWATCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright. Skipped when absent, unless CI requires it."""
    executable = chromium_path()
    if executable is None:
        if os.environ.get("WARDWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (WARDWATCH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """Where browser tests save screenshots (test artefacts; the README uses one)."""
    path = ARTIFACTS / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- Spans shaped like a probe run, made with the real OpenTelemetry SDK --------------------------

NS = 1_000_000_000


@dataclass
class Probe:
    """A tracer provider for one site writing to the store and to memory side by side."""

    provider: TracerProvider
    exporter: ParquetSpanExporter
    memory: InMemorySpanExporter

    def run(
        self,
        start_ns: int,
        workflow: str = "open_patient_record",
        steps: tuple[tuple[str, float], ...] = (("find_patient", 0.2), ("read_patient", 0.1)),
        failed_step: str | None = None,
        think_s: float = 0.05,
    ) -> None:
        """Record one run starting at ``start_ns``: a root span and one child per step."""
        tracer = self.provider.get_tracer("wardwatch.collector", "0.1.0")
        t = start_ns
        waiting_s = sum(d for _, d in steps)
        status = schema.RUN_FAILED if failed_step else schema.RUN_OK
        root_attrs = {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN,
            schema.ATTR_WORKFLOW: workflow,
            schema.ATTR_RUN_STATUS: status,
            schema.ATTR_RUN_WAITING_S: waiting_s,
            schema.ATTR_SLOT: "2026-11-27T08:30:00Z",
            schema.ATTR_SLOT_OFFSET_S: 0.012,
            schema.USER_AGENT_SYNTHETIC_TYPE: "test",
        }
        if failed_step:
            root_attrs[schema.ERROR_TYPE] = "http_5xx"
        root = tracer.start_span(workflow, start_time=t, attributes=root_attrs)
        ctx = set_span_in_context(root)
        for index, (name, duration_s) in enumerate(steps):
            if index:
                t += int(think_s * NS)
            attrs = {
                schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
                schema.ATTR_STEP: name,
                schema.ATTR_STEP_INDEX: index,
                schema.HTTP_REQUEST_METHOD: "GET",
                schema.URL_TEMPLATE: "/fhir/Patient/{id}",
                schema.SERVER_ADDRESS: "127.0.0.1",
                schema.HTTP_RESPONSE_STATUS_CODE: 500 if name == failed_step else 200,
                schema.ATTR_TTFB_S: duration_s * 0.8,
                schema.ATTR_TRANSFER_S: duration_s * 0.2,
                schema.ATTR_RESPONSE_BYTES: 1234 + index,
            }
            if index == 0:
                attrs[schema.ATTR_DNS_S] = 0.001
                attrs[schema.ATTR_CONNECT_S] = 0.002
            span = tracer.start_span(name, context=ctx, kind=SpanKind.CLIENT, start_time=t,
                                     attributes=attrs)
            span.add_event("response.headers", {"http.response.status_code": 200},
                           timestamp=t + int(duration_s * 0.8 * NS))
            if name == failed_step:
                span.set_attribute(schema.ERROR_TYPE, "http_5xx")
                span.set_status(Status(StatusCode.ERROR, "HTTP 500"))
            t += int(duration_s * NS)
            span.end(end_time=t)
            if name == failed_step:
                break
        if failed_step:
            root.set_status(Status(StatusCode.ERROR, "step failed"))
        root.end(end_time=t)


@pytest.fixture
def make_probe(tmp_path: Path) -> Iterator[Callable[..., Probe]]:
    """Factory of probes writing into ``tmp_path / "data"``; providers are shut down afterwards."""
    providers: list[TracerProvider] = []

    def make(site: str = "Ward 7", timezone: str = "Europe/London", path: Path | None = None,
             simulated: bool = False, exporter: ParquetSpanExporter | None = None) -> Probe:
        resource_attrs = {
            schema.SERVICE_NAME_ATTR: "wardwatch-probe",
            schema.ATTR_SITE: site,
            schema.ATTR_SITE_TIMEZONE: timezone,
            schema.ATTR_PROBE_ID: f"probe-{site}",
        }
        if simulated:
            resource_attrs[schema.ATTR_SIMULATED] = "true"
        provider = TracerProvider(resource=Resource.create(resource_attrs))
        exporter = exporter or ParquetSpanExporter(path or tmp_path / "data")
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(provider)
        return Probe(provider, exporter, memory)

    yield make
    for provider in providers:
        provider.shutdown()
