"""The observatory's stories in find_stories: the EPR's servers against the wait, a site gone
quiet, and a browser workflow's release told with the lens "the API was fast, the screen was not";
over spans written to a real store and read back with DuckDB."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import analysis
from analysis.config import ChangeEventConfig
from analysis.findings import FindingInputs, SiteLabel, WorkflowLabel, find_stories
from store import schema, write_spans

from .test_server_time import run_rows

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
NS = 1_000_000_000
SITES = (SiteLabel("ward-7", "Ward 7", "Europe/London"),
         SiteLabel("community-hospital", "Community hospital", "Europe/London"))
INPUTS = FindingInputs(workflows=(WorkflowLabel("open", "Open patient record"),), sites=SITES, timezone="Europe/London")


def server_history(path: Path, community_after_s: float, n: int = 8) -> None:
    """A week of runs at the start and a week later: the community hospital's wait goes 0.4 s ->
    ``community_after_s`` with server time flat at 120 ms; Ward 7 stays as it was."""
    rows, k = [], 0
    for week, community_wait in ((0, 0.4), (7, community_after_s)):
        for i in range(n):
            at = T0 + dt.timedelta(days=week, minutes=10 * i)
            k += 1
            rows += run_rows(k, at, "community-hospital", community_wait, 0.12, via_request=bool(i % 2))
            k += 1
            rows += run_rows(k, at, "ward-7", 0.3, 0.1)
    write_spans(path, rows)


def stories(path: Path, start: dt.datetime, end: dt.datetime, **kwargs: object) -> list:
    with analysis.open_store(path) as store:
        return find_stories(store, INPUTS, None, start, end, **kwargs)


def test_the_wait_grew_and_the_servers_did_not(tmp_path: Path) -> None:
    server_history(tmp_path, 2.1)
    found = stories(tmp_path, T0, T0 + dt.timedelta(days=8))
    [story] = [s for s in found if s.kind == "server_time"]
    assert story.headline == (
        "Open patient record, the read step: server time was flat at 120 ms; the wait at Community hospital grew "
        "from 0.4 to 2.1 s: the network or the front end, not the EPR's servers.")
    assert story.sites == ("community-hospital",) and story.workflow == "open"
    assert story.blame.startswith("the network or the front end between Community hospital and the EPR")
    wait, server, rest = story.figures
    assert (wait.value, wait.threshold, wait.n) == ("2.1 s", "0.40 s before (n=8)", 8)
    assert (server.value, server.threshold) == ("0.12 s", "0.12 s before (n=8)")
    assert (rest.value, rest.threshold) == ("2.0 s", "0.28 s before (n=8)")
    [lens] = story.lenses
    assert lens.title == "The EPR's servers against the wait" and "n = 8 steps before, 8 after" in lens.text
    assert story.detail["part"] == "network" and story.since_text == (
        "comparing Mon 2 Nov 08:00–Wed 4 Nov 16:23 with Sat 7 Nov 00:46–Mon 9 Nov 09:10")
    json.dumps(story.to_json())
    assert not [s for s in found if "Ward 7" in s.headline]  # its wait did not grow


def test_a_wait_that_did_not_grow_tells_no_server_story(tmp_path: Path) -> None:
    server_history(tmp_path, 0.42)
    assert not [s for s in stories(tmp_path, T0, T0 + dt.timedelta(days=8)) if s.kind == "server_time"]


NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


def measured_runs(path: Path, site: str, last: dt.datetime, n: int = 3, simulated: bool = False) -> None:
    rows = []
    for i in range(n):
        rows += run_rows(int.from_bytes(f"{site}{i}".encode()[-6:]), last - dt.timedelta(minutes=5 * i), site, 0.3, 0.1)
    if simulated:
        for row in rows:
            row[schema.RESOURCE_ATTRIBUTES] = {**row[schema.RESOURCE_ATTRIBUTES], schema.ATTR_SIMULATED: "true"}
    write_spans(path, rows)


def test_a_site_gone_quiet_is_a_story(tmp_path: Path) -> None:
    measured_runs(tmp_path, "ward-7", dt.datetime(2026, 11, 27, 8, 12, tzinfo=dt.UTC))
    measured_runs(tmp_path, "community-hospital", NOW - dt.timedelta(minutes=1))
    window = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(minutes=15))
    found = stories(tmp_path, *window, now=NOW)
    [quiet] = [s for s in found if s.kind == "quiet_site"]
    assert quiet.headline.startswith("Ward 7 has not reported since 08:12: its runs are missing from every figure")
    assert quiet.sites == ("ward-7",) and quiet.since_text == "since Fri 27 Nov 08:12"
    assert quiet.figures[1].n == 3 and quiet.severity_s == 48 * 60
    # last month's report tells nothing of it: that window's present is gone
    assert not [s for s in stories(tmp_path, NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1), now=NOW)
                if s.kind == "quiet_site"]


def test_a_quiet_site_is_told_even_when_no_site_ran_in_the_window(tmp_path: Path) -> None:
    measured_runs(tmp_path, "ward-7", NOW - dt.timedelta(hours=5))
    path = tmp_path / schema.SITE_HEALTH_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"senders": [{"sender": "community-hospital", "spool_runs": 40,
                                             "last_heard": (NOW - dt.timedelta(hours=2)).timestamp()}]}))
    found = stories(tmp_path, NOW - dt.timedelta(hours=1), NOW, now=NOW)
    assert sorted(s.headline.split(" has")[0] for s in found) == ["Community hospital", "Ward 7"]
    assert all(s.kind == "quiet_site" for s in found)
    assert "its spool held 40 runs at its last report" in next(s.headline for s in found if "Community" in s.headline)


def test_a_store_of_simulated_history_alone_has_no_quiet_site(tmp_path: Path) -> None:
    """Nothing ever reported (the demo before its probes start): not a deployment gone quiet."""
    measured_runs(tmp_path, "ward-7", NOW - dt.timedelta(hours=5), simulated=True)
    found = stories(tmp_path, NOW - dt.timedelta(days=1), NOW, now=NOW)
    assert found == []


# -- a browser workflow's release ---------------------------------------------------------------

RELEASE = dt.datetime(2026, 11, 18, 7, 0, tzinfo=dt.UTC)
BROWSER = "open-patient-record-in-browser"


def browser_run(k: int, at: dt.datetime, sequential: bool) -> list[dict]:
    """A browser run: one step ``open-record`` whose page fetches five panels of 180 ms, together
    or one after another, plus 100 ms of its own."""
    start = int(at.timestamp() * NS)
    trace, root, step = f"{k:032x}", f"{k:014x}01", f"{k:014x}02"
    panels_s = 5 * 0.18 if sequential else 0.18 + 0.004
    wait_s = panels_s + 0.1
    resource = {schema.ATTR_SITE: "ward-7", schema.SERVICE_NAME_ATTR: "wardwatch-probe"}
    rows = [
        {schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: root, schema.DURATION: int(wait_s * NS),
         schema.RESOURCE_ATTRIBUTES: resource, schema.SPAN_ATTRIBUTES: {
             schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: BROWSER, schema.ATTR_RUN_STATUS: "ok",
             schema.ATTR_RUN_WAITING_S: wait_s}},
        {schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: step, schema.PARENT_SPAN_ID: root,
         schema.DURATION: int(wait_s * NS), schema.RESOURCE_ATTRIBUTES: resource,
         schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, schema.ATTR_WORKFLOW: BROWSER,
                                  schema.ATTR_STEP: "open-record", schema.ATTR_STEP_INDEX: 0}},
    ]
    for panel in range(5):
        offset_s = 0.18 * panel if sequential else 0.001 * panel
        rows.append({schema.TIMESTAMP: start + int(offset_s * NS), schema.TRACE_ID: trace,
                     schema.SPAN_ID: f"{k:014x}{panel + 10:02x}", schema.PARENT_SPAN_ID: step,
                     schema.DURATION: int(0.18 * NS), schema.SPAN_KIND: "Client", schema.RESOURCE_ATTRIBUTES: resource,
                     schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_PAGE_REQUEST,
                                              schema.ATTR_WORKFLOW: BROWSER, schema.ATTR_STEP: "open-record",
                                              schema.URL_TEMPLATE: "/fhir/DocumentReference",
                                              schema.HTTP_RESPONSE_STATUS_CODE: 200}})
    return rows


def test_a_browser_release_is_told_with_the_screen_lens(tmp_path: Path) -> None:
    rows = []
    for i in range(48):  # one run every 15 minutes, 12 hours either side of the release
        rows += browser_run(2 * i, RELEASE - dt.timedelta(minutes=15 * (i + 1)), sequential=False)
        rows += browser_run(2 * i + 1, RELEASE + dt.timedelta(minutes=15 * i), sequential=True)
    write_spans(tmp_path, rows)
    release = ChangeEventConfig(at=RELEASE, title="Web release 24.4", workflows=[BROWSER])
    inputs = FindingInputs(workflows=(WorkflowLabel(BROWSER, "Open patient record in the browser"),),
                           sites=SITES[:1], changes=(release,), timezone="Europe/London")
    with analysis.open_store(tmp_path) as store:
        found = find_stories(store, inputs, None, RELEASE - dt.timedelta(hours=12), RELEASE + dt.timedelta(hours=12))
    [story] = [s for s in found if s.kind == "change"]
    [lens] = story.lenses
    assert lens.title == "The API was fast, the screen was not"
    assert "the record page now fetches its five panels one after another: 5 x 180 ms instead of 184 ms" in lens.text
    assert "in Open patient record in the browser, the record page now fetches its five panels" in story.blame
    assert story.detail["screen"][BROWSER]["before_concurrency"] == 5.0


def test_the_reports_verdict_does_not_call_a_quiet_site_a_wait(tmp_path: Path) -> None:
    from analysis.config import ObjectiveConfig
    from analysis.report import build_report

    measured_runs(tmp_path, "ward-7", dt.datetime(2026, 11, 27, 8, 12, tzinfo=dt.UTC))
    measured_runs(tmp_path, "community-hospital", NOW - dt.timedelta(minutes=1))
    objective = ObjectiveConfig(name="reads within 3 s", workflow="open", threshold_s=3, target=0.5)
    with analysis.open_store(tmp_path) as store:
        report = build_report(store, [], [objective], INPUTS.calendar(), "2026-11", timezone="Europe/London",
                              labels=INPUTS, now=NOW)
    assert [s.kind for s in report.stories] == ["quiet_site"]
    assert "waited" not in report.verdict, report.verdict
    assert "Ward 7 has not reported since 08:12" in " ".join(report.headline)
