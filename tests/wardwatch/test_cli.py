"""The command line: --help that tells the truth, one clear line per mistake, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import testbed
from wardwatch.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
COMMANDS = ["check", "testbed", "probe", "dashboard", "demo", "upgrade-store"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage: main " + command in result.output or f"Usage: wardwatch {command}" in result.output


DEMO_TOKENS = {f"WARDWATCH_SITE_TOKEN_{site}": "demo" for site in ("WARD_7", "OUTPATIENT_CLINIC", "COMMUNITY_HOSPITAL")}
DEMO_TOKENS["WARDWATCH_EPR_TOKEN_TESTBED"] = "demo"


def test_check_accepts_the_demo_config() -> None:
    env = {"WARDWATCH_TESTBED_CLIENT_SECRET": testbed.DEFAULT_CLIENT_SECRET, **DEMO_TOKENS}
    result = CliRunner().invoke(main, ["check", "-c", str(EXAMPLE)], env=env)
    assert result.exit_code == 0, result.output
    assert "ok (4 workflows, 3 sites" in result.output


def test_check_names_a_secret_the_environment_lacks() -> None:
    result = CliRunner().invoke(main, ["check", "-c", str(EXAMPLE)], env={"WARDWATCH_TESTBED_CLIENT_SECRET": None})
    assert result.exit_code == 2
    assert "targets.testbed.auth.client_secret: environment variable WARDWATCH_TESTBED_CLIENT_SECRET is not set" in (
        result.output
    )


def test_report_for_a_month_in_markdown(tmp_path: Path) -> None:
    config = tmp_path / "w.yaml"
    config.write_text(EXAMPLE.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    from store import init_store

    init_store(tmp_path / "data")
    result = CliRunner().invoke(main, ["report", "-c", str(config), "--month", "2026-10"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# Wardwatch report for October 2026")
    assert "Not enough data for October 2026" in result.output
    bad = CliRunner().invoke(main, ["report", "-c", str(config), "--month", "October"])
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output


def test_import_reports_skipped_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "w.yaml"
    config.write_text(EXAMPLE.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    span = (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"epr"}}]},'
        '"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
        '"name":"GET /Patient","kind":2,"startTimeUnixNano":"1790000000000000000",'
        '"endTimeUnixNano":"1790000000250000000"}]}]}]}'
    )
    lines = tmp_path / "spans.jsonl"
    lines.write_text(span + "\n{not json\n")
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(lines)])
    assert result.exit_code == 1  # some lines skipped (2 is for nothing imported)
    assert f"{lines}: 1 spans imported, 1 lines skipped" in result.output
    assert f"{lines}:2:" in result.output


def test_a_bad_config_gives_located_lines_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dashboard:\n  port: 0\n  colour: red\n")
    # A real process: no traceback may reach the user.
    done = subprocess.run(
        [sys.executable, "-m", "wardwatch", "check", "-c", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{bad}:2:9: dashboard.port: Input should be greater than or equal to 1",
        f"{bad}:3:3: dashboard.colour: unknown key (check its spelling against the configuration reference)",
    ]
    assert "Traceback" not in done.stderr


def test_a_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml:1:1: file: cannot read" in result.output


def test_an_unknown_site_is_refused_before_probing() -> None:
    result = CliRunner().invoke(main, ["probe", "-c", str(EXAMPLE), "--once", "--site", "ward-9"])
    assert result.exit_code == 2
    assert "no site named 'ward-9'" in result.output
    assert "known: ward-7, outpatient-clinic, community-hospital" in result.output


def test_probe_once_against_the_testbed(tmp_path: Path) -> None:
    config = tmp_path / "probe.yaml"
    with testbed.TestbedServer(testbed.scenario_for_tests()) as epr:
        text = EXAMPLE.read_text().replace("http://127.0.0.1:8765", epr.base_url)
        text = text.replace("path: ../data/demo", f"path: {tmp_path / 'data'}")
        text = text.replace("think_time_s: 0.5", "think_time_s: 0").replace("think_time_s: 2", "think_time_s: 0")
        config.write_text(text)
        result = CliRunner().invoke(
            main,
            ["probe", "-c", str(config), "--once", "--workflow", "open-patient-record", "--site", "ward-7"],
            env={"WARDWATCH_TESTBED_CLIENT_SECRET": testbed.DEFAULT_CLIENT_SECRET},
        )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("open-patient-record @ ward-7: ok, waited ")
    assert f"1 run stored in {tmp_path / 'data'}" in result.output
