"""The observatory's and the probe's export sections: tokens only by reference, names that exist."""

from __future__ import annotations

import pytest

from wardwatch.config import ConfigError, parse_config

SITES = "sites: [{name: ward-7, timezone: Europe/London}]\n"


@pytest.mark.parametrize(("text", "problem"), [
    (SITES + "observatory:\n  tokens:\n    ward-7: hunter2\n",
     "f.yaml:4:13: observatory.tokens.ward-7: Value error, a token is a secret: write ${env:NAME} or ${file:PATH}"),
    ("observatory:\n  sources:\n    - {service_name: epr, token: hunter2}\n",
     "f.yaml:3:34: observatory.sources.0.token: Value error, a token is a secret"),
    ("export:\n  observatory: {endpoint: 'https://o.example', token: hunter2}\n",
     "f.yaml:2:55: export.observatory.token: Value error, a token is a secret"),
    (SITES + "observatory:\n  tokens:\n    ward-8: ${env:X}\n", "observatory.tokens.ward-8: no site named 'ward-8' in sites"),
    ("observatory:\n  sources:\n    - {service_name: epr, target: nope, token: '${env:X}'}\n",
     "observatory.sources.0.target: no target named 'nope' in targets"),
])
def test_problems_are_located(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_references_are_accepted() -> None:
    config = parse_config(SITES + "observatory:\n  tokens:\n    ward-7: ${file:/run/secrets/ward-7}\n"
                          "export:\n  observatory: {endpoint: 'http://127.0.0.1:4318'}\n", "f.yaml")
    assert config.observatory.tokens == {"ward-7": "${file:/run/secrets/ward-7}"}
    assert config.export.observatory.spool_max_bytes == 1024**3


def test_check_names_the_site_token_variable_the_environment_lacks(tmp_path) -> None:
    """`wardwatch check` resolves the observatory's tokens as the observatory will: a missing
    WARDWATCH_SITE_TOKEN_<SITE> is one line naming the variable at its key, exit 2."""
    from pathlib import Path

    from click.testing import CliRunner

    from wardwatch.cli import main

    example = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
    env = {"WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret", "WARDWATCH_SITE_TOKEN_WARD_7": None,
           "WARDWATCH_SITE_TOKEN_OUTPATIENT_CLINIC": "a", "WARDWATCH_SITE_TOKEN_COMMUNITY_HOSPITAL": "b",
           "WARDWATCH_EPR_TOKEN_TESTBED": "c"}
    result = CliRunner().invoke(main, ["check", "-c", str(example)], env=env)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.endswith(":13: observatory.tokens.ward-7: environment variable WARDWATCH_SITE_TOKEN_WARD_7 is not set")
    env["WARDWATCH_SITE_TOKEN_WARD_7"] = "w"
    result = CliRunner().invoke(main, ["check", "-c", str(example)], env={**env, "WARDWATCH_EPR_TOKEN_TESTBED": None})
    assert result.exit_code == 2 and "observatory.sources.0.token: environment variable WARDWATCH_EPR_TOKEN_TESTBED" in result.output
