"""Every testbed fault x both connection modes gives the right error.type with no crash.

That matrix is tests/collector/test_testbed_faults.py::test_each_fault_kind_yields_its_error_type
(each fault on a step, fresh and reused connections, the next run ok once the fault clears). The
campaign does not repeat it; it checks that the matrix stays complete: every fault kind the testbed
can inject, in both connection modes the collector offers.
"""

from __future__ import annotations

import typing

from collector.config import WorkflowConfig
from testbed.scenario import FaultRule
from tests.collector import test_testbed_faults


def _parametrized(function: object, name: str) -> list[object]:
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] == name:
            return list(mark.args[1])
    raise AssertionError(f"{function} is not parametrized over {name}")


def test_the_fault_matrix_covers_every_fault_kind_in_both_connection_modes() -> None:
    matrix = test_testbed_faults.test_each_fault_kind_yields_its_error_type
    kinds = {rule["kind"] for rule, _, _ in _parametrized(matrix, ("rule", "error_type", "status"))}
    modes = set(_parametrized(matrix, "connection"))
    assert kinds == set(typing.get_args(FaultRule.model_fields["kind"].annotation))
    assert modes == set(typing.get_args(WorkflowConfig.model_fields["connection"].annotation))
