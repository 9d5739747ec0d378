"""Browser workflows in the real Chromium against the testbed's web front end (its ground truth).

One browser for the module (as one per probe process), a handful of runs: the record's time until
visible against the front end's model, before and after its release (the testbed in a process of
its own, as an EPR is, so its timing shares no interpreter with the browser's driver); the spans'
shape and the page's requests in the store; a step whose element never comes is a timeout naming
the selector; a script error in the page is data; nothing that identifies the patient reaches the
store or logs.
"""

from __future__ import annotations

import http.server
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pydantic
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import analysis
from benchmarks import epr
from collector.browser import BrowserHost, BrowserMissingError, find_chromium, run_browser_workflow
from collector.config import AnyWorkflowConfig, SiteConfig, TargetConfig, TestPatientConfig
from collector.runner import RunResult
from store import ParquetSpanExporter, schema
from testbed import TestbedServer, generate_dataset, mrn_for, scenario_for_tests
from testbed.data import MRN_SYSTEM
from testbed.web.model import page_plan, record_api_s, record_visible_s

PATIENT = 5  # pat-0005, MRN000005
SITE = SiteConfig(name="ward-7", timezone="Europe/London", title="Ward 7")
BEFORE = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
SCENARIO = scenario_for_tests(
    0.0,
    service_ms={"GET /Patient/{id}": 100, "GET /Encounter": 150, "GET /Observation": 120,
                "GET /MedicationRequest": 180, "GET /AllergyIntolerance": 90, "GET /DocumentReference": 200,
                "GET /Patient": 60, "POST /auth/token": 20},
    network_ms={"ward-7": 2},
).with_overrides(frontend={
    "note_render_ms": 40, "spinner_linger_ms": 300,
    "releases": [{"name": "web-24.4", "at": "2026-11-18T07:00:00Z", "sequential_panels": True}],
})


def open_record(url: str, **overrides: Any) -> Any:
    workflow = {
        "kind": "browser", "name": "open-patient-record-in-browser", "target": "testbed", "url": url,
        "steps": [
            {"name": "open-app", "goto": "/app/", "wait_for": {"selector": "#sign-in"}},
            {"name": "user-name", "fill": {"selector": "#username", "value": "wardwatch-probe"}},
            {"name": "password", "fill": {"selector": "#password", "value": "${env:TESTBED_SECRET}"}},
            {"name": "sign-in", "click": "#sign-in-button", "wait_for": {"selector": "#mrn"}},
            {"name": "type-mrn", "fill": {"selector": "#mrn", "value": "{{ patient_mrn }}"}},
            {"name": "find-patient", "press": {"selector": "#mrn", "key": "Enter"},
             "wait_for": {"selector": "#results .patient"}},
            {"name": "open-record", "click": "#results .patient",
             "wait_for": {"selector": "#record[data-state=ready]"},
             "assert_text": {"selector": "#banner", "contains": "{{ patient_mrn }}"}, "timeout_s": 5},
        ],
        **overrides,
    }
    return pydantic.TypeAdapter(AnyWorkflowConfig).validate_python(workflow)


