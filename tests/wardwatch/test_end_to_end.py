"""The thin path end to end: testbed -> probe -> Parquet store -> analysis -> dashboard in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opentelemetry.sdk.trace import TracerProvider

import analysis
import testbed
from dashboard import DashboardServer, create_app
from dashboard.data import NoData, open_data
from store import ParquetSpanExporter
from wardwatch import wiring
from wardwatch.config import WardwatchConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
PAGES = {"/": "Overview", "/status": "Status", "/time-of-day": "Time of day", "/workflow": "Workflow",
         "/sites": "Sites", "/runs": "Runs", "/report": "SLA report", "/site-health": "Site health"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def epr_spans(store_path: Path) -> Iterator[TracerProvider]:
    """Where the testbed's server spans go: the same store as the probe's, as in the demo."""
    provider = wiring.testbed_tracer_provider([ParquetSpanExporter(store_path)])
    yield provider
    provider.shutdown()


@pytest.fixture(scope="module")
def epr(epr_spans: TracerProvider) -> Iterator[testbed.TestbedServer]:
    # Small fixed delays, 80 ms more from the community hospital; the latency model itself is
    # tested in tests/testbed.
    scenario = testbed.scenario_for_tests(5.0, network_ms={"community-hospital": 80.0})
    with testbed.TestbedServer(scenario, tracer_provider=epr_spans) as server:
        yield server


@pytest.fixture(scope="module")
def probed_config(epr: testbed.TestbedServer, epr_spans: TracerProvider, store_path: Path) -> WardwatchConfig:
    """The demo config aimed at the test's testbed and data directory, after two runs per site."""
    config = load_config(EXAMPLE)
    targets = {
        name: target.model_copy(
            update={"base_url": epr.fhir_url, "auth": target.auth.model_copy(update={"token_url": epr.token_url})}
        )
        for name, target in config.targets.items()
    }
    workflows = [w.model_copy(update={"think_time_s": 0.0}) for w in config.workflows]
    store = config.store.model_copy(update={"path": store_path})
    config = config.model_copy(update={"targets": targets, "store": store, "workflows": workflows})
    environ = {wiring.TESTBED_SECRET_VARIABLE: testbed.DEFAULT_CLIENT_SECRET}
    for _ in range(2):
        results = wiring.probe_once(config, workflow="open-patient-record", environ=environ)
        assert [r.status for r in results] == ["ok"] * len(config.sites)
    assert epr_spans.force_flush()
    return config


def test_probe_runs_land_in_the_store_as_runs_and_steps(probed_config: WardwatchConfig) -> None:
    with analysis.open_store(probed_config.store.path) as store:
        runs = store.runs()
        steps = store.steps()
        server = store.sql("SELECT DISTINCT trace_id FROM requests WHERE source = 'server'")
    assert sorted(runs["site"]) == sorted([site.name for site in probed_config.sites] * 2)
    # The testbed's server spans joined the probe's traces (W3C traceparent).
    assert set(server["trace_id"]) == set(runs["trace_id"])
    assert set(runs["status"]) == {"ok"}
    workflow = next(w for w in probed_config.workflows if w.name == "open-patient-record")
    per_run = steps.groupby("trace_id")["step"].apply(list)
    assert all(list(names) == [s.name for s in workflow.steps] for names in per_run)
    # A run's waiting time is the sum of its steps' durations (think time excluded).
    sums = steps.groupby("trace_id")["duration_s"].sum()
    for run in runs.itertuples():
        assert run.waiting_s == pytest.approx(sums[run.trace_id], abs=1e-6)
        assert run.wall_s >= run.waiting_s


@pytest.fixture(scope="module")
def dashboard_url(probed_config: WardwatchConfig) -> Iterator[str]:
    with DashboardServer(create_app(wiring.dashboard_context(probed_config)), port=0) as server:
        yield server.url.rstrip("/")


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.console_errors = []
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_console_errors(dashboard_url: str, page, path: str, screenshots_dir: Path) -> None:
    page.goto(dashboard_url + path)
    page.get_by_role("heading", level=2).filter(has_text=PAGES[path]).wait_for(timeout=20_000)
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "Traceback" not in body and "Error" not in body.split("\n")[0]
    name = path.strip("/") or "overview"
    page.screenshot(path=str(screenshots_dir / f"{name}.png"), full_page=True)
    assert page.console_errors == []


@pytest.mark.browser
def test_a_filter_lives_in_the_url_and_narrows_the_view(dashboard_url: str, page) -> None:
    page.goto(dashboard_url + "/sites")
    page.get_by_text("Community hospital").first.wait_for(timeout=20_000)
    page.goto(dashboard_url + "/runs")
    page.locator("#runs-table").get_by_text("Ward 7", exact=True).first.wait_for(timeout=20_000)
    page.wait_for_load_state("networkidle")  # the filters' callbacks are wired before they are used
    page.get_by_role("button", name="all sites").click()
    page.get_by_role("option", name="Community hospital").click()
    page.wait_for_url("**site=community-hospital**", timeout=20_000)
    page.wait_for_load_state("networkidle")
    page.locator("#runs-summary").filter(has_text="2 runs listed").wait_for(timeout=20_000)
    assert page.locator("#runs-table").get_by_text("Ward 7", exact=True).count() == 0
    assert page.console_errors == []


