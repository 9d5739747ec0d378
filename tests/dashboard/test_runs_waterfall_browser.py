"""The runs page draws a browser run's waterfall, in Chromium: a real browser run of the example
workflow against the testbed's web front end (its server spans in the same store, as the
observatory keeps them), then the runs page with that run chosen. The waterfall says in words,
with units, each step's wait, the page's requests under it, the EPR's own server spans beside
them, the long tasks and the moment the record became visible."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import testbed
from dashboard import DashboardServer, create_app
from store import ParquetSpanExporter
from wardwatch import wiring
from wardwatch.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
WORKFLOW = "open-patient-record-in-browser"


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory: pytest.TempPathFactory, browser: object) -> Iterator[tuple[str, str]]:
    """(dashboard URL, trace id) of one browser run stored with the testbed's server spans."""
    del browser  # only for its skip without Chromium: the probe starts a browser of its own
    store_path = tmp_path_factory.mktemp("store")
    epr_spans: TracerProvider = wiring.testbed_tracer_provider([ParquetSpanExporter(store_path)])
    # The record's notes take a while to render (a long task: 100 ms a note, well over the 50 ms
    # that makes a task long, whatever the machine's speed), its spinner lingers after the data.
    scenario = testbed.scenario_for_tests(5.0).with_overrides(
        frontend={"note_render_ms": 100, "spinner_linger_ms": 300})
    with testbed.TestbedServer(scenario, tracer_provider=epr_spans) as epr:
        config = load_config(EXAMPLE)
        targets = {name: target.model_copy(update={
            "base_url": epr.fhir_url, "auth": target.auth.model_copy(update={"token_url": epr.token_url})})
            for name, target in config.targets.items()}
        workflows = [w.model_copy(update={"url": epr.base_url + "/app/", "think_time_s": 0.0})
                     for w in config.workflows if w.name == WORKFLOW]
        config = config.model_copy(update={"targets": targets, "workflows": workflows,
                                           "store": config.store.model_copy(update={"path": store_path})})
        environ = {**os.environ, wiring.TESTBED_SECRET_VARIABLE: testbed.DEFAULT_CLIENT_SECRET}
        [result] = wiring.probe_once(config, workflow=WORKFLOW, site="ward-7", environ=environ)
        assert result.status == "ok", result.message
        assert epr_spans.force_flush()
    epr_spans.shutdown()
    with DashboardServer(create_app(wiring.dashboard_context(config)), port=0) as server:
        yield server.url.rstrip("/"), result.trace_id


@pytest.mark.browser
def test_the_runs_page_draws_a_browser_runs_waterfall_in_words(
        browser: object, browser_run: tuple[str, str], screenshots_dir: Path) -> None:
    url, trace_id = browser_run
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/runs?trace={trace_id}")
    waterfall = page.locator("#waterfall-chart")
    waterfall.locator(".barlayer .point").first.wait_for(timeout=30_000)
    text = waterfall.inner_text().replace("\u00a0", " ")
    page.screenshot(path=str(screenshots_dir / "runs-browser-waterfall.png"), full_page=True)
    # every step with its wait, the record's step with the EPR servers' share of it
    for step in ("open app", "sign in", "find patient", "open record"):
        assert re.search(rf"step {step} · \d+(\.\d+)? m?s", text), text
    assert re.search(r"step open record · [\d.]+ m?s, EPR servers \d+(\.\d+)? m?s of it", text), text
    # the page's requests under their step, and the EPR's own span under each
    assert re.search(r"GET /fhir/DocumentReference · \d+ ms, HTTP 200", text), text
    assert re.search(r"EPR server: GET /fhir/DocumentReference · \d+ ms", text), text
    # the long task of rendering the notes, and the moment the record was visible
    assert re.search(r"long task · \d+ ms", text), text
    assert re.search(r"visible at \+\d+\.\d{3} s", text), text
    assert "seconds since the run started" in text
    assert re.search(r"Open patient record in browser at Ward 7, \w{3} \d{2} \w{3} \d{2}:\d{2}:\d{2}\s*each step", text), text
    assert errors == []
    page.close()
