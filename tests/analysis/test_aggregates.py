"""Aggregates computed in DuckDB agree with hand-computed values on a small store."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis
from analysis import RunFilter
from analysis import rollup_queries as rq
from analysis.config import PeriodConfig
from analysis.rollup import RELATIVE_ERROR, RollupCache, RollupConfig, bucket_of, build_rollup, histogram_quantiles
from store import compact, create_views, schema, write_spans
from analysis.aggregates import (
    phase_summary,
    site_summary,
    slowest_runs,
    step_summary,
    time_of_day,
    waiting_timeline,
    workflow_site_summary,
)
from analysis.waterfall import run_waterfall

NS = 1_000_000_000
# Monday 2 November 2026, 08:00 UTC = 08:00 GMT (Europe/London is on GMT in November).
MONDAY_8 = int(dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC).timestamp()) * NS


@pytest.fixture
def store(make_probe, tmp_path):
    ward = make_probe(site="ward-7")
    community = make_probe(site="community-hospital")
    # Ward 7 at 08:xx: notes slow (2 s) in two of four runs; at 14:xx all fast.
    for i, notes_s in enumerate([0.5, 2.0, 0.5, 2.0]):
        ward.run(MONDAY_8 + i * 60 * NS, steps=(("find", 0.2), ("notes", notes_s)))
    for i in range(3):
        ward.run(MONDAY_8 + 6 * 3600 * NS + i * 60 * NS, steps=(("find", 0.2), ("notes", 0.5)))
    community.run(MONDAY_8 + 120 * NS, steps=(("find", 1.0), ("notes", 0.5)))
    community.run(MONDAY_8 + 180 * NS, steps=(("find", 1.0), ("notes", 0.5)), failed_step="notes")
    with analysis.open_store(tmp_path / "data") as opened:
        yield opened


def test_time_of_day_counts_and_shares_per_local_hour(store) -> None:
    cells = time_of_day(store, RunFilter(sites=["ward-7"]), timezone="Europe/London", threshold_s=1.0)
    assert cells[["weekday", "hour", "samples"]].to_dict("records") == [
        {"weekday": 0, "hour": 8, "samples": 4},
        {"weekday": 0, "hour": 14, "samples": 3},
    ]
    assert cells["share_under"].tolist() == [0.5, 1.0]
    assert cells["p90_s"].iloc[0] == pytest.approx(np.percentile([0.7, 2.2, 0.7, 2.2], 90))


def test_time_of_day_follows_the_sites_time_zone(store) -> None:
    cells = time_of_day(store, RunFilter(sites=["ward-7"]), timezone="Asia/Kolkata", threshold_s=1.0)
    assert cells["hour"].tolist() == [13, 19]  # UTC+05:30: 08:00 -> 13:30


def test_failed_runs_are_never_under_the_threshold(store) -> None:
    sites = site_summary(store, RunFilter(), threshold_s=5.0).set_index("site")
    assert sites.loc["community-hospital", "samples"] == 2
    assert sites.loc["community-hospital", "not_ok"] == 1
    assert sites.loc["community-hospital", "share_under"] == 0.5
    assert sites.loc["ward-7", "share_under"] == 1.0


def test_step_summary_names_the_step_behind_the_excess(store) -> None:
    steps = step_summary(store, RunFilter(sites=["ward-7"]), threshold_s=1.0).set_index("step")
    assert steps.loc["notes", "samples"] == 7
    assert steps.loc["notes", "median_s"] == pytest.approx(0.5)
    assert steps.loc["notes", "excess_share"] == pytest.approx(1.0)
    assert steps.loc["find", "excess_share"] == pytest.approx(0.0)
    assert list(steps.index) == ["find", "notes"]


def test_step_summary_without_a_threshold_has_no_excess(store) -> None:
    steps = step_summary(store, RunFilter())
    assert steps["excess_share"].isna().all()


def test_timeline_buckets_ok_runs_by_hour(store) -> None:
    start = pd.Timestamp(MONDAY_8, unit="ns", tz="UTC")
    buckets = waiting_timeline(store, RunFilter(start=start.to_pydatetime()), bucket="1 hour")
    assert buckets["samples"].tolist() == [5, 3]  # the failed community run is left out
    assert buckets["bucket"].iloc[0] == start


def test_phases_per_site(store) -> None:
    phases = phase_summary(store, RunFilter()).set_index("site")
    # ward-7: 14 steps, the first of each run carries connect 0.002 s.
    assert phases.loc["ward-7", "samples"] == 14
    assert phases.loc["ward-7", "connect_s"] == pytest.approx(0.002 * 7 / 14)


def test_slowest_runs_first_and_a_runs_waterfall_in_tree_order(store) -> None:
    slowest = slowest_runs(store, RunFilter(), limit=3)
    assert slowest["waiting_s"].tolist() == pytest.approx([2.2, 2.2, 1.5])
    spans = run_waterfall(store, slowest["trace_id"].iloc[0]).spans
    assert spans["depth"].tolist() == [0, 1, 1]
    assert spans["name"].tolist()[1:] == ["find", "notes"]
    assert (spans["source"] == "probe").all()


def test_time_bounds_must_be_aware(store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        slowest_runs(store, RunFilter(start=dt.datetime(2026, 11, 2)))


def test_workflow_site_summary_judges_each_workflow_by_its_threshold(store) -> None:
    board = workflow_site_summary(
        store, RunFilter(), thresholds_s={"open_patient_record": 1.0}, default_threshold_s=3.0
    ).set_index("site")
    ward = board.loc["ward-7"]
    assert ward["samples"] == 7
    assert ward["share_under"] == pytest.approx(5 / 7)
    # Apdex [1.0]: 5 satisfied, 2 tolerating (2.2 s <= 4 s), 0 frustrated.
    assert str(ward["apdex"]) == f"{(5 + 2 / 2) / 7:.2f} [1.0]*"
    community = board.loc["community-hospital"]
    assert community["apdex"].failed == 1
    assert community["apdex"].frustrated == 1


# -- The dashboard's rollup: merged per segment, it answers as the aggregates do --------------------

_BOUND = RELATIVE_ERROR * (1 + 1e-9)
_T = {"open": 1.0, "chart": 2.0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=500.0), min_size=1, max_size=300),
       st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_histogram_percentile_is_within_its_bound_of_the_exact_one(values: list[float], q: float) -> None:
    buckets, counts = np.unique(bucket_of(np.array(values)), return_counts=True)
    estimate = histogram_quantiles(buckets, counts, [q])[0]
    exact = float(np.quantile(values, q))  # linear interpolation, as quantile_cont
    assert abs(estimate - exact) <= _BOUND * exact


def _month_rows(run_rows, seed: int = 7) -> list[list[dict]]:
    """Runs over three days in three batches (segments), two workflows, two sites, some failed."""
    rng = np.random.default_rng(seed)
    batches: list[list[dict]] = [[], [], []]
    base = dt.datetime(2026, 10, 24, 0, 0, tzinfo=dt.UTC)  # London leaves summer time on the 25th
    for i in range(240):
        start = base + dt.timedelta(minutes=int(i * 18 + rng.integers(0, 17)), seconds=int(rng.integers(0, 59)))
        workflow = ["open", "chart"][i % 2]
        site = ["ward-7", "clinic"][(i // 2) % 2]
        steps = [("find", float(rng.lognormal(-1, 0.5))), ("notes", float(rng.lognormal(0, 0.6)))]
        status = "failed" if i % 17 == 0 else "ok"
        batches[i % 3].extend(run_rows(start, workflow, site, steps, status=status))
    return batches


@pytest.fixture
def rolled(tmp_path, make_rows):
    path = tmp_path / "rolled"
    cache = RollupCache(path, RollupConfig.of(_T, 3.0))
    for batch in _month_rows(make_rows):
        write_spans(path, batch)
        cache.snapshot()  # each batch's segments rolled up on their own, then merged
    with analysis.open_store(path) as store:
        yield store, cache


_WINDOWS = [
    (dt.datetime(2026, 10, 24, tzinfo=dt.UTC), dt.datetime(2026, 10, 27, tzinfo=dt.UTC)),  # aligned: days
    (dt.datetime(2026, 10, 24, 5, 7, 31, tzinfo=dt.UTC), dt.datetime(2026, 10, 26, 13, 52, 2, tzinfo=dt.UTC)),
    (dt.datetime(2026, 10, 25, 10, 3, tzinfo=dt.UTC), dt.datetime(2026, 10, 25, 10, 11, tzinfo=dt.UTC)),  # inside one window
]


def test_the_merged_rollup_answers_as_the_aggregate_of_the_union(rolled) -> None:
    """Aligned and unaligned windows (edges read exactly), with and without filters."""
    store, cache = rolled
    for window in _WINDOWS:
        for workflows, sites in [(None, None), (["open"], None), (["chart"], ["clinic"])]:
            assert_rollup_agrees(store, cache, RunFilter(*window, workflows, sites))


def assert_rollup_agrees(store, cache, runs: RunFilter) -> None:
    """Every figure the pages read from the rollup equals (or, for percentiles, is within its
    bound of) the aggregate computed exactly over the store."""
    answer = rq.ask(cache.snapshot(), runs)
    exact = workflow_site_summary(store, runs, thresholds_s=_T, default_threshold_s=3.0)
    ours = rq.board(answer)
    assert ours[["workflow", "site", "samples", "not_ok"]].to_dict("records") == \
        exact[["workflow", "site", "samples", "not_ok"]].to_dict("records")
    assert ours["share_under"].tolist() == exact["share_under"].tolist()
    assert [a.score for a in ours["apdex"]] == pytest.approx([a.score for a in exact["apdex"]], abs=1e-12)
    for column in ("p50_s", "p90_s"):
        for a, b in zip(ours[column], exact[column], strict=True):
            assert (pd.isna(a) and pd.isna(b)) or abs(a - b) <= _BOUND * b
    sites_ours, sites_exact = rq.sites(answer, threshold_s=3.0), site_summary(store, runs, threshold_s=3.0)
    assert sites_ours[["site", "samples", "not_ok", "share_under"]].to_dict("records") == \
        sites_exact[["site", "samples", "not_ok", "share_under"]].to_dict("records")
    cells = rq.time_of_day(answer, timezone="Asia/Kolkata", threshold_s=1.0)
    cells_exact = time_of_day(store, runs, timezone="Asia/Kolkata", threshold_s=1.0)
    assert cells[["weekday", "hour", "samples", "share_under"]].to_dict("records") == \
        cells_exact[["weekday", "hour", "samples", "share_under"]].to_dict("records")
    line, line_exact = rq.timeline(answer, bucket_s=3600), waiting_timeline(store, runs, bucket="1 hour")
    assert line["samples"].tolist() == line_exact["samples"].tolist()
    assert np.all(np.abs(line["p90_s"] - line_exact["p90_s"]) <= _BOUND * line_exact["p90_s"])
    phases_ours, phases_exact = rq.phases(answer), phase_summary(store, runs)
    assert phases_ours["samples"].tolist() == phases_exact["samples"].tolist()
    assert np.allclose(phases_ours[["ttfb_s", "transfer_s"]], phases_exact[["ttfb_s", "transfer_s"]], rtol=1e-12)
    for newest in (False, True):
        assert rq.slowest(cache.snapshot(), runs, limit=20, newest_first=newest)["trace_id"].tolist() == \
            slowest_runs(store, runs, limit=20, newest_first=newest)["trace_id"].tolist()


def test_step_figures_merge_exactly_and_their_percentiles_within_the_bound(rolled) -> None:
    store, cache = rolled
    runs = RunFilter(*_WINDOWS[1], ["chart"])
    ours = rq.steps(rq.ask(cache.snapshot(), runs))
    exact = step_summary(store, runs, threshold_s=_T["chart"])
    assert ours[["step", "samples"]].to_dict("records") == exact[["step", "samples"]].to_dict("records")
    assert np.allclose(ours["mean_s"], exact["mean_s"], rtol=1e-12)
    assert np.all(np.abs(ours["median_s"] - exact["median_s"]) <= _BOUND * exact["median_s"])
    assert np.allclose(ours["excess_share"].astype(float), exact["excess_share"].astype(float), atol=0.02)


def test_rollups_of_two_segments_merged_equal_the_rollup_of_both(rolled) -> None:
    _, cache = rolled
    snapshot = cache.snapshot()
    assert len(snapshot.units) >= 6
    con = duckdb.connect()
    create_views(con, list(snapshot.segments))
    whole = build_rollup(con, cache.config)
    con.close()
    keys = ["window", "workflow", "site"]
    for level in (900, 86_400):
        merged = pd.concat([r.runs[level] for r in snapshot.rollups]).groupby(keys).sum(numeric_only=True)
        single = whole.runs[level].groupby(keys).sum(numeric_only=True)
        pd.testing.assert_frame_equal(merged.drop(columns="last_ok_ns").sort_index(),
                                      single.drop(columns="last_ok_ns").sort_index())
        hist = pd.concat([r.run_hist[level] for r in snapshot.rollups]).groupby([*keys, "bucket"])["count"].sum()
        pd.testing.assert_series_equal(hist.sort_index(),
                                       whole.run_hist[level].groupby([*keys, "bucket"])["count"].sum().sort_index())
    step_keys = ["window", "workflow", "site", "step", "bucket"]
    merged_steps = pd.concat([r.step_hist[3600] for r in snapshot.rollups]).groupby(step_keys)["count"].sum()
    pd.testing.assert_series_equal(merged_steps.sort_index(),
                                   whole.step_hist[3600].groupby(step_keys)["count"].sum().sort_index())


def test_compaction_replacing_segments_does_not_count_twice(rolled) -> None:
    store, cache = rolled
    runs = RunFilter(*_WINDOWS[0])
    before = rq.board(rq.ask(cache.snapshot(), runs))
    segments_before = cache.snapshot().segments
    report = compact(cache.path, small_bytes=10**9, min_segments=2, grace_s=3600)
    assert report.skipped is False
    after_snapshot = cache.snapshot()
    assert after_snapshot.segments != segments_before
    after = rq.board(rq.ask(after_snapshot, runs))
    assert after[["samples", "not_ok", "share_under"]].to_dict("records") == \
        before[["samples", "not_ok", "share_under"]].to_dict("records")
    assert int(after["samples"].sum()) == len(store.runs(*_WINDOWS[0]))


def test_steps_whose_run_is_in_another_segment_are_judged_by_that_run(tmp_path, make_rows) -> None:
    """Steps written before their run's root span (as a probe's batches may): the steps are loose in
    one rollup, their runs incomplete in the next, and the merge judges each step by its run."""
    path = tmp_path / "split"
    cache = RollupCache(path, RollupConfig.of({"open": 1.0}, 3.0))
    base = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
    rows = [make_rows(base + dt.timedelta(minutes=i), "open", "ward-7", [("find", 0.2), ("notes", notes_s)])
            for i, notes_s in enumerate([0.5, 2.0, 0.5, 2.0, 1.5])]
    kind = schema.ATTR_SPAN_TYPE
    steps = [row for run in rows for row in run if row[schema.SPAN_ATTRIBUTES][kind] == schema.SPAN_TYPE_STEP]
    for row in steps:  # the step spans carry no workflow: it comes from the run
        row[schema.SPAN_ATTRIBUTES].pop(schema.ATTR_WORKFLOW)
    roots = [row for run in rows for row in run if row[schema.SPAN_ATTRIBUTES][kind] == schema.SPAN_TYPE_RUN]
    write_spans(path, steps + roots[:2])
    cache.snapshot()
    write_spans(path, roots[2:])
    snapshot = cache.snapshot()
    assert len(snapshot.units) == 2
    assert len(snapshot.loose_steps) == 6 and snapshot.loose_steps["workflow"].eq("open").all()
    runs = RunFilter(base, base + dt.timedelta(hours=1), ["open"])
    with analysis.open_store(path) as store:
        exact = step_summary(store, runs, threshold_s=1.0)
        exact_phases = phase_summary(store, runs)
    ours = rq.steps(rq.ask(snapshot, runs))
    assert ours[["step", "samples"]].to_dict("records") == exact[["step", "samples"]].to_dict("records")
    assert np.allclose(ours["mean_s"], exact["mean_s"], rtol=1e-12)
    assert np.allclose(ours["excess_share"].astype(float), exact["excess_share"].astype(float), atol=0.02)
    assert rq.phases(rq.ask(snapshot, runs))["samples"].tolist() == exact_phases["samples"].tolist()


def test_a_period_is_judged_on_whole_windows_across_a_clock_change(rolled) -> None:
    store, cache = rolled
    rounds = PeriodConfig(name="rounds", weekdays=["sat", "sun", "mon"], start="01:30", end="10:45")
    calendar = analysis.ClinicalCalendar([rounds], {"ward-7": "Europe/London", "clinic": "Europe/London"})
    runs = RunFilter(*_WINDOWS[0])
    dist = rq.waiting_distribution(rq.ask(cache.snapshot(), runs), threshold_s=3.0, period="rounds",
                                   calendar=calendar)
    frame = store.runs(*_WINDOWS[0])
    inside = frame[calendar.mask(frame, "rounds")]
    assert 0 < dist.samples < len(frame)
    assert dist.samples == len(inside)
    assert dist.satisfied == int(((inside["status"] == "ok") & (inside["waiting_s"] <= 3.0)).sum())
    unaligned = PeriodConfig(name="odd", weekdays=["mon"], start="08:10", end="09:00")
    assert not rq.period_aligned(analysis.ClinicalCalendar([unaligned], {}, "Europe/London"), "odd")


def test_runs_listed_from_kept_lists_match_the_store_when_windows_cut_units(rolled) -> None:
    """With few runs kept per unit, a cut unit's kept runs serve only when provably complete."""
    store, big = rolled
    cache = RollupCache(big.path, RollupConfig.of(_T, 3.0, top_runs=4))
    snapshot = cache.snapshot()
    for window in _WINDOWS[:2]:
        for workflows, sites in [(None, None), (["chart"], ["clinic"])]:
            runs = RunFilter(*window, workflows, sites)
            for newest in (False, True):
                assert rq.slowest(snapshot, runs, limit=4, newest_first=newest)["trace_id"].tolist() == \
                    slowest_runs(store, runs, limit=4, newest_first=newest)["trace_id"].tolist()