@pytest.fixture(scope="module")
def host() -> Iterator[BrowserHost]:
    """The module's one browser. Skipped without Chromium, unless CI requires it."""
    try:
        executable = find_chromium(os.environ)
    except BrowserMissingError:
        if os.environ.get("WARDWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (WARDWATCH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    browser_host = BrowserHost(executable)
    yield browser_host
    browser_host.close()


class Rig:
    """The testbed (its clock settable) with the probe's and the testbed's spans kept."""

    def __init__(self, store: Path) -> None:
        self.now = BEFORE
        self.store = store
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({schema.ATTR_SITE: SITE.name}))
        self.provider.add_span_processor(SimpleSpanProcessor(ParquetSpanExporter(store)))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.server_memory = InMemorySpanExporter()
        server_provider = TracerProvider(resource=Resource.create({"service.name": "wardwatch-testbed"}))
        server_provider.add_span_processor(SimpleSpanProcessor(self.server_memory))
        self.server = TestbedServer(SCENARIO, patients=20, clock=lambda: self.now, tracer_provider=server_provider)

    @property
    def target(self) -> TargetConfig:
        return TargetConfig(base_url=self.server.fhir_url, headers={"X-Wardwatch-Site": "{{ site }}"})

    def run(self, host: BrowserHost, workflow: Any, target: TargetConfig | None = None) -> RunResult:
        return run_browser_workflow(
            workflow, target or self.target, SITE, tracer=self.provider.get_tracer("wardwatch"), host=host,
            patients=[TestPatientConfig(identifier=f"{MRN_SYSTEM}|{mrn_for(PATIENT)}")],
            environ={"TESTBED_SECRET": "testbed-demo-secret"}, rng=random.Random(1))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(tmp_path_factory.mktemp("browser-store"))
    with rig.server:
        yield rig


def modelled_visible_s(at: datetime, scenario: Any = SCENARIO) -> float:
    notes = len(generate_dataset().for_patient("DocumentReference", f"pat-{PATIENT:04d}"))
    return record_visible_s(page_plan(at, scenario), record_api_s(SITE.name, at, scenario), notes)


def within_tolerance(measured_s: float, modelled_s: float) -> bool:
    """The issue's criterion: within 50 ms + 5% of the front end's modelled ground truth."""
    return abs(measured_s - modelled_s) <= 0.050 + 0.05 * modelled_s


def record_s(result: RunResult) -> float:
    return next(step.duration_s for step in result.steps if step.name == "open-record")


@pytest.fixture(scope="module")
def measured(rig: Rig, host: BrowserHost, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, list[tuple[RunResult, float]]]:
    """Runs before the front end's release and after: (result, modelled record time) each.

    The testbed runs in its own process (a clock cannot be handed to it there), so "before" and
    "after" are the scenario with its release in the future and in the past.

    A machine shared with other work only ever adds time (the browser waiting for a core), never
    removes it: a probe that adds its own time misses in every run, a burst of load spoils one.
    So up to eight runs are made on each side, a moment apart so that a burst can pass, stopping
    at the first within the criterion.
    """
    runs: dict[str, list[tuple[RunResult, float]]] = {}
    for label, release_at in (("before", "2100-01-01T00:00:00Z"), ("after", "2000-01-01T00:00:00Z")):
        scenario = SCENARIO.with_overrides(frontend={
            **SCENARIO.frontend.model_dump(), "releases": [{"name": "web-24.4", "at": release_at, "sequential_panels": True}]})
        runs[label] = []
        with epr.testbed_process(scenario, tmp_path_factory.mktemp(label), startup_timeout_s=60) as server:
            target = TargetConfig(base_url=server.base_url + "/fhir", headers={"X-Wardwatch-Site": "{{ site }}"})
            for attempt in range(8):
                if attempt:
                    time.sleep(2.0)
                now = datetime.now(UTC)
                result = rig.run(host, open_record(server.base_url + "/app/"), target=target)
                runs[label].append((result, modelled_visible_s(now, scenario)))
                if result.status != "ok" or within_tolerance(record_s(result), runs[label][-1][1]):
                    break
    return runs


@pytest.mark.parametrize("label", ["before", "after"])
def test_time_until_the_record_is_visible_matches_the_front_ends_model(
        measured: dict[str, list[tuple[RunResult, float]]], label: str) -> None:
    result, modelled_s = measured[label][-1]
    assert result.status == "ok", result.message
    tried = [f"{record_s(run):.3f} s" for run, _ in measured[label]]
    print(f"{label}: measured {', '.join(tried)}; modelled {modelled_s:.3f} s")
    assert within_tolerance(record_s(result), modelled_s), f"measured {tried}, modelled {modelled_s:.3f} s"
    assert result.waiting_s == pytest.approx(sum(step.duration_s for step in result.steps))


