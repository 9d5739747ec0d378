"""The rank test against known values, and change impact on a hand-made store."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from analysis import open_store
from analysis.changes import change_impact, load_changes_csv
from analysis.config import ChangeEventConfig
from analysis.ranktest import cliffs_delta_magnitude, mann_whitney_u

UTC = dt.UTC


def test_mann_whitney_matches_scipy_documentation() -> None:
    # scipy.stats.mannwhitneyu docs: males vs females, method="asymptotic":
    # statistic=17.0, pvalue=0.11134688653314041
    r = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert r.u1 == 17.0 and r.u2 == 3.0
    assert r.p_value == pytest.approx(0.11134688653314041, rel=1e-9)
    assert r.cliffs_delta == pytest.approx(0.7)


def test_mann_whitney_with_ties_by_hand() -> None:
    # ranks of 1,2,2,2,3: 1,3,3,3,5; R1 = 7, U1 = 1, U2 = 5; ties: one group of 3 (27 - 3 = 24)
    # variance = 6/12 * (6 - 24/20) = 2.4; z = (5 - 3 - 0.5) / sqrt(2.4)
    r = mann_whitney_u([1, 2, 2], [2, 3])
    assert (r.u1, r.u2) == (1.0, 5.0)
    z = 1.5 / math.sqrt(2.4)
    assert r.z == pytest.approx(z)
    assert r.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert r.cliffs_delta == pytest.approx(-4 / 6)


def test_mann_whitney_degenerate() -> None:
    assert math.isnan(mann_whitney_u([], [1, 2]).p_value)
    tied = mann_whitney_u([1, 1], [1, 1])
    assert math.isnan(tied.p_value) and tied.cliffs_delta == 0.0
    shifted = mann_whitney_u(range(100, 200), range(0, 100))
    assert shifted.cliffs_delta == 1.0 and shifted.p_value < 1e-30


def test_cliffs_delta_magnitude() -> None:
    assert [cliffs_delta_magnitude(d) for d in (0.1, -0.2, 0.4, 0.9)] == [
        "negligible", "small", "medium", "large"]


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """One run an hour for 4 days either side of 2026-10-14T07:00Z at two sites; after the
    change the meds step takes 0.6 s longer at both."""
    change = dt.datetime(2026, 10, 14, 7, tzinfo=UTC)
    rows = []
    for hour in range(-96, 96):
        start = change + dt.timedelta(hours=hour, minutes=5)
        jitter = (hour % 7) * 0.01
        meds = 0.2 + jitter + (0.6 if hour >= 0 else 0.0)
        for site in ("ward-7", "community"):
            rows += make_rows(start, "open", site, [("find", 0.1 + jitter), ("meds", meds)])
        rows += make_rows(start, "chart", "ward-7", [("post", 0.3 + jitter)])
    return rows_store(rows)


def test_change_impact_names_the_step(store_path: Path) -> None:
    change = ChangeEventConfig(at="2026-10-14T07:00:00Z", title="Release 24.3", workflows=["open"])
    with open_store(store_path) as store:
        impact = change_impact(store, change, window=dt.timedelta(days=4))
    assert list(impact["site"]) == ["community", "ward-7"]
    row = impact.set_index("site").loc["ward-7"]
    assert row["before_runs"] == 96 and row["after_runs"] == 96
    assert row["after_median_s"] - row["before_median_s"] == pytest.approx(0.6)
    assert row["cliffs_delta"] == 1.0 and row["magnitude"] == "large"
    assert row["significant"] and row["p_value"] < 1e-20
    assert row["dominant_step"] == "meds"
    assert row["dominant_step_delta_s"] == pytest.approx(0.6)
    assert row["dominant_step_share"] == pytest.approx(1.0)


def test_unaffected_workflow_shows_no_change(store_path: Path) -> None:
    change = ChangeEventConfig(at="2026-10-14T07:00:00Z", title="Release 24.3", workflows=["chart"])
    with open_store(store_path) as store:
        impact = change_impact(store, change, window=dt.timedelta(days=4))
    row = impact.iloc[0]
    assert row["median_ratio"] == pytest.approx(1.0)
    assert not row["significant"] and row["magnitude"] == "negligible"


def test_changes_csv(tmp_path: Path) -> None:
    path = tmp_path / "changes.csv"
    path.write_text("at,title,workflows\n2026-10-14T07:00:00Z,Release 24.3,open;chart\n")
    [change] = load_changes_csv(path)
    assert change.workflows == ["open", "chart"]
    assert change.at == dt.datetime(2026, 10, 14, 7, tzinfo=UTC)
    path.write_text("at,title\n2026-10-14T07:00:00,naive\n")
    with pytest.raises(ValueError, match="changes.csv:2"):
        load_changes_csv(path)


def _with_phases(rows: list, connect_s: float, ttfb_share: float = 1.0) -> list:
    """The rows, their steps timed as a probe times them: ``connect_s`` of connect, the rest
    time to first byte."""
    from store import schema

    for row in rows:
        attrs = row[schema.SPAN_ATTRIBUTES]
        if attrs.get(schema.ATTR_SPAN_TYPE) == schema.SPAN_TYPE_STEP:
            seconds = row[schema.DURATION] / 1e9
            attrs[schema.ATTR_CONNECT_S] = connect_s
            attrs[schema.ATTR_TTFB_S] = (seconds - connect_s) * ttfb_share
    return rows


def test_blame_what_changed_not_what_is_usually_slow(make_rows, rows_store) -> None:
    """The notes step is always the slowest (2 s); the change adds 0.3 s of connect time (a new
    proxy in front of the EPR) to the find step only: find is blamed, in the network layer."""
    change = dt.datetime(2026, 10, 14, 7, tzinfo=UTC)
    rows = []
    for hour in range(-48, 48):
        start = change + dt.timedelta(hours=hour, minutes=5)
        jitter = (hour % 5) * 0.01
        after = hour >= 0
        rows += _with_phases(make_rows(start, "open", "ward-7", [("find", 0.4 + jitter + 0.3 * after)]),
                             0.01 + 0.3 * after)
        rows += _with_phases(make_rows(start + dt.timedelta(seconds=1), "open", "ward-7",
                                       [("notes", 2.0 + jitter)]), 0.01)
    with open_store(rows_store(rows)) as store:
        [row] = change_impact(store, ChangeEventConfig(at=change, title="Proxy"),
                              window=dt.timedelta(days=2)).to_dict("records")
    assert row["dominant_step"] == "find" and row["dominant_step_share"] == pytest.approx(1.0)
    assert row["dominant_layer"] == "network"
    assert row["dominant_layer_delta_s"] == pytest.approx(0.3)
