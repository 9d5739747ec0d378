"""Fault injection: which request gets which fault, decided by a seeded RNG.

The rules come from the scenario and can be replaced at run time (``/admin/faults``). The injector
belongs to one app; its RNG is seeded at creation, so a given sequence of requests meets the same
faults on every run.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.scenario import FaultRule

__all__ = ["FaultInjector"]


class FaultInjector:
    """Holds the active fault rules and draws which request is hit.

    Args:
        rules: the initial rules (usually ``scenario.faults``); plain mappings are validated.
        seed: seed of the RNG deciding rates strictly between 0 and 1.
    """

    def __init__(self, rules: Iterable[FaultRule | Mapping[str, Any]], seed: int) -> None:
        self._rules: tuple[FaultRule, ...] = _validated(rules)
        self._rng = random.Random(seed)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The active rules, in order."""
        return self._rules

    def replace(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace all rules at once (an atomic swap; safe from another thread).

        Raises:
            pydantic.ValidationError: a mapping is not a valid :class:`FaultRule`.
        """
        self._rules = _validated(rules)

    def clear(self) -> None:
        """Remove all rules."""
        self._rules = ()

    def pick(self, endpoint: str, site: str | None) -> FaultRule | None:
        """The first matching rule that fires for this request, or None.

        A rule with rate 1 always fires and rate 0 never does; other rates draw from the RNG.
        """
        for rule in self._rules:
            if not rule.matches(endpoint, site):
                continue
            if rule.rate >= 1.0:
                return rule
            if rule.rate > 0.0 and self._rng.random() < rule.rate:
                return rule
        return None


def _validated(rules: Iterable[FaultRule | Mapping[str, Any]]) -> tuple[FaultRule, ...]:
    return tuple(r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules)