@pytest.mark.browser
def test_from_the_overview_to_a_workflow_and_on_to_a_runs_waterfall(
    dashboard_url: str, page, screenshots_dir: Path
) -> None:
    page.goto(dashboard_url + "/")
    page.locator("#watermelon-board tr").filter(has_text="Community hospital").locator("a.board-link").click()
    page.wait_for_url("**/workflow?**site=community-hospital**", timeout=20_000)
    page.locator("#workflow-apdex").filter(has_text="over 2 runs").wait_for(timeout=20_000)
    page.locator("#workflow-runs-link").click()
    page.wait_for_url("**/runs?**", timeout=20_000)
    page.locator("#runs-table a.run-link").first.wait_for(timeout=20_000)
    page.locator("#runs-table a.run-link").first.click()
    page.wait_for_url("**trace=**", timeout=20_000)
    waterfall = page.locator("#waterfall-chart")
    waterfall.locator(".barlayer .point").first.wait_for(timeout=20_000)
    labels = waterfall.inner_text()
    assert "step find patient" in labels
    assert "GET /fhir/Patient" in labels, labels  # the testbed's own server span, joined by trace id
    page.screenshot(path=str(screenshots_dir / "waterfall.png"), full_page=True)
    assert page.console_errors == []


@pytest.mark.browser
def test_the_overview_looks_for_findings_without_a_click(dashboard_url: str, page) -> None:
    page.goto(dashboard_url + "/")
    findings = page.locator("#findings")
    # A few fast test runs: the SLAs are met and so are the objectives, and the page says so.
    findings.get_by_text("No findings in the last 7 days").wait_for(timeout=60_000)
    assert page.console_errors == []


@pytest.mark.browser
def test_the_months_report_builds_and_downloads_as_csv(dashboard_url: str, page, screenshots_dir: Path) -> None:
    page.goto(dashboard_url + "/report")
    page.get_by_role("button", name="Build the report").click()
    frame = page.frame_locator("#report-frame")
    frame.get_by_text("In plain words").wait_for(timeout=60_000)
    assert frame.get_by_text("SLAs as the contract computes them").count() == 1
    with page.expect_download(timeout=20_000) as caught:
        page.get_by_role("button", name="Download CSV").click()
    download = caught.value
    assert download.suggested_filename.startswith("wardwatch-report-") and download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("table,SLA,terms,value,target,verdict")
    page.screenshot(path=str(screenshots_dir / "report.png"), full_page=True)
    assert page.console_errors == []


def test_an_empty_data_directory_is_explained(tmp_path: Path) -> None:
    context = wiring.dashboard_context(load_config(EXAMPLE).model_copy(
        update={"store": load_config(EXAMPLE).store.model_copy(update={"path": tmp_path})}))
    with pytest.raises(NoData, match="not a Wardwatch store"), open_data(context):
        pass


@pytest.mark.browser
def test_the_runs_page_keeps_newest_first_across_a_filter_change(dashboard_url: str, page) -> None:
    page.goto(dashboard_url + "/runs?order=newest")
    page.get_by_text("show slowest first").wait_for(timeout=20_000)
    page.wait_for_load_state("networkidle")  # the filters' callbacks are wired before they are used
    page.get_by_role("button", name="all sites").click()
    page.get_by_role("option", name="Community hospital").click()
    page.wait_for_url("**site=community-hospital**", timeout=20_000)
    assert "order=newest" in page.url
    page.get_by_role("heading", level=2).filter(has_text="Runs").wait_for(timeout=20_000)
    assert "newest first" in page.inner_text("body")
    assert page.console_errors == []


@pytest.fixture
def live_dashboard(make_probe, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A dashboard refreshing every second over a store that a test probe keeps writing to."""
    import datetime as dt

    from dashboard.context import DashboardContext, SiteInfo, WorkflowInfo

    probe = make_probe(site="ward-7")
    now_ns = int(dt.datetime.now(dt.UTC).timestamp()) * 1_000_000_000
    for minutes_ago in (5, 4):
        probe.run(now_ns - minutes_ago * 60 * 1_000_000_000)
    context = DashboardContext(
        data_dir=tmp_path / "data", refresh_interval_s=1.0,
        sites=(SiteInfo("ward-7", "Ward 7", "Europe/London"),),
        workflows=(WorkflowInfo("open_patient_record", threshold_s=1.0),),
    )
    with DashboardServer(create_app(context), port=0) as server:
        yield server.url.rstrip("/"), probe


@pytest.mark.browser
@pytest.mark.parametrize("path, shows", [("/runs?live=on", "#runs-summary"), ("/?live=on", "#watermelon-board")])
def test_live_mode_shows_a_new_run_without_reloading_the_page(live_dashboard, page, path: str, shows: str) -> None:
    import datetime as dt

    url, probe = live_dashboard
    page.goto(url + path)
    before = "2 runs listed" if shows == "#runs-summary" else "2"
    target = page.locator(shows)
    if shows == "#runs-summary":
        target.filter(has_text=before).wait_for(timeout=20_000)
    else:
        page.locator("#watermelon-board td.runs").filter(has_text="2").wait_for(timeout=20_000)
    assert page.locator("input[type=checkbox]").first.is_checked()  # the live switch shows it is on
    page.evaluate("window.__sameDocument = true")
    probe.run(int(dt.datetime.now(dt.UTC).timestamp() - 60) * 1_000_000_000)  # lands after the page loaded
    if shows == "#runs-summary":
        target.filter(has_text="3 runs listed").wait_for(timeout=20_000)
    else:
        page.locator("#watermelon-board td.runs").filter(has_text="3").wait_for(timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True  # refreshed in place, never reloaded
    assert page.console_errors == []
