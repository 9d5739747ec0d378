"""Percentiles: one definition, sample counts, order-statistic intervals, never averaged."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.percentiles import percentile, percentile_table, rank_interval


def _exact_ranks(n: int, q: Fraction, confidence: Fraction) -> tuple[int | None, int | None]:
    """The same definition, by brute force in exact arithmetic with math.comb."""
    tail = (1 - confidence) / 2
    pmf = [math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
    cdf = [sum(pmf[: k + 1]) for k in range(n + 1)]  # cdf[k] = P(X <= k)

    def below(rank: int) -> Fraction:  # P(X <= rank - 1)
        return Fraction(0) if rank <= 0 else cdf[rank - 1]

    lows = [r for r in range(1, n + 1) if below(r) <= tail]
    highs = [r for r in range(1, n + 1) if 1 - below(r) <= tail]
    return (max(lows) if lows else None, min(highs) if highs else None)


def test_the_classic_median_intervals() -> None:
    # Tables of distribution-free intervals for the median (e.g. Conover, Practical
    # Nonparametric Statistics): n=10 -> x(2)..x(9); n=100 -> x(40)..x(61).
    assert rank_interval(10, 0.5)[:2] == (2, 9)
    assert rank_interval(10, 0.5)[2] == pytest.approx(1 - 2 * 11 / 1024)
    assert rank_interval(100, 0.5)[:2] == (40, 61)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 15, 20, 37, 60])
@pytest.mark.parametrize("q", ["1/2", "9/10", "19/20", "99/100", "1/10", "3/4"])
def test_ranks_match_brute_force(n: int, q: str) -> None:
    low, high, _ = rank_interval(n, float(Fraction(q)))
    assert (low, high) == _exact_ranks(n, Fraction(q), Fraction(95, 100))


def test_large_samples_are_fast_and_centred() -> None:
    low, high, coverage = rank_interval(10_000_000, 0.99)
    assert low < 9_900_000 < high
    assert 0.95 <= coverage < 0.96


def test_value_is_numpy_linear_interpolation() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    p = percentile(values, 0.9)
    assert p.value == np.quantile(values, 0.9) == pytest.approx(6.5)
    assert p.samples == 6
    assert p.label == "p90"


def test_interval_bounds_are_order_statistics() -> None:
    values = np.arange(1.0, 101.0)  # x(k) = k
    p = percentile(values, 0.5)
    assert (p.ci_low, p.ci_high) == (40.0, 61.0)
    assert p.small_sample is False
    assert 0.95 <= p.coverage <= 0.97


def test_fifteen_samples_p99_is_flagged() -> None:
    values = np.linspace(1.0, 15.0, 15)
    p = percentile(values, 0.99)
    assert p.small_sample is True
    assert p.ci_high is None  # no rank holds the upper bound: the "p99" is about the maximum
    assert p.value == pytest.approx(14.86)
    assert percentile(np.arange(99.0), 0.99).small_sample is True
    assert "few samples" in str(p)


def test_no_samples() -> None:
    p = percentile([], 0.5)
    assert math.isnan(p.value) and p.samples == 0 and p.small_sample
    assert str(p) == "p50 n/a (n=0)"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        percentile([1.0], 95)
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, float("nan")], 0.5)


def test_pooled_percentile_differs_from_the_average_of_window_percentiles() -> None:
    # Two 15-minute windows: a quiet one and a ward-round one with a slow tail.
    quiet = [1.0] * 10
    busy = [1.0] * 5 + [8.0] * 5
    per_window = [percentile(w, 0.9).value for w in (quiet, busy)]
    assert per_window == [1.0, 8.0]
    averaged = sum(per_window) / 2  # 4.5: a number no run was measured at
    pooled = percentile(quiet + busy, 0.9).value
    assert pooled == pytest.approx(8.0)  # the pooled 20 samples: 5 of 20 runs took 8 s
    assert pooled != averaged


def test_percentile_table_groups_pooled_samples() -> None:
    frame = pd.DataFrame({
        "site": ["A"] * 4 + ["B"] * 2,
        "waiting_s": [1.0, 2.0, 3.0, 4.0, 10.0, None],
    })
    table = percentile_table(frame, "waiting_s", [0.5, 0.9], by=["site"])
    assert list(table.columns) == [
        "site", "q", "value", "samples", "ci_low", "ci_high", "small_sample"
    ]
    assert table[["site", "q", "value", "samples"]].to_dict("records") == [
        {"site": "A", "q": 0.5, "value": 2.5, "samples": 4},
        {"site": "A", "q": 0.9, "value": pytest.approx(3.7), "samples": 4},
        {"site": "B", "q": 0.5, "value": 10.0, "samples": 1},
        {"site": "B", "q": 0.9, "value": 10.0, "samples": 1},
    ]


samples = st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(values=samples, q1=st.floats(0, 1), q2=st.floats(0, 1))
def test_monotone_in_q_and_within_min_max(values, q1, q2) -> None:
    lo, hi = sorted((q1, q2))
    a, b = percentile(values, lo), percentile(values, hi)
    assert a.value <= b.value
    assert min(values) <= a.value <= max(values)
    assert min(values) <= b.value <= max(values)
    if b.ci_low is not None:
        assert min(values) <= b.ci_low <= max(values)
    if b.ci_low is not None and b.ci_high is not None:
        assert b.ci_low <= b.ci_high


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3000), q=st.floats(0.001, 0.999))
def test_interval_coverage_is_at_least_the_confidence(n, q) -> None:
    low, high, coverage = rank_interval(n, q)
    if low is not None and high is not None:
        assert 1 <= low < high <= n
        assert coverage >= 0.95 - 1e-9
