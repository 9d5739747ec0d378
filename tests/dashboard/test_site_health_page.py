"""The site health page: quiet sites first, in plain sentences, with the table beneath."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from dashboard.context import DashboardContext, SiteInfo
from store import schema, write_spans


def test_the_page_says_which_site_went_quiet(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    path = tmp_path / schema.SITE_HEALTH_FILE
    path.parent.mkdir()
    path.write_text(json.dumps({"senders": [
        {"sender": "ward-7", "last_heard": (now - dt.timedelta(minutes=48)).timestamp()},
        {"sender": "community-hospital", "last_heard": (now - dt.timedelta(seconds=20)).timestamp(),
         "spool_runs": 0, "clock_offset_s": 0.25, "probe_version": "0.1.0"},
    ]}))
    context = DashboardContext(data_dir=tmp_path, timezone="Europe/London", now=lambda: now,
                               sites=(SiteInfo("community-hospital", "Community hospital", "Europe/London"),
                                      SiteInfo("ward-7", "Ward 7", "Europe/London")))
    from dashboard import create_app

    app = create_app(context)  # pages register with an app, each imported by Dash as ``pages.<name>``
    # (importing it as dashboard.pages.site_health would register its path a second time)
    body = sys.modules["pages.site_health"].body

    with app.server.test_request_context("/site-health"):  # as Dash calls a page's layout
        sentences, table = body(context)
    texts = [item.children for item in sentences.children]
    assert texts == ["Ward 7 has not reported since 08:12.", "Community hospital is reporting."]
    assert "+0.25 s" in str(table) and "0.1.0" in str(table)


def test_a_quiet_site_on_the_overview_is_named_and_leads_to_site_health(tmp_path: Path) -> None:
    from analysis.findings import Figure, Story
    from dashboard import create_app
    from dashboard.filters import Filters

    context = DashboardContext(data_dir=tmp_path, timezone="Europe/London",
                               sites=(SiteInfo("ward-7", "Ward 7", "Europe/London"),))
    create_app(context)
    overview = sys.modules["pages.overview"]
    story = Story(kind="quiet_site", headline="Ward 7 has not reported since 08:12: ...", since=None,
                  since_text="since Fri 27 Nov 08:12", workflow=None, sites=("ward-7",), period=None,
                  figures=(Figure("last heard", "Fri 27 Nov 08:12"),), lenses=(), blame=None,
                  suggestion_yaml=None, severity_s=2880.0)
    item = str(overview.story_item(story, Filters.from_search("", context), context))
    assert "A site has gone quiet" in item and "/site-health" in item
    assert "1 site gone quiet" in overview.summary_sentence([story], Filters.from_search("", context))


def test_a_sites_newest_measured_run_comes_from_the_query_layer(tmp_path: Path) -> None:
    """A site the observatory never heard from is reporting when the store holds its measured
    runs (read through the pre-aggregates, then only the newest bucket); simulated history is
    not hearing from a site."""
    from analysis.query import preagg
    from dashboard import create_app
    from dashboard.data import definitions
    from tests.analysis.conftest import run_rows

    now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    rows = []
    for minutes in range(2 * 24 * 60, 0, -30):  # two days of a run every half hour, the last 2 min ago
        rows += run_rows(now - dt.timedelta(minutes=minutes - 28), "open", "ward-7", [("find", 0.4)])
    simulated = run_rows(now - dt.timedelta(minutes=1), "open", "clinic", [("find", 0.4)])
    for row in simulated:
        row[schema.RESOURCE_ATTRIBUTES] = {**row[schema.RESOURCE_ATTRIBUTES], schema.ATTR_SIMULATED: "true"}
    write_spans(tmp_path, rows + simulated)
    context = DashboardContext(data_dir=tmp_path, timezone="UTC", now=lambda: now,
                               sites=(SiteInfo("ward-7", "Ward 7", "UTC"), SiteInfo("clinic", "Clinic", "UTC")))
    preagg.refresh(tmp_path, definitions(context), now=now)
    assert preagg.coverage(tmp_path, definitions(context)).built  # the page reads them
    app = create_app(context)
    with app.server.test_request_context("/site-health"):
        sentences, table = sys.modules["pages.site_health"].body(context)
    assert [item.children for item in sentences.children] == ["Clinic has never reported.", "Ward 7 is reporting."]
    assert "Fri 27 Nov 08:58:00" in str(table)
