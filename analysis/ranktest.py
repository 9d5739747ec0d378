"""The Mann-Whitney U rank test and Cliff's delta, written out (no scipy).

For samples ``x`` (n1) and ``y`` (n2), ranked together with ties given their average rank:

- ``U1 = R1 - n1 (n1 + 1) / 2`` (R1 the rank sum of ``x``); ``U2 = n1 n2 - U1``. ``U1`` counts
  the pairs with x > y, ties counting one half.
- Normal approximation with tie correction: mean ``n1 n2 / 2``, variance
  ``n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1)))`` over the tie groups of size t.
- Two-sided p-value with continuity correction, as ``scipy.stats.mannwhitneyu(...,
  method="asymptotic")`` computes it: ``z = (max(U1, U2) - mean - 0.5) / sd``, ``p = 2 P(Z > z)``
  (capped at 1).
- Cliff's delta = ``(U1 - U2) / (n1 n2)`` = P(x > y) - P(x < y), in [-1, 1]: 0 means no shift;
  by convention |d| < 0.147 negligible, < 0.33 small, < 0.474 medium, else large (Romano et al.).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RankTest", "cliffs_delta_magnitude", "mann_whitney_u"]


@dataclass(frozen=True)
class RankTest:
    """A two-sided Mann-Whitney U test of ``x`` against ``y``.

    Attributes:
        u1: U of ``x`` (pairs with x > y, ties one half).
        u2: U of ``y``; ``u1 + u2 == n1 * n2``.
        n1: size of ``x``.
        n2: size of ``y``.
        z: the normal deviate, continuity-corrected (NaN when undefined).
        p_value: two-sided p-value by the normal approximation (NaN when a sample is empty or
            every value is tied).
        cliffs_delta: P(x > y) - P(x < y).
    """

    u1: float
    u2: float
    n1: int
    n2: int
    z: float
    p_value: float
    cliffs_delta: float


def _clean(values: Iterable[float] | np.ndarray | pd.Series) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64).ravel()
    return data[~np.isnan(data)]


def mann_whitney_u(
    x: Iterable[float] | np.ndarray | pd.Series, y: Iterable[float] | np.ndarray | pd.Series
) -> RankTest:
    """The Mann-Whitney U test (two-sided, normal approximation, tie and continuity corrected).

    Missing values (NaN) are dropped.

    Args:
        x: the first sample (e.g. waiting times after a change).
        y: the second sample (before it).
    """
    a, b = _clean(x), _clean(y)
    n1, n2 = int(a.size), int(b.size)
    if n1 == 0 or n2 == 0:
        return RankTest(math.nan, math.nan, n1, n2, math.nan, math.nan, math.nan)
    combined = np.concatenate([a, b])
    ranks = pd.Series(combined).rank(method="average").to_numpy()
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u2 = float(n1 * n2 - u1)
    n = n1 + n2
    _, counts = np.unique(combined, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    delta = (u1 - u2) / (n1 * n2)
    if variance <= 0:
        return RankTest(u1, u2, n1, n2, math.nan, math.nan, delta)
    z = (max(u1, u2) - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    p = min(1.0, math.erfc(z / math.sqrt(2)))  # 2 * P(Z > z)
    return RankTest(u1, u2, n1, n2, z, p, delta)


def cliffs_delta_magnitude(delta: float) -> str:
    """``negligible``, ``small``, ``medium`` or ``large`` (thresholds 0.147, 0.33, 0.474)."""
    d = abs(delta)
    if math.isnan(d):
        return "n/a"
    if d < 0.147:
        return "negligible"
    if d < 0.33:
        return "small"
    if d < 0.474:
        return "medium"
    return "large"
