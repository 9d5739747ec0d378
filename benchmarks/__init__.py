"""Benchmarks of Wardwatch, measured side by side (``python -m benchmarks``, ``make bench``).

Not part of the test suite (a smoke test in ``tests/benchmarks`` runs each at a tiny size). The
machine they run on is shared and noisy: every comparison is measured in one run, interleaved,
and reported as medians and ratios of medians. See docs/benchmarks.md.
"""

from benchmarks.results import Figure, median, percentile, time_calls
from benchmarks.suite import BENCHMARKS, Settings, run_suite
from benchmarks.synth import GeneratedStore, generate_store

__all__ = [
    "BENCHMARKS",
    "Figure",
    "GeneratedStore",
    "Settings",
    "generate_store",
    "median",
    "percentile",
    "run_suite",
    "time_calls",
]
