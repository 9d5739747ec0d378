"""The web front end under /app/ and its latency model (the ground truth of browser probes)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testbed import TestbedServer, load_scenario, route_for, scenario_for_tests
from testbed.data import MRN_SYSTEM
from testbed.web.model import (
    BANNER_ENDPOINT,
    PANEL_ENDPOINTS,
    PagePlan,
    page_plan,
    record_api_s,
    record_visible_s,
)

API_S = {BANNER_ENDPOINT: 0.100, "GET /Encounter": 0.150, "GET /Observation": 0.120,
         "GET /MedicationRequest": 0.180, "GET /AllergyIntolerance": 0.090, "GET /DocumentReference": 0.200}


def test_panels_together_wait_for_the_slowest_and_the_notes_render() -> None:
    plan = PagePlan(sequential_panels=False, note_render_ms=10, spinner_linger_ms=300)
    # banner 0.1 + max(0.18 medications, 0.2 notes + 4 x 0.01 render) + 0.3 linger
    assert record_visible_s(plan, API_S, notes_shown=4) == pytest.approx(0.1 + 0.24 + 0.3)
    # few notes: the medications panel is the last to arrive
    assert record_visible_s(plan, API_S, notes_shown=0) == pytest.approx(0.1 + 0.2 + 0.3)


def test_panels_one_after_another_add_up() -> None:
    plan = PagePlan(sequential_panels=True, note_render_ms=10, spinner_linger_ms=0)
    panels_s = sum(API_S[endpoint] for _panel, endpoint in PANEL_ENDPOINTS)
    assert record_visible_s(plan, API_S, notes_shown=4) == pytest.approx(0.1 + panels_s + 0.04)


def test_notes_drawn_are_capped_at_the_page_size() -> None:
    plan = PagePlan(sequential_panels=True, note_render_ms=10, spinner_linger_ms=0)
    assert record_visible_s(plan, API_S, notes_shown=50) == record_visible_s(plan, API_S, notes_shown=10)


def test_the_default_scenario_release_makes_panels_sequential_from_its_moment() -> None:
    scenario = load_scenario()
    release = scenario.frontend.releases[0]
    before = page_plan(release.at - timedelta(minutes=1), scenario)
    after = page_plan(release.at, scenario)
    assert not before.sequential_panels and before.releases == ()
    assert after.sequential_panels and after.releases == (release.name,)
    # the API is exactly as fast on both sides of the release; only the screen is slower
    quiet = scenario.with_overrides(jitter_ms=0, load_curve={}, periods=[], tails=[], changes=[])
    at_before, at_after = datetime(2026, 11, 17, 7, tzinfo=UTC), datetime(2026, 11, 18, 7, tzinfo=UTC)
    assert record_api_s("ward-7", at_before, quiet) == record_api_s("ward-7", at_after, quiet)
    slower = (record_visible_s(page_plan(at_after, quiet), record_api_s("ward-7", at_after, quiet), 10)
              - record_visible_s(page_plan(at_before, quiet), record_api_s("ward-7", at_before, quiet), 10))
    assert slower > 0.3


def test_a_later_release_overrides_an_earlier_one() -> None:
    scenario = scenario_for_tests().with_overrides(frontend={
        "spinner_linger_ms": 100,
        "releases": [
            {"name": "slow", "at": "2026-11-01T00:00:00Z", "sequential_panels": True, "spinner_linger_ms": 900},
            {"name": "fix", "at": "2026-11-10T00:00:00Z", "sequential_panels": False},
        ],
    })
    plan = page_plan(datetime(2026, 11, 12, tzinfo=UTC), scenario)
    assert (plan.sequential_panels, plan.spinner_linger_ms, plan.releases) == (False, 900, ("slow", "fix"))
    with pytest.raises(ValueError, match="aware"):
        page_plan(datetime(2026, 11, 12), scenario)  # noqa: DTZ001 - the naive instant is the point


def test_the_app_is_served_with_the_plan_of_the_moment() -> None:
    scenario = scenario_for_tests().with_overrides(frontend={
        "note_render_ms": 25,
        "releases": [{"name": "web-24.4", "at": "2026-11-18T07:00:00Z", "sequential_panels": True}],
    })
    moments = iter([datetime(2026, 11, 18, 6, 59, tzinfo=UTC), datetime(2026, 11, 18, 7, 0, tzinfo=UTC)])
    now = {"at": next(moments)}
    with TestbedServer(scenario, patients=5, clock=lambda: now["at"]) as epr:
        plans = []
        for _ in range(2):
            page = httpx.get(epr.base_url + "/app/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            plans.append(json.loads(re.search(r'<script id="plan"[^>]*>(.*?)</script>', page.text, re.S)[1]))
            now["at"] = next(moments, now["at"])
        assert plans[0] == {"sequential_panels": False, "note_render_ms": 25, "spinner_linger_ms": 0,
                            "releases": [], "mrn_system": MRN_SYSTEM}
        assert plans[1]["sequential_panels"] and plans[1]["releases"] == ["web-24.4"]
        script = httpx.get(epr.base_url + "/app/app.js")
        assert script.status_code == 200 and "openRecord" in script.text
        assert httpx.get(epr.base_url + "/app/app.css").status_code == 200
        assert httpx.get(epr.base_url + "/app").headers["location"].endswith("/app/")


def test_app_paths_are_not_modelled_and_keep_no_id() -> None:
    assert route_for("GET", "/app/") == route_for("GET", "/app/")
    assert route_for("GET", "/app/app.js").key is None
    assert route_for("GET", "/app/app.js").template == "/app/app.js"
    assert route_for("GET", "/app/patient/pat-0001").template is None
