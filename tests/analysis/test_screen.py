"""The lens "the API was fast, the screen was not": the figures of one run's page requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.screen import ScreenChange, ScreenTime, _run_figures

T0 = datetime(2026, 11, 18, 8, tzinfo=UTC)


def requests(*spans_ms: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame({"start": [T0 + timedelta(milliseconds=begin) for begin, _ in spans_ms],
                         "duration_s": [length / 1000 for _, length in spans_ms]})


def test_requests_together_count_once_in_the_path_and_fully_in_the_sum() -> None:
    # a banner, then five panels together (the widest lasting 200 ms)
    figures = _run_figures(requests((0, 100), (100, 150), (101, 120), (102, 180), (103, 90), (104, 200)))
    assert figures["path_s"] == pytest.approx(0.304)
    assert figures["sum_s"] == pytest.approx(0.840)
    assert (figures["requests"], figures["concurrency"]) == (6, 5)
    assert figures["batch_s"] == pytest.approx(0.204)


def test_requests_one_after_another_add_up_in_the_path() -> None:
    figures = _run_figures(requests((0, 100), (100, 150), (250, 120), (370, 180)))
    assert figures["path_s"] == pytest.approx(figures["sum_s"]) == pytest.approx(0.55)
    assert figures["concurrency"] == 1


def screen(concurrency: int, screen_s: float, path_s: float) -> ScreenTime:
    return ScreenTime("open-patient-record-in-browser", "open-record", 12, screen_s, path_s, 0.84, 6,
                      concurrency, 0.15, 0.2 if concurrency > 1 else 0.15)


def test_a_change_that_made_the_requests_sequential_says_so() -> None:
    change = ScreenChange(T0, before=screen(5, 0.7, 0.3), after=screen(1, 1.3, 0.84))
    assert change.sequential
    assert "the record page now fetches its five panels one after another: 5 x 150 ms instead of 200 ms" in change.text
    lens = change.as_lens()
    assert lens.name == "api_vs_screen" and lens.title == "The API was fast, the screen was not"
    assert lens.text.startswith("Until open record was visible took 1.30 s after the change")
    assert lens.figures["after_screen_s"] == 1.3 and lens.figures["before_concurrency"] == 5


def test_a_page_that_grew_by_itself_is_named() -> None:
    change = ScreenChange(T0, before=screen(5, 0.7, 0.3), after=screen(5, 1.5, 0.3))
    assert not change.sequential
    assert "the page itself grew from 0.40 s to 1.20 s" in change.text
