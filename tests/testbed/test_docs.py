"""The maintainers' README names every scenario key, fault kind and route the code has."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import testbed
from testbed import scenario as scenario_module
from testbed.data import RESOURCE_TYPES

README = (Path(testbed.__file__).parent / "README.md").read_text()
SCENARIO_KEYS = README.split("## Scenario keys", 1)[1].split("\n## ", 1)[0]
FAULTS = README.split("## Faults", 1)[1].split("\n## ", 1)[0]

MODELS: list[type[BaseModel]] = [
    scenario_module.Scenario, scenario_module.SiteModel, scenario_module.PeriodEffect,
    scenario_module.Stall, scenario_module.Change, scenario_module.Outage,
    scenario_module.FaultRule, scenario_module.AuthConfig, scenario_module.LoadCurve,
    scenario_module.Tail, scenario_module.FrontendModel, scenario_module.FrontendRelease,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_scenario_key_is_documented(model: type[BaseModel]) -> None:
    section = FAULTS if model is scenario_module.FaultRule else SCENARIO_KEYS
    missing = [name for name in model.model_fields if name not in section]
    assert missing == []


def test_every_fault_kind_is_documented() -> None:
    for kind in typing.get_args(scenario_module.FaultKind):
        assert f"`{kind}`" in FAULTS


def test_every_resource_type_and_header_is_documented() -> None:
    for rtype in RESOURCE_TYPES:
        assert rtype in README
    for header in (testbed.SITE_HEADER, testbed.DELAY_HEADER, testbed.FAULT_HEADER):
        assert header in README


def test_the_default_credentials_are_documented() -> None:
    assert testbed.DEFAULT_CLIENT_ID in README
    assert testbed.DEFAULT_CLIENT_SECRET in README
