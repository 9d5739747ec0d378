"""Figures a benchmark reports, and the statistics every benchmark uses.

A :class:`Figure` is one number with its unit, its sample count and, when the issue sets one, its
target. Benchmarks measure the things they compare side by side in one run (the machine is shared
and noisy), and report medians; ratios are taken between medians of the same run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Figure", "Progress", "median", "percentile", "time_calls"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    Attributes:
        benchmark: the benchmark's name (``accuracy``, ``ingest``, ...).
        name: what was measured, e.g. ``median overhead over curl @ 100 ms``.
        value: the figure, in ``unit``.
        unit: ``ms``, ``s``, ``spans/s``, ``B/span``, ``x`` (a ratio), ``MB`` ...
        samples: how many measurements the figure summarises.
        target: the issue's target in words (``<= 1 ms``), or ``""`` when there is none.
        met: whether the target is met (None without a target).
        note: anything a reader needs to interpret the figure.
    """

    benchmark: str
    name: str
    value: float
    unit: str
    samples: int
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The figure as plain JSON-ready values (NaN becomes None)."""
        out = asdict(self)
        if isinstance(self.value, float) and math.isnan(self.value):
            out["value"] = None
        return out


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between order statistics (numpy's default,
    the project's one definition); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_calls(functions: Sequence[Callable[[], Any]], repeats: int, *, warm_up: bool = True
               ) -> tuple[list[list[float]], list[Any]]:
    """Call each function ``repeats`` times, interleaved (f0, f1, ..., f0, f1, ...), so that
    what the machine does meanwhile falls on all of them alike.

    Args:
        functions: the contenders.
        repeats: timed calls of each.
        warm_up: call each once, untimed, first (imports, caches, first connections).

    Returns:
        Seconds per call, one list per function in the order given, and each function's last
        return value (to check that the contenders computed the same numbers).
    """
    times: list[list[float]] = [[] for _ in functions]
    results: list[Any] = [function() for function in functions] if warm_up else [None] * len(functions)
    for _ in range(repeats):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            results[i] = function()
            times[i].append(time.perf_counter() - start)
    return times, results
