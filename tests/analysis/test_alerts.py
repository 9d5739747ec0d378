"""Burn-rate alerts on experience objectives and SLAs, hand-computed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analysis import open_store
from analysis.alerts import objective_alerts, sla_alerts
from analysis.config import ObjectiveConfig, SLAConfig

UTC = dt.UTC
AT = dt.datetime(2026, 10, 1, 12, tzinfo=UTC)


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """60 one-step runs at 11:00:30Z + i minutes; every fifth (i = 0, 5, ...) waits 5 s and its
    request failed with a 503 (20% bad), the others 1 s."""
    rows = []
    for i in range(60):
        bad = i % 5 == 0
        rows += make_rows(dt.datetime(2026, 10, 1, 11, 0, 30, tzinfo=UTC) + dt.timedelta(minutes=i),
                          "open", "ward-7", [("read", 5.0 if bad else 1.0, 503 if bad else 200)],
                          status="failed" if bad else "ok")
    return rows_store(rows)


def test_objective_burns_on_both_windows(store_path: Path) -> None:
    objective = ObjectiveConfig(name="open", workflow="open", threshold_s=3, target=0.99)
    with open_store(store_path) as store:
        now = objective_alerts(store, objective, None, AT)
        later = objective_alerts(store, objective, None, AT + dt.timedelta(hours=1))
    # 20% bad against a 1% budget: burn rate 20 on every window that holds runs
    assert list(now["threshold"]) == pytest.approx([14.4, 6.0, 1.0])
    assert list(now["long_burn_rate"]) == pytest.approx([20.0, 20.0, 20.0])
    assert list(now["short_samples"]) == [5, 30, 60]
    assert list(now["firing"]) == [True, True, True]
    # an hour on, the 1 h and 30 min windows are empty: only the ticket (3 d and 6 h) still fires
    assert list(later["firing"]) == [False, False, True]


def test_sla_burns_on_requests(store_path: Path) -> None:
    availability = SLAConfig(name="up", metric="availability", target=0.999)
    with open_store(store_path) as store:
        alerts = sla_alerts(store, availability, AT)
        with pytest.raises(ValueError, match="no error budget"):
            sla_alerts(store, SLAConfig(name="m", metric="mean", target=1), AT)
    assert list(alerts["long_burn_rate"]) == pytest.approx([200.0, 200.0, 200.0])
    assert alerts["firing"].all()
