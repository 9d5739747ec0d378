"""The runs page, in Chromium: choosing a run puts it in the URL (so the link to it can be shared),
and the step chart labels each run with its site's display name, not the site's id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dashboard import DashboardContext, DashboardServer, create_app
from dashboard.context import SiteInfo, WorkflowInfo
from store import ParquetSpanExporter

NOW = dt.datetime(2026, 11, 26, 14, 40, tzinfo=dt.UTC)


@pytest.fixture
def runs_url(make_probe, tmp_path: Path) -> Iterator[str]:
    memory = InMemorySpanExporter()
    ward = make_probe(site="ward-7", timezone="UTC", exporter=memory)
    for minutes in range(5, 65, 5):
        start_ns = int((NOW - dt.timedelta(minutes=minutes)).timestamp()) * 1_000_000_000
        ward.run(start_ns, workflow="open-patient-record", steps=(("find", 0.2), ("open", 0.5 + minutes / 100)))
    ParquetSpanExporter(tmp_path / "data").export(memory.get_finished_spans())
    context = DashboardContext(data_dir=tmp_path / "data", timezone="UTC",
                               sites=(SiteInfo("ward-7", "Ward 7", "UTC"),),
                               workflows=(WorkflowInfo("open-patient-record", threshold_s=3.0),), now=lambda: NOW)
    with DashboardServer(create_app(context), port=0) as server:
        yield server.url.rstrip("/")


@pytest.mark.browser
@pytest.mark.parametrize("search", ["?window=1d", ""], ids=["window-given", "default-window"])
def test_choosing_a_run_keeps_it_in_the_url_and_the_chart_names_the_site(
        browser: object, runs_url: str, screenshots_dir: Path, search: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{runs_url}/runs{search}")
    link = page.locator("a.run-link").first
    link.wait_for(timeout=30_000)
    page.locator("#step-duration-chart .xtick").first.wait_for(timeout=30_000)
    labels = page.locator("#step-duration-chart .xtick").evaluate_all("els => els.map(e => e.textContent)")
    assert labels and all(label.endswith("· Ward 7") for label in labels), labels
    href = link.get_attribute("href")
    assert href and "trace=" in href, href
    link.click()
    page.locator("#waterfall-chart .barlayer .point").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # any callback that would rewrite the URL has run by now
    assert f"trace={href.split('trace=')[1]}" in page.url, page.url
    page.screenshot(path=str(screenshots_dir / "runs-chosen-run.png"), full_page=True)
    assert errors == []
    page.close()


@pytest.mark.browser
def test_a_window_chosen_on_a_page_whose_default_differs_reaches_the_url(browser: object, runs_url: str) -> None:
    """The time-of-day page shows 28 days when the URL names no window; choosing 7 days is a change."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{runs_url}/time-of-day")
    control = page.locator("label").filter(has_text="window").first
    control.get_by_text("last 28 days").wait_for(timeout=30_000)
    control.get_by_text("last 28 days").click()
    page.get_by_role("option", name="last 7 days").click()
    page.wait_for_url("**window=7d**", timeout=10_000)
    page.close()
