"""The overview on the demo's data, in Chromium: without a click, it tells the clinic stalls in plain
words with display names, and does not rate the Outpatient clinic's record opening Good.

The data is the demo's: history simulated from the testbed's packaged scenario through the
collector's span code, for the demo's configuration (examples/testbed.yaml) at the demo's cadence,
over three weekdays (Mon 12 Oct 2026 07:00Z to Thu 15 Oct 07:00Z), as small as the findings' own
acceptance test finds the stories in; the dashboard's clock stands at the end of it, so its
default window (the last 7 days) holds all of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import DashboardServer, create_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
END = dt.datetime(2026, 10, 15, 7, tzinfo=dt.UTC)
# Configuration ids that must never reach a reader of the findings.
IDS = ("open-patient-record", "chart-observations", "outpatient-clinic", "community-hospital", "ward-7",
       "time_dilution", "per_request", "unwatched_wait")


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from testbed import load_scenario
    from wardwatch import wiring
    from wardwatch.config import load_config
    from wardwatch.simulate import simulate_history

    path = tmp_path_factory.mktemp("demo") / "store"
    config = load_config(EXAMPLE)
    config = config.model_copy(update={"store": config.store.model_copy(update={"path": path})})
    simulate_history(config, days=3, end=END, store_path=path, scenario=load_scenario(), workers=1)
    context = dataclasses.replace(wiring.dashboard_context(config, EXAMPLE.parent), now=lambda: END)
    with DashboardServer(create_app(context), port=0) as server:
        yield server.url.rstrip("/")


@pytest.mark.browser
def test_the_overview_tells_the_clinic_stalls_without_a_click(browser, demo_url: str, screenshots_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo_url + "/")
    stories = page.locator("#stories li.story")
    stall = stories.filter(has_text=re.compile(r"Every weekday 13:30.17:00"))
    stall.first.wait_for(timeout=180_000)  # looked for off the request; the page fills in by itself
    headline = stall.first.locator(".story-headline").inner_text()
    assert "Open patient record" in headline and "all three sites" in headline, headline
    assert "the SLA “supplier response time”" in headline and "was met" in headline, headline
    assert re.search(r"about \d+ s", headline), headline
    assert stall.first.locator(".story-since").inner_text().startswith("since ")
    figures = stall.first.locator(".story-figures").first.inner_text()
    assert "n = " in figures and ("met" in figures or "breached" in figures), figures
    text = page.locator("#stories").inner_text()
    assert not [name for name in IDS if name in text], text

    # The board: the Outpatient clinic's record opening is rated by its worst part of the day.
    page.locator("#sla-beside-experience .main-svg").first.wait_for(timeout=30_000)
    # Ward work is judged by its objective's own 2 s, as its finding is, not by the workflow's 3 s.
    heat = page.evaluate("(() => { const d = document.querySelector('#sla-beside-experience .js-plotly-plot').data[0];"
                         " return {x: d.x, y: d.y, text: d.text}; })()")
    work = [label.replace("<br>", " ") for label in heat["x"]].index("ward work")
    record = [i for i, label in enumerate(heat["y"]) if label.startswith("Open patient record")]
    assert record and all("within 2 s" in heat["text"][i][work] for i in record if heat["text"][i][work]), heat
    row = page.locator("#watermelon-board tr").filter(has_text="Open patient record").filter(
        has_text="Outpatient clinic")
    rating = row.locator("td.rating").inner_text()
    assert rating and not rating.startswith(("Good", "Excellent")), rating
    # The stalls are at every site: no row of opening a record reads Good.
    ratings = page.locator("#watermelon-board tr").filter(has_text="Open patient record").locator("td.rating")
    assert ratings.count() == 3
    assert not [r for r in ratings.all_inner_texts() if r.startswith(("Good", "Excellent"))], ratings.all_inner_texts()
    # An objective's YAML, unfolded, wraps inside the page instead of widening it.
    page.evaluate("document.querySelectorAll('details.story-suggestion').forEach(d => d.open = true)")
    assert page.locator("details.story-suggestion[open]").count() > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.screenshot(path=str(screenshots_dir / "overview-demo.png"), full_page=True)
    assert errors == []
    page.close()
