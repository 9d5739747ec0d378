"""A replay's runs window answers each question it holds as the store does, and passes on the rest."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from alerting.replay import RunsWindow
from analysis.store import open_store

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def test_the_runs_window_answers_as_the_store(add_runs) -> None:
    data = add_runs([(T0 + i * 7 * MINUTE, w, s, "ok" if i % 3 else "failed", 1.0 + i)
                     for i in range(40) for w, s in (("open", "ward-7"), ("chart", "clinic"))])
    with open_store(data) as store:
        window = RunsWindow(store, T0 + 30 * MINUTE, T0 + 200 * MINUTE)
        questions = [
            (T0 + 45 * MINUTE, T0 + 120 * MINUTE, None, None),
            (T0 + 30 * MINUTE, T0 + 200 * MINUTE, "open", None),
            (T0 + 60 * MINUTE, T0 + 61 * MINUTE, None, ["clinic"]),
            (T0 + 50 * MINUTE, T0 + 150 * MINUTE, ["open", "chart"], "ward-7"),
            (T0, T0 + 300 * MINUTE, "chart", None),  # beyond the window: the store answers
        ]
        for start, end, workflow, site in questions:
            expected = store.runs(start, end, workflow=workflow, site=site)
            got = window.runs(start, end, workflow=workflow, site=site)
            assert len(expected) > 0 or start == T0 + 60 * MINUTE
            pd.testing.assert_frame_equal(got, expected)
        assert window.sql("SELECT count(*) AS n FROM runs").iloc[0]["n"] == 80
