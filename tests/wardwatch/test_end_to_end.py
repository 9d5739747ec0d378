"""The thin path end to end: testbed -> probe -> Parquet store -> analysis -> dashboard in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import analysis
import testbed
from dashboard import DashboardContext, DashboardServer, create_app
from dashboard.data import load_recent_runs
from wardwatch import wiring
from wardwatch.config import WardwatchConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"


@pytest.fixture(scope="module")
def epr() -> Iterator[testbed.TestbedServer]:
    # Fixed delays keep the runs short; the latency model itself is tested in tests/testbed.
    with testbed.TestbedServer(testbed.scenario_for_tests()) as server:
        yield server


@pytest.fixture(scope="module")
def probed_config(epr: testbed.TestbedServer, tmp_path_factory: pytest.TempPathFactory) -> WardwatchConfig:
    """The demo config aimed at the test's testbed and data directory, after one run of each workflow."""
    config = load_config(EXAMPLE)
    targets = {
        name: target.model_copy(
            update={
                "base_url": epr.fhir_url,
                "auth": target.auth.model_copy(update={"token_url": epr.token_url}),
            }
        )
        for name, target in config.targets.items()
    }
    store = config.store.model_copy(update={"path": tmp_path_factory.mktemp("store")})
    config = config.model_copy(update={"targets": targets, "store": store})
    environ = {wiring.TESTBED_SECRET_VARIABLE: testbed.DEFAULT_CLIENT_SECRET}
    results = wiring.probe_once(config, workflow="open-patient-record", environ=environ)
    assert [r.status for r in results] == ["ok"] * len(config.sites)
    return config


def test_probe_runs_land_in_the_store_as_runs_and_steps(probed_config: WardwatchConfig) -> None:
    store = analysis.open_store(probed_config.store.path)
    runs = store.runs()
    assert sorted(runs["site"]) == sorted(site.name for site in probed_config.sites)
    assert set(runs["status"]) == {"ok"}
    steps = store.steps()
    workflow = next(w for w in probed_config.workflows if w.name == "open-patient-record")
    per_run = steps.groupby("trace_id")["step"].apply(list)
    assert all(list(names) == [s.name for s in workflow.steps] for names in per_run)
    # A run's waiting time is the sum of its steps' durations (think time excluded).
    sums = steps.groupby("trace_id")["duration_s"].sum()
    for run in runs.itertuples():
        assert run.waiting_s == pytest.approx(sums[run.trace_id], abs=1e-6)
        assert run.wall_s >= run.waiting_s


@pytest.mark.browser
def test_dashboard_shows_the_runs_in_chromium(
    probed_config: WardwatchConfig, browser: object, screenshots_dir: Path
) -> None:
    context = DashboardContext(data_dir=probed_config.store.path, refresh_interval_s=60)
    console_errors: list[str] = []
    with DashboardServer(create_app(context), port=0) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(server.url)
        table = page.locator("#runs-table")
        table.get_by_text("open-patient-record").first.wait_for(timeout=15_000)
        assert table.get_by_text("community-hospital").count() >= 1
        page.locator("#step-duration-chart .barlayer .point").first.wait_for(timeout=15_000)
        assert "3 runs" in page.locator("#step-duration-chart").inner_text()
        page.screenshot(path=str(screenshots_dir / "runs.png"), full_page=True)
        page.close()
    assert console_errors == []


def test_dashboard_explains_an_empty_data_directory(tmp_path: Path) -> None:
    recent = load_recent_runs(tmp_path, limit=10, chart_runs=5)
    assert recent.runs.empty
    assert "not a Wardwatch store" in recent.message or "No runs" in recent.message
