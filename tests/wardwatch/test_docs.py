"""Documentation tested like code: every configuration key and command is documented."""

from __future__ import annotations

from pathlib import Path

from wardwatch.cli import main
from wardwatch.docs import config_keys, config_reference

ROOT = Path(__file__).resolve().parents[2]


def test_every_configuration_key_has_a_description() -> None:
    undocumented = [key.path for key in config_keys() if not key.description.strip()]
    assert undocumented == []


def test_the_configuration_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == config_reference() + "\n", "regenerate: python -m wardwatch.docs > docs/configuration.md"


def test_the_reference_lists_keys_of_nested_and_union_models() -> None:
    paths = {key.path for key in config_keys()}
    assert {"store.path", "targets.<name>.auth.client_secret", "workflows[].steps[].path", "slas[].metric",
            "objectives[].threshold_s", "dashboard.port"} <= paths


def test_the_readme_shows_every_command_and_the_two_make_targets() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    missing = [name for name in main.commands if f"wardwatch {name}" not in readme]
    assert missing == []
