"""One source of truth: the command line, the dashboard's report page and the demo's history agree.

A module fixture simulates nine days of the demo's history from the testbed's scenario (its
release moved into the window and recorded in the data directory, as the demo does); the month's
report from `wardwatch report --format json` and from the dashboard's report page must then give
the same findings and the same change results, with Release 24.3 among them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.changelog import recorded_changes
from testbed import load_scenario
from wardwatch import wiring
from wardwatch.cli import main
from wardwatch.config import WardwatchConfig, load_config
from wardwatch.simulate import read_history_summary, scenario_in_window, simulate_history

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "testbed.yaml"
# As tests/notebooks: nine days ending on a Thursday; the release moves to Wed 4 Nov 07:00 UTC.
HISTORY_END = dt.datetime(2026, 11, 12, 5, 0, tzinfo=dt.UTC)
MONTH = "2026-11"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WardwatchConfig]:
    """A configuration file over a store holding nine simulated days, as the demo builds them."""
    folder = tmp_path_factory.mktemp("truth")
    config_path = folder / "wardwatch.yaml"
    config_path.write_text(EXAMPLE.read_text().replace("path: ../data/demo", f"path: {folder / 'data'}"))
    config = load_config(config_path)
    simulate_history(config, days=9, end=HISTORY_END)
    return config_path, config


def same(a: object, b: object, where: str = "") -> None:
    """Equal documents; floats to 1e-9 relative: DuckDB's parallel sums differ run to run in the
    last digits (the same command twice does too), every text and formatted figure is exact."""
    if isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def cli_json(config_path: Path, month: str) -> dict:
    result = CliRunner().invoke(main, ["report", "-c", str(config_path), "--month", month, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def dashboard_json(config_path: Path, config: WardwatchConfig, month: str) -> dict:
    """The report as the dashboard's report page builds it, from the context the dashboard runs with."""
    import analysis
    from dashboard import create_app

    context = wiring.dashboard_context(config, config_path.parent)
    create_app(context)
    # Dash loads the pages folder itself, as ``pages.report``; importing it under another name
    # would register the page twice.
    report_page = importlib.import_module("pages.report")

    built = report_page.report_for(context, month)
    html_page, _csv = report_page._report(context, month)
    assert built.verdict.replace("'", "&#x27;") in html_page
    return json.loads(analysis.to_json(built))


def test_the_history_records_its_moved_release(demo: tuple[Path, WardwatchConfig]) -> None:
    _, config = demo
    summary = read_history_summary(config.store.path)
    moved = scenario_in_window(load_scenario(), summary.start, summary.end).changes[0]
    (release,) = recorded_changes(config.store.path)
    assert release.title == "Release 24.3" and release.at == moved.at == dt.datetime(2026, 11, 4, 7, tzinfo=dt.UTC)
    assert release.workflows == ["open-patient-record", "chart-observations"]


def test_the_command_line_and_the_dashboard_report_the_same_month(demo: tuple[Path, WardwatchConfig]) -> None:
    config_path, config = demo
    cli, page = cli_json(config_path, MONTH), dashboard_json(config_path, config, MONTH)
    assert cli["has_data"] and cli["findings"], "the demo's month has findings"
    same(cli["findings"], page["findings"], "findings")
    same(cli["changes"], page["changes"], "changes")
    assert cli["verdict"] == page["verdict"] and cli["headline"] == page["headline"]
    same(cli["slas"], page["slas"], "slas")
    # The release the history moved is seen by both, and it slowed opening a record in its medications.
    (release,) = cli["changes"]
    assert release["title"] == "Release 24.3" and release["at"] == "2026-11-04T07:00:00+00:00"
    opens = [row for row in release["impact"] if row["workflow"] == "open-patient-record"]
    assert {row["site"] for row in opens} == {"ward-7", "outpatient-clinic", "community-hospital"}
    assert all(row["significant"] and row["dominant_step"] == "medications" for row in opens)
    assert any(line.startswith("Release 24.3 (04 Nov 07:00 UTC): Open patient record at ") for line in cli["headline"])


