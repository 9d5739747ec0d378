"""Apdex as the Apdex Technical Specification v1.1 computes, rates and displays it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis
from analysis.apdex import apdex, apdex_table, format_t, rating


def test_the_textbook_example() -> None:
    # 100 samples, T = 3 s: 60 satisfied, 30 tolerating (3 s < t <= 12 s), 10 frustrated.
    durations = [1.0] * 60 + [5.0] * 30 + [20.0] * 10
    a = apdex(durations, 3.0)
    assert (a.satisfied, a.tolerating, a.frustrated, a.samples) == (60, 30, 10, 100)
    assert a.score == 0.75
    assert str(a) == "0.75 [3.0]"
    assert a.rating == "Fair"
    assert a.small_group is False


def test_zone_edges_are_exactly_t_and_4t() -> None:
    a = apdex([0.5, np.nextafter(0.5, 1), 2.0, np.nextafter(2.0, 3)], 0.5)
    assert (a.satisfied, a.tolerating, a.frustrated) == (1, 2, 1)
    assert a.score == 0.5


def test_failed_samples_are_frustrated_whatever_their_duration() -> None:
    a = apdex([0.1, 0.1, float("nan"), 0.1], 0.5, failed=[False, True, True, False])
    assert (a.satisfied, a.tolerating, a.frustrated, a.failed) == (2, 0, 2, 2)
    assert a.score == 0.5


@pytest.mark.parametrize(
    ("durations", "t_s", "shown"),
    [
        ([0.1] * 90 + [9.0] * 10, 0.5, "0.90 [0.5]"),
        ([1.0] * 5, 4.0, "1.00 [4.0]*"),
        ([], 10.0, "NS [10]"),
        ([1.0] * 99, 1.0, "1.00 [1.0]*"),
        ([1.0] * 100, 12.0, "1.00 [12]"),
        ([1.0, 100.0, 100.0], 0.25, "0.17 [0.3]*"),
        ([1.0, 3.0], 9.5, "1.00 [9.5]*"),
        ([0.1, 0.2, 0.3], 10.4, "1.00 [10]*"),
    ],
)
def test_display_forms(durations, t_s, shown) -> None:
    assert str(apdex(durations, t_s)) == shown
    assert apdex(durations, t_s).display == shown


def test_no_samples() -> None:
    a = apdex([], 10)
    assert math.isnan(a.score) and a.samples == 0 and a.rating is None and a.small_group


@pytest.mark.parametrize(
    ("satisfied", "tolerating", "shown", "name"),
    [
        (200, 0, "1.00", "Excellent"),
        (188, 0, "0.94", "Excellent"),
        (187, 0, "0.94", "Excellent"),  # 0.935 is shown, and rated, as 0.94
        (186, 0, "0.93", "Good"),
        (170, 0, "0.85", "Good"),
        (168, 0, "0.84", "Fair"),
        (140, 0, "0.70", "Fair"),
        (138, 0, "0.69", "Poor"),
        (100, 0, "0.50", "Poor"),
        (98, 0, "0.49", "Unacceptable"),
        (0, 1, "0.00", "Unacceptable"),
        (0, 0, "0.00", "Unacceptable"),
    ],
)
def test_rating_bands(satisfied: int, tolerating: int, shown: str, name: str) -> None:
    durations = [0.1] * satisfied + [1.0] * tolerating + [10.0] * (200 - satisfied - tolerating)
    a = apdex(durations, 0.5)
    assert a.display == f"{shown} [0.5]"
    assert a.rating == name


def test_rating_of_a_float_score() -> None:
    assert rating(0.935) == "Excellent"
    assert rating(0.9349) == "Good"
    with pytest.raises(ValueError):
        rating(1.5)


def test_t_display() -> None:
    assert [format_t(t) for t in (0.5, 4, 0.25, 9.94, 10, 12.5, 30)] == [
        "0.5", "4.0", "0.3", "9.9", "10", "13", "30"
    ]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="T must be > 0"):
        apdex([1.0], 0)
    with pytest.raises(ValueError, match="failed has 1 values for 2"):
        apdex([1.0, 2.0], 1.0, failed=[True])
    with pytest.raises(ValueError, match="NaN"):
        apdex([float("nan")], 1.0)


def test_apdex_table_per_group() -> None:
    frame = pd.DataFrame({
        "site": ["A", "A", "B", "B"],
        "waiting_s": [0.2, 3.0, 0.1, float("nan")],
        "failed": [False, False, False, True],
    })
    table = apdex_table(frame, "waiting_s", 0.5, by=["site"], failed_column="failed")
    assert table[["site", "score", "samples", "display", "rating"]].to_dict("records") == [
        {"site": "A", "score": 0.5, "samples": 2, "display": "0.50 [0.5]*", "rating": "Poor"},
        {"site": "B", "score": 0.5, "samples": 2, "display": "0.50 [0.5]*", "rating": "Poor"},
    ]


def test_exported() -> None:
    assert analysis.apdex is apdex


@settings(max_examples=200, deadline=None)
@given(
    durations=st.lists(st.floats(0, 1e4), max_size=300),
    t_s=st.floats(1e-3, 100),
    data=st.data(),
)
def test_score_lies_in_0_1_and_counts_add_up(durations, t_s, data) -> None:
    failed = data.draw(st.lists(st.booleans(), min_size=len(durations), max_size=len(durations)))
    a = apdex(durations, t_s, failed)
    assert a.satisfied + a.tolerating + a.frustrated == a.samples == len(durations)
    if durations:
        assert 0.0 <= a.score <= 1.0
        assert a.rating in {"Excellent", "Good", "Fair", "Poor", "Unacceptable"}
