"""Notices: written once when a paging alert fires and resolves, added by an operator, shown on
the status page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
from click.testing import CliRunner

from alerting.config import AlertingConfig
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from analysis.notices import read_notices, write_delivery
from dashboard import DashboardContext, DashboardServer, create_app
from dashboard.context import SiteInfo
from wardwatch.cli import main

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def test_a_paging_alert_writes_one_notice_when_it_fires_and_one_when_it_resolves(add_runs) -> None:
    data = add_runs([(T0 + i * MINUTE, "open", "ward-7", "failed", 1.0) for i in range(3)])
    names = Names(workflows={"open": "Open patient record"}, sites={"ward-7": "Ward 7"})
    for minute in range(3, 6):  # restarted every minute: still one notice
        Evaluator(data, AlertingConfig(), AlertInputs(), names).evaluate(T0 + minute * MINUTE)
    add_runs([(T0 + 6 * MINUTE, "open", "ward-7", "ok", 1.0)])
    for minute in range(7, 9):
        Evaluator(data, AlertingConfig(), AlertInputs(), names).evaluate(T0 + minute * MINUTE)
    notices = read_notices(data, site="ward-7")
    assert [n.text for n in notices] == [
        "Open patient record at Ward 7 is working normally again, since 10:07.",
        "Open patient record is not working at Ward 7 since 10:00. If you need it now, follow your downtime "
        "procedure. We will update you by 10:45."]
    assert [n.source for n in notices] == ["alert", "alert"]


def test_an_operator_notice_is_shown_on_the_status_page(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = tmp_path / "wardwatch.yaml"
    path.write_text(f"store: {{path: {data}}}\nsites: [{{name: ward-7, timezone: Europe/London, title: Ward 7}}]\n",
                    encoding="utf-8")
    runner = CliRunner()
    added = runner.invoke(main, ["notice", "add", "-c", str(path), "--site", "ward-7",
                                 "--text", "Handover lists are slow this morning; the supplier is on it."])
    assert added.exit_code == 0, added.output
    unknown = runner.invoke(main, ["notice", "add", "-c", str(path), "--site", "ward-9", "--text", "x"])
    assert unknown.exit_code == 2 and "no site named 'ward-9'" in unknown.output
    assert "ward-7 (operator): Handover lists are slow" in runner.invoke(main, ["notice", "list", "-c", str(path)]).output
    # the operator edits it: same place, new words, said when
    notice_id = runner.invoke(main, ["notice", "list", "-c", str(path)]).output.split()[0]
    edited = runner.invoke(main, ["notice", "edit", "-c", str(path), notice_id,
                                  "--text", "Handover lists are slow this morning; fixed by 10:00."])
    assert edited.exit_code == 0, edited.output
    [listed] = runner.invoke(main, ["notice", "list", "-c", str(path)]).output.splitlines()
    assert listed.startswith(f"{notice_id} ") and ", updated " in listed
    assert listed.endswith("(operator, updated " + listed.split(", updated ")[1].split(")")[0]
                           + "): Handover lists are slow this morning; fixed by 10:00.")
    missing = runner.invoke(main, ["notice", "edit", "-c", str(path), "nope", "--text", "x"])
    assert missing.exit_code == 2 and "no notice with id 'nope'" in missing.output
    empty = runner.invoke(main, ["notice", "edit", "-c", str(path), notice_id, "--text", "  "])
    assert empty.exit_code == 2 and "a notice needs text" in empty.output

    write_delivery(data, [{"receiver": "desk", "waiting": 2, "since": "2026-10-01T08:15:00+00:00",
                           "error": "ConnectError"}])
    context = DashboardContext(data_dir=data, sites=(SiteInfo("ward-7", "Ward 7", "Europe/London"),))
    with DashboardServer(create_app(context), port=0) as server:
        url = server.url.rstrip("/")
        httpx.get(url + "/status", timeout=30)
        response = httpx.post(url + "/_dash-update-component", timeout=60, json={
            "output": "status-notices.children",
            "outputs": {"id": "status-notices", "property": "children"},
            "inputs": [{"id": "refresh-interval", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["refresh-interval.n_intervals"]})
    assert response.status_code == 200, response.text[:300]
    undelivered, item = response.json()["response"]["status-notices"]["children"]
    assert undelivered["props"]["children"] == (
        "Alerts not yet delivered to desk: 2 waiting since Thu 01 Oct 09:15 (ConnectError); they are retried.")
    strong, text = item["props"]["children"]
    assert strong["props"]["children"].startswith("Ward 7, ")
    assert text.startswith("Handover lists are slow this morning; fixed by 10:00. (updated ")


def test_an_alert_at_two_sites_writes_a_notice_at_each(add_runs) -> None:
    """An objective of ward rounds, kept at Ward 7 and Community hospital, burning: the notice is on
    both sites' status pages, naming both, and on neither more than once."""
    from analysis.calendar import ClinicalCalendar
    from analysis.config import ObjectiveConfig, PeriodConfig

    start = dt.datetime(2026, 10, 1, 8, 0, 30, tzinfo=UTC)  # 09:00 in London, in ward rounds
    data = add_runs([(start + i * MINUTE, "open", site, "failed" if i % 5 == 0 else "ok", 5.0 if i % 5 == 0 else 1.0)
                     for i in range(60) for site in ("ward-7", "community")])
    calendar = ClinicalCalendar(
        [PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30), sites=["ward-7", "community"])],
        {"ward-7": "Europe/London", "community": "Europe/London", "clinic": "Europe/London"})
    objective = ObjectiveConfig(name="rounds", workflow="open", threshold_s=3, target=0.99, periods=["ward rounds"])
    names = Names(workflows={"open": "Open patient record"},
                  sites={"ward-7": "Ward 7", "community": "Community hospital", "clinic": "Outpatient clinic"})
    for _ in range(2):
        Evaluator(data, AlertingConfig(), AlertInputs(objectives=[objective], calendar=calendar), names).evaluate(
            start + 60 * MINUTE)
    for site in ("ward-7", "community"):
        (notice,) = read_notices(data, site=site)
        assert notice.site == site and "at Ward 7 and Community hospital" in notice.text, notice
    assert not read_notices(data, site="clinic")
