"""Fixtures of the fault campaign: a real testbed EPR on 127.0.0.1, stopped after the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import testbed


@pytest.fixture(scope="module")
def epr() -> Iterator[testbed.TestbedServer]:
    """The testbed with flat 2 ms service times and 10 ms more from the community hospital."""
    scenario = testbed.scenario_for_tests(2.0, network_ms={"community-hospital": 10.0})
    with testbed.TestbedServer(scenario, shutdown_timeout_s=1.0) as server:
        yield server

