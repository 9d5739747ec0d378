"""Percentiles by one definition, each with its sample count and a distribution-free interval.

The definition used everywhere in Wardwatch: linear interpolation between order statistics
(numpy's default ``method="linear"``, DuckDB's ``quantile_cont``, Hyndman & Fan type 7).

The confidence interval is the order-statistic interval: if X ~ Binomial(n, q) counts the samples
below the true q-quantile, then ``[x_(l), x_(u)]`` (1-based order statistics) covers it with
probability ``P(l <= X < u)``, whatever the distribution. ``l`` and ``u`` are chosen with at most
``(1 - confidence) / 2`` of probability in each tail; when no such rank exists (too few samples
for that quantile: with 15 samples a "p99" is the maximum) the bound is ``None`` and the figure is
flagged ``small_sample``.

Percentiles are never averaged: a percentile over a longer window or several sites is computed
from the pooled samples (:func:`percentile` of the concatenation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Percentile", "few_samples", "percentile", "percentile_table", "rank_interval"]

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Percentile:
    """A percentile with the facts needed to trust it.

    Attributes:
        value: the q-quantile by linear interpolation (NaN with no samples).
        q: the quantile, in [0, 1] (0.9 for p90).
        samples: how many values it was computed from.
        ci_low: lower bound of the distribution-free interval, ``None`` when none exists.
        ci_high: upper bound, ``None`` when none exists.
        confidence: the interval's nominal coverage (0.95).
        coverage: the interval's exact coverage, ``P(l <= X < u)`` (NaN without an interval).
        small_sample: too few samples for this quantile: an interval bound does not exist, or
            fewer than one sample is expected beyond the quantile (p99 from under 100 samples).
    """

    value: float
    q: float
    samples: int
    ci_low: float | None
    ci_high: float | None
    confidence: float
    coverage: float
    small_sample: bool

    @property
    def label(self) -> str:
        """``p90``, ``p99.9``: the quantile as a percentile name."""
        return f"p{self.q * 100:g}"

    def __str__(self) -> str:
        if self.samples == 0:
            return f"{self.label} n/a (n=0)"
        low = "-" if self.ci_low is None else f"{self.ci_low:.3g}"
        high = "-" if self.ci_high is None else f"{self.ci_high:.3g}"
        flag = ", few samples" if self.small_sample else ""
        return (
            f"{self.label} {self.value:.3g} (n={self.samples}, "
            f"{self.confidence:.0%} CI {low}..{high}{flag})"
        )


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0 or math.isnan(q):
        raise ValueError(f"q must be a quantile in [0, 1] (0.9 for p90), got {q!r}")
    return q


def _binomial_cdf_window(n: int, q: float) -> tuple[int, np.ndarray]:
    """``(k0, cdf)`` with ``cdf[i] = P(X <= k0 + i)`` for X ~ Binomial(n, q), 0 < q < 1.

    Only ranks within ~14 standard deviations of the mean are evaluated; the probability outside
    that window is below 1e-40, far under any tail we test against.
    """
    sd = math.sqrt(n * q * (1.0 - q))
    k0 = max(0, math.floor(n * q - 14.0 * sd - 10.0))
    k1 = min(n, math.ceil(n * q + 14.0 * sd + 10.0))
    ks = np.arange(k0, k1, dtype=np.float64)
    log_first = (
        math.lgamma(n + 1) - math.lgamma(k0 + 1) - math.lgamma(n - k0 + 1)
        + k0 * math.log(q) + (n - k0) * math.log1p(-q)
    )
    # log pmf(k + 1) - log pmf(k) = log(n - k) - log(k + 1) + log(q / (1 - q))
    steps = np.log(n - ks) - np.log(ks + 1.0) + (math.log(q) - math.log1p(-q))
    log_pmf = np.concatenate(([log_first], log_first + np.cumsum(steps)))
    return k0, np.cumsum(np.exp(log_pmf))


def rank_interval(
    n: int, q: float, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[int | None, int | None, float]:
    """1-based ranks ``(l, u)`` of the order-statistic interval for the q-quantile, and its coverage.

    ``l`` is the largest rank with ``P(X <= l - 1) <= alpha / 2`` and ``u`` the smallest with
    ``P(X >= u) <= alpha / 2``, X ~ Binomial(n, q), alpha = 1 - confidence. A rank that does not
    exist in 1..n is ``None``; the coverage ``P(l <= X < u)`` is then NaN.

    Raises:
        ValueError: ``n`` is negative, ``q`` outside [0, 1] or ``confidence`` outside (0, 1).
    """
    q = _check_q(q)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n == 0:
        return None, None, math.nan
    tail = (1.0 - confidence) / 2.0
    if q == 0.0 or q == 1.0:  # X is certain: no interval with both tails bounded
        return None, None, math.nan
    k0, cdf = _binomial_cdf_window(n, q)

    def cdf_at(k: int) -> float:  # P(X <= k)
        if k < k0:
            return 0.0
        i = k - k0
        return 1.0 if i >= len(cdf) else float(min(cdf[i], 1.0))

    # l: largest in 1..n with P(X <= l - 1) <= tail; the cdf is increasing, so search the window.
    index = int(np.searchsorted(cdf, tail, side="right"))  # first i with cdf[i] > tail
    low: int | None = k0 + index  # = (last k with cdf <= tail) + 1
    if low is not None and low < 1:
        low = None
    # u: smallest in 1..n with P(X >= u) = 1 - P(X <= u - 1) <= tail.
    index = int(np.searchsorted(cdf, 1.0 - tail, side="left"))  # first i with cdf[i] >= 1 - tail
    high: int | None = k0 + index + 1
    if high is not None and high > n:
        high = None
    if low is None or high is None:
        return low, high, math.nan
    return low, high, cdf_at(high - 1) - cdf_at(low - 1)


def percentile(
    values: Iterable[float] | np.ndarray | pd.Series,
    q: float,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Percentile:
    """The q-quantile of ``values`` by linear interpolation, with its distribution-free interval.

    Args:
        values: the samples (e.g. run waiting times in seconds); all of them, pooled.
        q: the quantile in [0, 1]: 0.9 for p90.
        confidence: nominal coverage of the interval.

    Raises:
        ValueError: ``q`` is outside [0, 1], or a value is NaN (drop missing values first).
    """
    q = _check_q(q)
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = int(data.size)
    if n and np.isnan(data[-1]):
        raise ValueError("values contain NaN: drop missing values before taking a percentile")
    if n == 0:
        return Percentile(math.nan, q, 0, None, None, confidence, math.nan, True)
    value = float(np.quantile(data, q))
    low, high, coverage = rank_interval(n, q, confidence)
    ci_low = None if low is None else float(data[low - 1])
    ci_high = None if high is None else float(data[high - 1])
    return Percentile(value, q, n, ci_low, ci_high, confidence, coverage, few_samples(n, q, confidence))


def few_samples(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> bool:
    """Too few samples for the q-quantile (:attr:`Percentile.small_sample`): an interval bound
    does not exist, or fewer than one sample is expected beyond the quantile."""
    low, high, _ = rank_interval(n, _check_q(q), confidence)
    return low is None or high is None or n * min(q, 1.0 - q) < 1.0


def percentile_table(
    frame: pd.DataFrame,
    column: str,
    qs: Sequence[float],
    by: Sequence[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Percentiles of ``frame[column]`` per group, from each group's pooled samples.

    Missing values are dropped first (and so not counted in ``samples``).

    Returns:
        One row per group and quantile: the ``by`` columns, then ``q, value, samples, ci_low,
        ci_high, small_sample``.
    """
    by = list(by)
    rows = []
    groups = frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]
    for key, group in groups:
        keys = key if isinstance(key, tuple) else (key,)
        samples = group[column].dropna().to_numpy(dtype=np.float64)
        for q in qs:
            p = percentile(samples, q, confidence)
            rows.append({
                **dict(zip(by, keys, strict=True)),
                "q": p.q, "value": p.value, "samples": p.samples, "ci_low": p.ci_low,
                "ci_high": p.ci_high, "small_sample": p.small_sample,
            })
    columns = [*by, "q", "value", "samples", "ci_low", "ci_high", "small_sample"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"ci_low": "float64", "ci_high": "float64", "samples": "int64"})