def test_the_release_slows_the_screen_and_not_the_api(measured: dict[str, list[tuple[RunResult, float]]]) -> None:
    (before, modelled_before), (after, modelled_after) = measured["before"][-1], measured["after"][-1]
    assert modelled_after - modelled_before > 0.3
    # each within 50 ms + 5% of its model: their difference within the two allowances together
    allowance_s = 0.100 + 0.05 * (modelled_before + modelled_after)
    assert record_s(after) - record_s(before) == pytest.approx(modelled_after - modelled_before, abs=allowance_s)


def test_runs_steps_and_the_pages_requests_are_rows_like_any_workflows(rig: Rig, host: BrowserHost) -> None:
    rig.now = AFTER  # the release in force: the panels come one after another
    last = {"after": rig.run(host, open_record(rig.server.base_url + "/app/"))}
    assert last["after"].status == "ok", last["after"].message
    store = analysis.open_store(rig.store)
    runs = store.runs()
    assert last["after"].trace_id in set(runs["trace_id"])
    steps = store.steps()
    assert list(steps[steps["trace_id"] == last["after"].trace_id]["step"]) == [
        "open-app", "user-name", "password", "sign-in", "type-mrn", "find-patient", "open-record"]
    # the stored steps are the clinician's time (from each input event), so they add up to the run's wait
    run_steps = steps[steps["trace_id"] == last["after"].trace_id]
    waiting_s = float(runs[runs["trace_id"] == last["after"].trace_id]["waiting_s"].iloc[0])
    assert run_steps["duration_s"].sum() == pytest.approx(waiting_s, abs=1e-5)
    assert list(run_steps["duration_s"]) == pytest.approx([s.duration_s for s in last["after"].steps], abs=1e-6)
    requests = store.requests(source="page")
    opened = requests[(requests["trace_id"] == last["after"].trace_id) & (requests["step"] == "open-record")]
    assert sorted(opened["url_template"]) == sorted([
        "/fhir/Patient/{id}", "/fhir/Encounter", "/fhir/Observation", "/fhir/MedicationRequest",
        "/fhir/AllergyIntolerance", "/fhir/DocumentReference"])
    assert set(opened["http_status"]) == {200} and set(opened["span_type"]) == {schema.SPAN_TYPE_PAGE_REQUEST}
    # after the release the panels come one after another: each starts once the one before ended
    # (the browser stamps a request's start and end on different clocks: a few ms either way)
    panels = opened[opened["url_template"] != "/fhir/Patient/{id}"].sort_values("start")
    ends = panels["start"] + pd.to_timedelta(panels["duration_s"], unit="s")
    gaps_s = (panels["start"].iloc[1:].reset_index(drop=True) - ends.iloc[:-1].reset_index(drop=True)).dt.total_seconds()
    assert (gaps_s > -0.02).all(), list(gaps_s)
    # the page's requests carry the step's traceparent: the EPR's server spans join the run's trace
    trace_ids = {result.trace_id for result in last.values()}
    joined = [span for span in rig.server_memory.get_finished_spans()
              if format(span.context.trace_id, "032x") in trace_ids]
    assert {span.name for span in joined} >= {"GET /fhir/Patient/{id}", "GET /fhir/DocumentReference"}
    step_ids = {span.context.span_id for span in rig.memory.get_finished_spans()
                if span.attributes.get(schema.ATTR_SPAN_TYPE) == schema.SPAN_TYPE_STEP}
    assert all(span.parent is not None and span.parent.span_id in step_ids for span in joined)
    record_step = next(span for span in rig.memory.get_finished_spans() if span.name == "open-record")
    assert {event.name for event in record_step.events} >= {schema.EVENT_VISIBLE, schema.EVENT_LONG_TASK}
    # the step that loaded the app's document carries its navigation timing, in order; the record
    # opens inside the single-page app (no navigation), so its step carries none
    spans = [span for span in rig.memory.get_finished_spans()
             if format(span.context.trace_id, "032x") == last["after"].trace_id]
    opened = next(span.attributes for span in spans if span.name == "open-app")
    assert opened[schema.ATTR_NAV_TYPE] == "navigate"
    first_byte_s, dom_s = opened[schema.ATTR_NAV_RESPONSE_START_S], opened[schema.ATTR_NAV_DOM_CONTENT_LOADED_S]
    assert 0 < first_byte_s <= dom_s < 5
    # Chromium delivers paint entries a frame or more after the paint: on a loaded machine one may
    # not have arrived when the step ends. At least one is there, and each that is lies in the step.
    paints = [opened[key] for key in (schema.ATTR_FCP_S, schema.ATTR_LCP_S) if key in opened]
    assert paints and all(0 < paint_s < 5 for paint_s in paints), dict(opened)
    if schema.ATTR_NAV_LOAD_S in opened:
        assert opened[schema.ATTR_NAV_LOAD_S] >= dom_s
    record = next(span.attributes for span in spans if span.name == "open-record")
    assert not [key for key in record if key.startswith("wardwatch.browser.navigation.")]


