"""Configuration problems are reported as FILE:LINE:COL: dotted.key: message, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardwatch.config import ConfigError, load_config, parse_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "w.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_demo_config_is_valid() -> None:
    config = load_config(EXAMPLES / "testbed.yaml")
    assert config.workflows, "the demo config defines workflows"
    assert config.store.path.is_absolute(), "a relative store path is resolved against the file"


def test_an_empty_file_is_a_valid_config_with_defaults() -> None:
    config = parse_config("", "w.yaml")
    assert config.dashboard.port == 8050
    assert config.dashboard.host == "127.0.0.1"


def test_unknown_top_level_key_is_shown_at_the_key() -> None:
    assert problems("dashbord:\n  port: 1\n") == [
        "w.yaml:1:1: dashbord: unknown key (check its spelling against the configuration reference)"
    ]


def test_bad_value_is_shown_at_the_value() -> None:
    assert problems("dashboard:\n  port: 99999\n") == [
        "w.yaml:2:9: dashboard.port: Input should be less than or equal to 65535"
    ]


def test_every_problem_is_reported_not_only_the_first() -> None:
    found = problems("dashboard:\n  port: 0\n  refresh_interval_s: -1\n  colour: red\n")
    assert [line.split(": ")[0] for line in found] == ["w.yaml:2:9", "w.yaml:3:23", "w.yaml:4:3"]


def test_yaml_syntax_error_is_located() -> None:
    (line,) = problems("dashboard:\n  port: [1, 2\n")
    assert line.startswith("w.yaml:3:1: yaml: ")


def test_a_file_that_is_not_a_mapping() -> None:
    assert problems("- 1\n- 2\n") == ["w.yaml:1:1: file: the file must be a mapping of sections"]


def test_missing_required_key_points_at_its_mapping() -> None:
    (line,) = problems("periods:\n  - name: ward rounds\n    start: '08:00'\n")
    assert line == "w.yaml:2:5: periods.0.end: required key is missing"


def test_references_across_sections_are_checked() -> None:
    text = (
        "periods:\n"
        "  - {name: ward rounds, start: '08:00', end: '10:30', sites: [ward-9]}\n"
        "objectives:\n"
        "  - {name: fast opens, workflow: nope, threshold_s: 3, target: 0.9, periods: [clinics]}\n"
    )
    found = problems(text)
    assert "w.yaml:2:63: periods.0.sites.0: no site named 'ward-9' in sites" in found
    assert any(p.startswith("w.yaml:4:") and "objectives.0.workflow: no workflow named 'nope'" in p for p in found)
    assert any("objectives.0.periods.0: no period named 'clinics'" in p for p in found)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'missing.yaml'}:1:1: file: cannot read")


def test_collector_sections_are_located_through_the_auth_union() -> None:
    text = (
        "targets:\n"
        "  epr:\n"
        "    base_url: http://127.0.0.1:1/fhir\n"
        "    auth:\n"
        "      type: oauth2_client_credentials\n"
        "      token_url: http://127.0.0.1:1/token\n"
        "      client_idd: x\n"
    )
    found = problems(text)
    assert any(p.startswith("w.yaml:7:7: targets.epr.auth.client_idd: unknown key") for p in found), found
    assert any(p.startswith("w.yaml:5:7: targets.epr.auth.client_id: required key is missing") for p in found), found


def test_a_workflow_naming_a_missing_target_is_located() -> None:
    text = (
        "sites: [{name: ward-7, timezone: Europe/London}]\n"
        "workflows:\n"
        "  - name: open\n"
        "    target: epr\n"
        "    steps: [{name: meta, path: /metadata}]\n"
    )
    found = problems(text)
    assert any(p.startswith("w.yaml:4:13: workflows.0.target: ") for p in found), found