def test_a_change_added_on_the_command_line_reaches_both(demo: tuple[Path, WardwatchConfig]) -> None:
    from analysis.changelog import CHANGES_FILE

    config_path, config = demo
    recorded = config.store.path / CHANGES_FILE
    before = recorded.read_text()
    started = wiring.dashboard_context(config, config_path.parent)  # a dashboard already running
    try:
        result = CliRunner().invoke(main, ["change", "add", "-c", str(config_path), "--at", "2026-11-09T06:00:00Z",
                                           "--title", "Network change", "--workflow", "ward-handover"])
        assert result.exit_code == 0, result.output
        assert result.output == "recorded 'Network change' at 2026-11-09 06:00 UTC\n"
        cli, page = cli_json(config_path, MONTH), dashboard_json(config_path, config, MONTH)
        assert [c["title"] for c in cli["changes"]] == ["Release 24.3", "Network change"]
        same(cli["changes"], page["changes"], "changes")
        # The overview's findings read the same changes, though recorded after the dashboard started.
        from dashboard.findings import inputs_of

        assert [c.title for c in started.changes] == ["Release 24.3"]
        assert [c.title for c in inputs_of(started).changes] == ["Release 24.3", "Network change"]
    finally:
        recorded.write_text(before)  # the module's other tests read the history's own changes


@pytest.mark.parametrize("arguments, message", [
    (["--at", "2026-11-09T06:00:00", "--title", "R"], "--at: at needs a UTC offset"),
    (["--at", "yesterday", "--title", "R"], "--at: not an ISO 8601 time"),
    (["--at", "2026-11-09T06:00:00Z", "--title", "R", "--workflow", "nope"], "--workflow: no workflow named 'nope'"),
])
def test_change_add_refuses_bad_input_and_writes_nothing(tmp_path: Path, arguments: list[str], message: str) -> None:
    config_path = tmp_path / "wardwatch.yaml"
    config_path.write_text(EXAMPLE.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    result = CliRunner().invoke(main, ["change", "add", "-c", str(config_path), *arguments])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data" / "changes.yaml").exists()


def test_a_month_without_data_reports_no_conclusion(demo: tuple[Path, WardwatchConfig]) -> None:
    config_path, config = demo
    for document in (cli_json(config_path, "2026-09"), dashboard_json(config_path, config, "2026-09")):
        assert document["has_data"] is False and document["findings"] == []
        assert document["verdict"].startswith("Not enough data for September 2026")
        assert all(s["verdict"] == "not enough data" for s in document["slas"])
        assert all(o["verdict"] == "not enough data" for o in document["objectives"])


def test_progress_is_shown_in_lines_when_the_output_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with wiring._progress("simulating 2 days of history", 3, stream=stream) as advance:
        for done in range(4):
            advance(done, 3)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "simulating 2 days of history ..."
    assert [line.split(" (")[0] for line in lines[1:]] == [
        f"simulating 2 days of history: {done} of 3 done" for done in (1, 2, 3)]


@pytest.mark.browser
def test_the_report_page_in_a_browser_shows_the_command_lines_verdict(demo: tuple[Path, WardwatchConfig],
                                                                       browser: object) -> None:
    from dashboard import DashboardServer, create_app

    config_path, config = demo
    cli = cli_json(config_path, MONTH)
    context = wiring.dashboard_context(config, config_path.parent)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        with DashboardServer(create_app(context), port=0) as server:
            page.goto(server.url.rstrip("/") + f"/report?window={MONTH}")
            page.get_by_role("button", name="Build the report").click()
            frame = page.frame_locator("iframe")
            frame.locator(".verdict").wait_for(timeout=120_000)
            assert frame.locator(".verdict").inner_text() == cli["verdict"]
            shown = frame.locator("h3").all_inner_texts()
            told = [f"{i}. {story['headline']}" for i, story in enumerate(cli["findings"], start=1)]
            assert shown[:len(told)] == told
            assert frame.locator("svg").count() >= 1
            assert "Release 24.3 (04 Nov 07:00 UTC)" in frame.locator("body").inner_text()
    finally:
        page.close()


def test_a_broken_changes_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    from store import init_store

    config_path = tmp_path / "wardwatch.yaml"
    config_path.write_text(EXAMPLE.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    init_store(tmp_path / "data")
    (tmp_path / "data" / "changes.yaml").write_text("- {title: Release 24.3}\n")
    for command in (["report", "-c", str(config_path), "--month", MONTH],
                    ["change", "add", "-c", str(config_path), "--at", "2026-11-09T06:00:00Z", "--title", "R"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert f"{tmp_path / 'data' / 'changes.yaml'}: change 1: at: Field required" in result.output
        assert "Traceback" not in result.output
    assert (tmp_path / "data" / "changes.yaml").read_text() == "- {title: Release 24.3}\n"  # left as it was