def test_a_page_that_never_shows_what_a_step_waits_for_is_a_timeout_naming_the_selector(
        rig: Rig, host: BrowserHost) -> None:
    workflow = open_record(rig.server.base_url + "/app/", steps=[
        {"name": "open-app", "goto": "/app/", "wait_for": {"selector": "#never-there", "state": "visible"}, "timeout_s": 1},
    ])
    result = rig.run(host, workflow)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    assert "#never-there" in (result.message or "")
    assert 0.9 <= result.steps[0].duration_s < 3


def test_a_script_error_in_the_page_is_data(rig: Rig, host: BrowserHost) -> None:
    rig.now = BEFORE
    rig.server.set_faults([{"endpoint": "GET /Patient/{id}", "kind": "malformed_json"}])
    try:
        result = rig.run(host, open_record(rig.server.base_url + "/app/").model_copy(update={"timeout_s": 30}))
    finally:
        rig.server.clear_faults()
    assert (result.status, result.error_type) == ("failed", "browser_script")
    assert result.steps[-1].name == "open-record" and result.steps[-1].error_type == "browser_script"
    assert result.error_type in schema.ERROR_TYPES


def test_nothing_that_identifies_the_patient_is_stored_logged_or_sent_over_otlp(
        rig: Rig, host: BrowserHost, caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    with caplog.at_level(logging.DEBUG):
        result = rig.run(host, open_record(rig.server.base_url + "/app/"))
    rig.provider.force_flush()
    # what an OTLP exporter would send of the run: the SDK's own protobuf encoding of its spans
    run_spans = [span for span in rig.memory.get_finished_spans()
                 if format(span.context.trace_id, "032x") == result.trace_id]
    otlp = encode_spans(run_spans).SerializeToString()
    assert b"open-record" in otlp and b"/fhir/DocumentReference" in otlp
    patient = generate_dataset(patients=20).get("Patient", f"pat-{PATIENT:04d}")
    assert patient is not None
    name = patient["name"][0]
    secrets = [f"pat-{PATIENT:04d}", mrn_for(PATIENT), name["family"], *name["given"], patient["birthDate"],
               "testbed-demo-secret"]
    stored = "\n".join(str(pq.read_table(path).to_pylist()) for path in rig.store.rglob("*.parquet"))
    assert "open-record" in stored  # the scan reads what was written
    found = [secret for secret in secrets if secret in stored or secret in caplog.text or secret.encode() in otlp]
    assert found == []


def test_the_probe_command_runs_the_example_browser_workflow_once(
        rig: Rig, host: BrowserHost, tmp_path: Path) -> None:
    """The interface outside checks use: ``wardwatch probe --once --workflow open-patient-record-in-browser``."""
    del host  # only for its skip: the command starts a browser of its own
    root = Path(__file__).resolve().parents[2]
    config = (root / "examples" / "testbed.yaml").read_text()
    address = rig.server.base_url.removeprefix("http://")
    config = config.replace("127.0.0.1:8765", address).replace("path: ../data/demo", f"path: {tmp_path / 'data'}")
    (tmp_path / "w.yaml").write_text(config)
    env = {**os.environ, "WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}
    done = subprocess.run(
        [sys.executable, "-m", "wardwatch.cli", "probe", "-c", str(tmp_path / "w.yaml"), "--once", "--site", "ward-7",
         "--workflow", "open-patient-record-in-browser"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "open-patient-record-in-browser @ ward-7: ok" in done.stdout
    store = analysis.open_store(tmp_path / "data")
    assert list(store.runs()["status"]) == ["ok"]
    assert "open-record" in set(store.steps()["step"])
    assert "/fhir/DocumentReference" in set(store.requests(source="page")["url_template"])


def test_the_lens_finds_the_release_in_the_stored_runs(
        rig: Rig, measured: dict[str, list[tuple[RunResult, float]]]) -> None:
    """Around the release, the page's API calls took as long as before; the screen did not."""
    from analysis.screen import screen_change

    first_before, last_after = measured["before"][0][0], measured["after"][-1][0]
    at = measured["after"][0][0].start
    window = max(at - first_before.start, last_after.start - at) + timedelta(seconds=30)
    change = screen_change(analysis.open_store(rig.store), "open-patient-record-in-browser", at, window=window)
    assert change is not None and change.after.step == "open-record"
    # five panels asked together (on a loaded machine the quickest may end before the last starts)
    # and one after another (a request's resource timing may end a hair after the next begins,
    # so two can appear to overlap)
    assert change.sequential and change.before.concurrency >= 4 and change.after.concurrency <= 2
    assert change.after.screen_s - change.before.screen_s > 0.3
    assert change.after.request_s == pytest.approx(change.before.request_s, abs=0.05)
    k = change.before.concurrency
    assert f"one after another: {k} x " in change.text and "the record page now fetches its " in change.text
    print(change.as_lens().text)
    # the change-impact analysis finds it too, in the step where it happened
    from analysis.changes import change_impact
    from analysis.config import ChangeEventConfig

    release = ChangeEventConfig(at=at, title="Web release 24.4", workflows=["open-patient-record-in-browser"])
    impact = change_impact(analysis.open_store(rig.store), release, window=window)
    row = impact[impact["site"] == SITE.name].iloc[0]
    # The step that grew, by its own median; the whole run's median also holds sign-in and the
    # search, whose noise on a loaded machine can outweigh the record's +0.5 s over a few runs.
    assert row["dominant_step"] == "open-record" and row["dominant_step_delta_s"] > 0.3


def test_charting_and_the_handover_list_work_in_the_front_end(rig: Rig, host: BrowserHost) -> None:
    """The front end's other two tasks, driven as a person would: chart a heart rate on the open
    record (the testbed then holds the Observation), and show Ward 7's handover list."""
    steps = [step for step in open_record(rig.server.base_url + "/app/").model_dump()["steps"]]
    steps += [
        {"name": "heart-rate", "fill": {"selector": "#chart-hr", "value": "72"}},
        {"name": "save", "click": "#chart-save", "wait_for": {"selector": "#chart-status", "text": "Saved"}},
        {"name": "handover", "click": "#nav-handover", "wait_for": {"selector": "#handover-load"}},
        {"name": "show-ward", "click": "#handover-load",
         "wait_for": {"selector": "#handover[data-state=ready] #handover-list li"}},
    ]
    before = {o["id"] for o in rig.server.state.dataset.of_type("Observation")}
    result = rig.run(host, open_record(rig.server.base_url + "/app/", steps=steps))
    assert result.status == "ok", result.message
    charted = [o for o in rig.server.state.dataset.of_type("Observation") if o["id"] not in before]
    assert [(o["subject"]["reference"], o["valueQuantity"]["value"]) for o in charted] == [(f"Patient/pat-{PATIENT:04d}", 72)]
    requests = analysis.open_store(rig.store).requests(source="page")
    mine = requests[requests["trace_id"] == result.trace_id]
    assert set(mine[mine["step"] == "save"]["http_method"]) == {"POST"}
    assert set(mine[mine["step"] == "show-ward"]["url_template"]) == {"/fhir/Encounter"}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET, keeping each request's path and headers (a page, a script, an API)."""

    pages: dict[str, tuple[str, str]] = {}
    cacheable: frozenset[str] = frozenset()  # paths a browser may keep for an hour

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.server.seen.append((self.path, {key.lower(): value for key, value in self.headers.items()}))
        path = self.path.split("?")[0]
        kind, body = self.pages.get(path, ("application/json", "{}"))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=3600" if path in self.cacheable else "no-store")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def two_origins() -> Iterator[tuple[http.server.ThreadingHTTPServer, http.server.ThreadingHTTPServer]]:
    """The EPR's origin and a third party's (another port is another origin), both on loopback."""
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.seen = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers[0], servers[1]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_traceparent_and_the_targets_headers_go_to_the_targets_origin_only(
        two_origins: tuple[Any, Any], host: BrowserHost) -> None:
    epr, third = two_origins
    epr_url, third_url = (f"http://127.0.0.1:{server.server_address[1]}" for server in (epr, third))
    _Recorder.pages = {
        "/app/": ("text/html", f"""<!doctype html><link rel=stylesheet href="{third_url}/font.css">
            <script src="{third_url}/analytics.js"></script><p id=state>loading</p>
            <script>Promise.all([fetch("/fhir/Patient?identifier=x"), fetch("{third_url}/beacon?x=1")])
              .then(() => {{ document.getElementById("state").id = "done"; }});</script>"""),
        "/font.css": ("text/css", "p { color: black }"),
        "/analytics.js": ("text/javascript", "window.analytics = 1;"),
    }
    workflow = open_record(epr_url + "/app/", steps=[
        {"name": "open-app", "goto": "/app/", "wait_for": {"selector": "#done"}, "timeout_s": 10}])
    target = TargetConfig(base_url=epr_url + "/fhir", headers={"X-Wardwatch-Site": "{{ site }}"})
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    result = run_browser_workflow(workflow, target, SITE, tracer=provider.get_tracer("wardwatch"), host=host,
                                  environ={}, rng=random.Random(1))
    assert result.status == "ok", result.message
    step = next(span for span in memory.get_finished_spans() if span.name == "open-app")
    expected = f"00-{step.context.trace_id:032x}-{step.context.span_id:016x}-01"
    assert sorted(path.split("?")[0] for path, _ in epr.seen) == ["/app/", "/fhir/Patient"]
    assert [(headers.get("traceparent"), headers.get("x-wardwatch-site")) for _, headers in epr.seen] == \
        [(expected, "ward-7")] * 2
    assert sorted(path.split("?")[0] for path, _ in third.seen) == ["/analytics.js", "/beacon", "/font.css"]
    assert [(path, headers) for path, headers in third.seen
            if "traceparent" in headers or "x-wardwatch-site" in headers] == []


@pytest.mark.parametrize("warm", [False, True])
def test_a_warm_cache_keeps_the_context_across_runs_and_the_default_starts_fresh(
        two_origins: tuple[Any, Any], tmp_path: Path, warm: bool) -> None:
    """Two runs: the page's script, cacheable for an hour, is fetched once with a warm cache (as a
    clinician's browser keeps it) and by every run in a fresh context (a first visit each time)."""
    epr, _third = two_origins
    epr_url = f"http://127.0.0.1:{epr.server_address[1]}"
    _Recorder.pages = {"/app/": ("text/html", '<script src="/app/lib.js"></script><p id=done>ready</p>'),
                       "/app/lib.js": ("text/javascript", "window.lib = 1;")}
    _Recorder.cacheable = frozenset({"/app/lib.js"})
    workflow = open_record(epr_url + "/app/", warm_cache=warm, steps=[
        {"name": "open-app", "goto": "/app/", "wait_for": {"selector": "#done"}, "timeout_s": 10}])
    target = TargetConfig(base_url=epr_url + "/fhir")
    browser_host = BrowserHost(find_chromium(os.environ))  # a browser of its own: no context kept from others
    try:
        results = [run_browser_workflow(workflow, target, SITE, tracer=TracerProvider().get_tracer("t"),
                                        host=browser_host, environ={}, rng=random.Random(i)) for i in range(2)]
    finally:
        browser_host.close()
        _Recorder.cacheable = frozenset()
    assert [result.status for result in results] == ["ok", "ok"], [result.message for result in results]
    fetched = [path for path, _ in epr.seen if path == "/app/lib.js"]
    assert len(fetched) == (1 if warm else 2)
    assert [path for path, _ in epr.seen if path == "/app/"] == ["/app/", "/app/"]  # the page itself is no-store


def failing_run(rig: Rig, host: BrowserHost, screenshots: Path, *, on: bool) -> tuple[RunResult, dict[str, Any]]:
    """A run of the record workflow whose last step waits for what never comes (the record was
    open on the screen, a test patient's banner on it), and its root span's attributes."""
    steps = [*open_record(rig.server.base_url + "/app/").model_dump()["steps"][:-1],
             {"name": "open-record", "click": "#results .patient", "wait_for": {"selector": "#never-there"},
              "timeout_s": 2}]
    return run_keeping_screenshots(rig, host, open_record(rig.server.base_url + "/app/", screenshot_on_failure=on,
                                                         steps=steps), screenshots)


def run_keeping_screenshots(rig: Rig, host: BrowserHost, workflow: Any, screenshots: Path
                            ) -> tuple[RunResult, dict[str, Any]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    result = run_browser_workflow(
        workflow, rig.target, SITE, tracer=provider.get_tracer("wardwatch"), host=host,
        patients=[TestPatientConfig(identifier=f"{MRN_SYSTEM}|{mrn_for(PATIENT)}")],
        environ={"TESTBED_SECRET": "testbed-demo-secret"}, rng=random.Random(1), screenshots_dir=screenshots)
    root = next(span for span in memory.get_finished_spans()
                if span.attributes.get(schema.ATTR_SPAN_TYPE) == schema.SPAN_TYPE_RUN)
    return result, dict(root.attributes)


def test_no_screenshot_is_taken_unless_the_workflow_asks(rig: Rig, host: BrowserHost, tmp_path: Path) -> None:
    result, attributes = failing_run(rig, host, tmp_path / "data" / "screenshots", on=False)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    assert [path for path in tmp_path.rglob("*")] == []  # nothing of the page written anywhere here
    assert schema.ATTR_BROWSER_SCREENSHOT not in attributes


def test_a_screenshot_on_failure_stays_in_the_data_directory_for_its_owner(
        rig: Rig, host: BrowserHost, tmp_path: Path) -> None:
    screenshots = tmp_path / "data" / "screenshots"
    result, attributes = failing_run(rig, host, screenshots, on=True)
    assert (result.status, result.error_type) == ("timed_out", "timeout")
    [png] = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert png.parent == screenshots / "open-patient-record-in-browser" / SITE.name
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 1000
    assert png.stat().st_mode & 0o777 == 0o600 and screenshots.stat().st_mode & 0o777 == 0o700
    assert result.trace_id in png.name
    assert attributes[schema.ATTR_BROWSER_SCREENSHOT] == png.relative_to(screenshots).as_posix()
    # a run that succeeds leaves no picture
    ok, _ = run_keeping_screenshots(rig, host, open_record(rig.server.base_url + "/app/", screenshot_on_failure=True),
                                    screenshots)
    assert ok.status == "ok" and [path for path in tmp_path.rglob("*.png")] == [png]
