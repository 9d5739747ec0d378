"""The testbed EPR: a small FHIR R4 server over synthetic patients, with a pure latency model.

It stands in for the EPR in the demo and is the ground truth in tests: the server really waits the
delay :func:`modelled_delay` gives, so a probe's measurements can be checked against the model.
Importing this package does no I/O; the data and the scenario are built by :func:`create_app`.
"""

from testbed.app import TestbedApp, TestbedState, create_app
from testbed.data import (
    DEFAULT_SEED,
    MRN_SYSTEM,
    RESOURCE_TYPES,
    WARDS,
    Dataset,
    generate_dataset,
    mrn_for,
)
from testbed.faults import FaultInjector
from testbed.latency import Contribution, Delay, is_outage, modelled_delay, outage_at
from testbed.middleware import DELAY_HEADER, FAULT_HEADER, SITE_HEADER, route_for
from testbed.scenario import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FaultRule,
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_for_tests,
)
from testbed.server import TestbedServer, TestbedServerError, serve

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_SEED",
    "DELAY_HEADER",
    "FAULT_HEADER",
    "MRN_SYSTEM",
    "RESOURCE_TYPES",
    "SITE_HEADER",
    "WARDS",
    "Contribution",
    "Dataset",
    "Delay",
    "FaultInjector",
    "FaultRule",
    "Scenario",
    "ScenarioError",
    "TestbedApp",
    "TestbedServer",
    "TestbedServerError",
    "TestbedState",
    "create_app",
    "generate_dataset",
    "is_outage",
    "load_scenario",
    "modelled_delay",
    "mrn_for",
    "outage_at",
    "route_for",
    "scenario_for_tests",
    "serve",
]
