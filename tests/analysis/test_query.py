"""The query layer's figures agree with hand-computed values on a small store, read exactly and
from the pre-aggregates; and the pre-aggregates are kept as data arrives, each span counted once."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import RunFilter
from analysis.waterfall import run_waterfall
from analysis.config import PeriodConfig
from analysis.query import figures as f
from analysis.query import preagg, rows
from analysis.query.sources import Definitions
from store import Maintenance, compact, schema, write_spans

NS = 1_000_000_000
# Monday 2 November 2026, 08:00 UTC = 08:00 GMT (Europe/London is on GMT in November).
MONDAY_8 = int(dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC).timestamp()) * NS
LATER = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)  # every bucket of the fixture closed
WINDOW = (dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
DEFS = Definitions.of({"open_patient_record": 1.0}, 3.0)


@pytest.fixture(params=["exact", "pre-aggregated"])
def asked(request, make_probe, tmp_path):
    """``asked(runs, thresholds)``: a question of the small store, exact or pre-aggregated."""
    ward = make_probe(site="ward-7")
    community = make_probe(site="community-hospital")
    # Ward 7 at 08:xx: notes slow (2 s) in two of four runs; at 14:xx all fast.
    for i, notes_s in enumerate([0.5, 2.0, 0.5, 2.0]):
        ward.run(MONDAY_8 + i * 60 * NS, steps=(("find", 0.2), ("notes", notes_s)))
    for i in range(3):
        ward.run(MONDAY_8 + 6 * 3600 * NS + i * 60 * NS, steps=(("find", 0.2), ("notes", 0.5)))
    community.run(MONDAY_8 + 120 * NS, steps=(("find", 1.0), ("notes", 0.5)))
    community.run(MONDAY_8 + 180 * NS, steps=(("find", 1.0), ("notes", 0.5)), failed_step="notes")
    exact = request.param == "exact"
    with analysis.open_store(tmp_path / "data") as opened:

        def ask(runs: RunFilter = RunFilter(*WINDOW), defs: Definitions = DEFS) -> f.Question:
            if not exact:
                preagg.refresh(tmp_path / "data", defs, now=LATER)
            q = f.ask(opened, runs, defs, exact=exact)
            assert q.relative_error == (0.0 if exact or runs.start is None else f.RELATIVE_ERROR)
            return q

        ask.store = opened  # type: ignore[attr-defined]
        yield ask


def _p(values, q):
    return pytest.approx(np.percentile(values, q), rel=f.RELATIVE_ERROR)


def test_time_of_day_counts_and_shares_per_local_hour(asked) -> None:
    cells = f.time_of_day(asked(RunFilter(*WINDOW, sites=["ward-7"])), timezone="Europe/London")
    assert cells[["weekday", "hour", "samples"]].to_dict("records") == [
        {"weekday": 0, "hour": 8, "samples": 4},
        {"weekday": 0, "hour": 14, "samples": 3},
    ]
    assert cells["share_under"].tolist() == [0.5, 1.0]
    assert cells["p90_s"].iloc[0] == _p([0.7, 2.2, 0.7, 2.2], 90)


def test_time_of_day_follows_the_sites_time_zone(asked) -> None:
    cells = f.time_of_day(asked(RunFilter(*WINDOW, sites=["ward-7"])), timezone="Asia/Kolkata")
    assert cells["hour"].tolist() == [13, 19]  # UTC+05:30: 08:00 -> 13:30


def test_failed_runs_are_never_within_t(asked) -> None:
    sites = f.sites(asked(defs=Definitions.of({}, 5.0))).set_index("site")
    assert sites.loc["community-hospital", "samples"] == 2
    assert sites.loc["community-hospital", "not_ok"] == 1
    assert sites.loc["community-hospital", "share_under"] == 0.5
    assert sites.loc["ward-7", "share_under"] == 1.0


def test_steps_name_the_step_behind_the_excess(asked) -> None:
    steps = f.steps(asked(RunFilter(*WINDOW, sites=["ward-7"]))).set_index("step")
    assert steps.loc["notes", "samples"] == 7
    assert steps.loc["notes", "median_s"] == pytest.approx(0.5, rel=f.RELATIVE_ERROR)
    assert steps.loc["notes", "excess_share"] == pytest.approx(1.0)
    assert steps.loc["find", "excess_share"] == pytest.approx(0.0)
    assert list(steps.index) == ["find", "notes"]


def test_steps_without_a_slow_run_have_no_excess(asked) -> None:
    steps = f.steps(asked(defs=Definitions.of({}, 100.0)))
    assert steps["excess_share"].isna().all()


def test_timeline_buckets_ok_runs_by_hour(asked) -> None:
    start = pd.Timestamp(MONDAY_8, unit="ns", tz="UTC")
    buckets = f.timeline(asked(), bucket_s=3600)
    assert buckets["samples"].tolist() == [5, 3]  # the failed community run is left out
    assert buckets["bucket"].iloc[0] == start


def test_phases_per_site(asked) -> None:
    phases = f.phases(asked()).set_index("site")
    # ward-7: 14 steps, the first of each run carries connect 0.002 s.
    assert phases.loc["ward-7", "samples"] == 14
    assert phases.loc["ward-7", "connect_s"] == pytest.approx(0.002 * 7 / 14)


def test_slowest_runs_first_and_a_runs_waterfall_in_tree_order(asked) -> None:
    store = asked.store
    slowest = rows.slowest(store, RunFilter(), limit=3)
    assert slowest["waiting_s"].tolist() == pytest.approx([2.2, 2.2, 1.5])
    spans = run_waterfall(store, slowest["trace_id"].iloc[0]).spans
    assert spans["depth"].tolist() == [0, 1, 1]
    assert spans["name"].tolist()[1:] == ["find", "notes"]
    assert (spans["source"] == "probe").all()
    charted = rows.chart_steps(store, slowest)
    assert len(charted) == 6 and set(charted["trace_id"]) == set(slowest["trace_id"])
    # each step carries its run's workflow, so a chart of several workflows can name them
    assert dict(zip(charted["trace_id"], charted["workflow"], strict=True)) == dict(
        zip(slowest["trace_id"], slowest["workflow"], strict=True))


def test_time_bounds_must_be_aware(asked) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rows.slowest(asked.store, RunFilter(start=dt.datetime(2026, 11, 2)))


def test_the_board_judges_each_workflow_by_its_threshold(asked) -> None:
    board = f.board(asked()).set_index("site")
    ward = board.loc["ward-7"]
    assert ward["samples"] == 7
    assert ward["share_under"] == pytest.approx(5 / 7)
    # Apdex [1.0]: 5 satisfied, 2 tolerating (2.2 s <= 4 s), 0 frustrated.
    assert str(ward["apdex"]) == f"{(5 + 2 / 2) / 7:.2f} [1.0]*"
    community = board.loc["community-hospital"]
    assert community["apdex"].failed == 1
    assert community["apdex"].frustrated == 1


def test_a_window_off_the_grid_reads_its_edges_exactly(asked) -> None:
    """08:01:30 to 14:01:30: the first run (08:00) and the 14:01 and 14:02 runs are outside."""
    edge = pd.Timestamp(MONDAY_8, unit="ns", tz="UTC").to_pydatetime() + dt.timedelta(seconds=90)
    board = f.board(asked(RunFilter(edge, edge + dt.timedelta(hours=6)))).set_index("site")
    assert board.loc["ward-7", "samples"] == 3 + 1
    assert board.loc["community-hospital", "samples"] == 2


# -- Percentiles: quantile_cont's definition over weighted values --------------------------------------

def test_weighted_quantiles_are_quantile_cont_on_exact_rows() -> None:
    rng = np.random.default_rng(7)
    values = np.round(rng.lognormal(0, 1, 500), 3)  # ties included
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"value_s": values, "n": 1, "g": rng.integers(0, 4, 500)}))
    qs = {"a": 0.0, "b": 0.5, "c": 0.9, "d": 0.99, "e": 1.0}
    cont = np.array(con.execute("SELECT g, " + ", ".join(f"quantile_cont(value_s, {q})" for q in qs.values())
                                + " FROM v GROUP BY g ORDER BY g").fetchall())
    weighted = np.array(con.execute(f._quantiles("v", ["g"], qs) + " ORDER BY g").fetchall())
    assert np.allclose(weighted, cont, rtol=1e-14, atol=0)  # the same definition (to the last place or so)
    exact = np.array(con.execute(f._quantiles("v", ["g"], qs, weighted=False) + " ORDER BY g").fetchall())
    assert (exact == cont).all()  # an exact question: quantile_cont itself
    # Each value twice with weight 1 is each value once with weight 2.
    con.register("w", pd.DataFrame({"value_s": values, "n": 2, "g": 0}))
    con.register("w2", pd.DataFrame({"value_s": np.concatenate([values, values]), "n": 1, "g": 0}))
    assert np.allclose(con.execute(f._quantiles("w", ["g"], qs)).fetchall(),
                       con.execute(f._quantiles("w2", ["g"], qs)).fetchall(), rtol=1e-14)


# -- The pre-aggregates kept as data arrives ---------------------------------------------------------

def _runs(make_rows, start: dt.datetime, count: int, site: str = "ward-7", minutes: int = 5) -> list[dict]:
    out = []
    for i in range(count):
        out += make_rows(start + dt.timedelta(minutes=minutes * i), "open", site,
                         [("find", 0.2 + i % 7 * 0.1), ("notes", 0.5 + i % 5)])
    return out


def _same_counts(path, defs: Definitions, window: tuple[dt.datetime, dt.datetime]) -> pd.DataFrame:
    with analysis.open_store(path) as store:
        exact = f.board(f.ask(store, RunFilter(*window), defs, exact=True))
        ours = f.board(f.ask(store, RunFilter(*window), defs))
        steps_exact = f.steps(f.ask(store, RunFilter(*window), defs, exact=True))
        steps_ours = f.steps(f.ask(store, RunFilter(*window), defs))
    counts = ["workflow", "site", "samples", "not_ok", "share_under"]
    assert ours[counts].to_dict("records") == exact[counts].to_dict("records")
    assert steps_ours[["step", "samples"]].to_dict("records") == steps_exact[["step", "samples"]].to_dict("records")
    return ours


def test_only_closed_buckets_are_built_and_each_pass_adds_the_new_ones(tmp_path, make_rows) -> None:
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 24))  # 08:00-09:55
    assert preagg.refresh(path, defs, now=day + dt.timedelta(hours=9)) == 1
    state = preagg._load_state(preagg.directory(path, defs))
    assert [(r["lo"], r["hi"]) for r in state["ranges"]] == [
        (int(day.timestamp()), int((day + dt.timedelta(hours=8, minutes=45)).timestamp()))]  # 08:45 + 5 min
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=10), 12))
    assert preagg.refresh(path, defs, now=day + dt.timedelta(hours=12)) == 1
    state = preagg._load_state(preagg.directory(path, defs))
    assert [r["lo"] for r in state["ranges"]][1] == int((day + dt.timedelta(hours=8, minutes=45)).timestamp())
    assert preagg.refresh(path, defs, now=day + dt.timedelta(hours=12)) == 0  # nothing new: nothing built
    ours = _same_counts(path, defs, (day, day + dt.timedelta(hours=11)))
    assert int(ours["samples"].sum()) == 36
    # Once the day closes, its ranges are one file of each kind.
    preagg.refresh(path, defs, now=day + dt.timedelta(days=2))
    state = preagg._load_state(preagg.directory(path, defs))
    assert len(state["ranges"]) == 1 and state["ranges"][0]["hi"] - state["ranges"][0]["lo"] == 86_400
    _same_counts(path, defs, (day, day + dt.timedelta(days=1)))


def test_late_spans_make_the_buckets_they_touch_stale_until_built_again(tmp_path, make_rows) -> None:
    """A spool sent hours later lands in buckets already built: readers read them exactly at once,
    and the next pass builds them again; nothing is counted twice or missed."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    window = (day, day + dt.timedelta(days=1))
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 24))
    preagg.refresh(path, defs, now=day + dt.timedelta(hours=13))
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8, minutes=2), 6, site="clinic"))  # late
    before = preagg.coverage(path, defs)
    assert all(not (lo < (day + dt.timedelta(hours=8, minutes=30)).timestamp() and hi > (day + dt.timedelta(hours=8)).timestamp())
               for lo, hi in before.ranges)  # the late segment's buckets are not trusted
    ours = _same_counts(path, defs, window)
    assert int(ours["samples"].sum()) == 30
    preagg.refresh(path, defs, now=day + dt.timedelta(hours=13))
    assert len(preagg.coverage(path, defs).ranges) >= 1
    ours = _same_counts(path, defs, window)
    assert int(ours["samples"].sum()) == 30


def test_compaction_and_retention_keep_each_span_counted_once(tmp_path, make_rows) -> None:
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    for hour in (8, 9, 10):
        write_spans(path, _runs(make_rows, day + dt.timedelta(hours=hour), 6))
    preagg.refresh(path, defs, now=day + dt.timedelta(days=1))
    built = preagg.coverage(path, defs).ranges
    compact(path, grace_s=0)
    assert preagg.coverage(path, defs).ranges == built  # a merged segment of seen ones brings nothing new
    assert int(_same_counts(path, defs, (day, day + dt.timedelta(days=1)))["samples"].sum()) == 18
    analysis_day = day + dt.timedelta(days=400)
    write_spans(path, _runs(make_rows, analysis_day, 2))
    from store import apply_retention

    apply_retention(path, 30, today=analysis_day.date())
    assert preagg.coverage(path, defs).ranges == ()  # the dropped day's buckets are not read
    preagg.refresh(path, defs, now=analysis_day + dt.timedelta(days=1))
    assert not any(p.name.startswith("runs-" + str(int(day.timestamp())))
                   for p in preagg.directory(path, defs).iterdir())


def test_steps_whose_run_is_in_another_segment_are_judged_by_that_run(tmp_path, make_rows) -> None:
    """Steps written before their run's root span (as a probe's batches may), some in a bucket
    built before the run span arrived: each step counted once, judged by its run."""
    path = tmp_path / "split"
    defs = Definitions.of({"open": 1.0})
    base = dt.datetime(2026, 11, 2, 8, 14, tzinfo=dt.UTC)
    runs_ = [make_rows(base + dt.timedelta(seconds=20 * i), "open", "ward-7", [("find", 0.2), ("notes", n)], think_s=30)
             for i, n in enumerate([0.5, 2.0, 0.5, 2.0, 1.5])]
    kind = schema.ATTR_SPAN_TYPE
    steps = [r for run in runs_ for r in run if r[schema.SPAN_ATTRIBUTES][kind] == schema.SPAN_TYPE_STEP]
    for row in steps:  # the step spans carry no workflow: it comes from the run
        row[schema.SPAN_ATTRIBUTES].pop(schema.ATTR_WORKFLOW)
    roots = [r for run in runs_ for r in run if r[schema.SPAN_ATTRIBUTES][kind] == schema.SPAN_TYPE_RUN]
    write_spans(path, steps + roots[:2])
    preagg.refresh(path, defs, now=base + dt.timedelta(hours=1))
    write_spans(path, roots[2:])
    window = (base.replace(minute=0), base.replace(minute=0) + dt.timedelta(hours=1))
    _same_counts(path, defs, window)
    preagg.refresh(path, defs, now=base + dt.timedelta(hours=2))
    with analysis.open_store(path) as store:
        exact = f.steps(f.ask(store, RunFilter(*window), defs, exact=True))
        ours = f.steps(f.ask(store, RunFilter(*window), defs))
    assert ours["samples"].tolist() == exact["samples"].tolist() == [5, 5]
    assert np.allclose(ours["mean_s"], exact["mean_s"], rtol=1e-12)
    assert np.allclose(ours["excess_share"].astype(float), exact["excess_share"].astype(float), atol=0.02)


def test_the_maintenance_builds_them_as_the_composition_root_registers(tmp_path, make_rows) -> None:
    path = tmp_path / "store"
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    defs = Definitions.of({"open": 1.0})
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 6))
    maintenance = Maintenance(path, interval_s=3600, after_pass=[lambda p: preagg.refresh(p, defs)])
    maintenance.run_once()
    assert preagg.coverage(path, defs).ranges[0][0] == int(day.timestamp())


def test_a_period_is_judged_on_whole_buckets_across_a_clock_change(tmp_path, make_rows) -> None:
    path = tmp_path / "store"
    start = dt.datetime(2026, 10, 24, tzinfo=dt.UTC)  # Saturday; British Summer Time ends on the 25th
    write_spans(path, _runs(make_rows, start, 3 * 24 * 4, minutes=15))
    defs = Definitions.of({"open": 1.0})
    preagg.refresh(path, defs, now=start + dt.timedelta(days=4))
    rounds = PeriodConfig(name="rounds", weekdays=["sat", "sun", "mon"], start="01:30", end="10:45")
    calendar = analysis.ClinicalCalendar([rounds], {"ward-7": "Europe/London"})
    window = RunFilter(start, start + dt.timedelta(days=3))
    with analysis.open_store(path) as store:
        dist = f.waiting_distribution(f.ask(store, window, defs), period="rounds", calendar=calendar)
        frame = store.runs(start, start + dt.timedelta(days=3))
    inside = frame[calendar.mask(frame, "rounds")]
    assert 0 < dist.samples < len(frame)
    assert dist.samples == len(inside)
    assert dist.satisfied == int(((inside["status"] == "ok") & (inside["waiting_s"] <= 1.0)).sum())
    unaligned = PeriodConfig(name="odd", weekdays=["mon"], start="08:10", end="09:00")
    assert not f.period_aligned(analysis.ClinicalCalendar([unaligned], {}, "Europe/London"), "odd")


def test_pre_aggregates_are_never_written_outside_the_data_directory(tmp_path, make_rows) -> None:
    path, outside = tmp_path / "store", tmp_path / "elsewhere"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 6))
    outside.mkdir()
    (path / preagg.DIRECTORY).symlink_to(outside, target_is_directory=True)
    defs = Definitions.of({"open": 1.0})
    assert preagg.refresh(path, defs, now=day + dt.timedelta(days=1)) == 0
    assert list(outside.iterdir()) == []
    assert preagg.coverage(path, defs).ranges == ()
    assert int(_same_counts(path, defs, (day, day + dt.timedelta(days=1)))["samples"].sum()) == 6  # read exactly


def test_the_store_connection_avoids_duckdbs_common_subplan_wrong_answers(asked) -> None:
    """duckdb issue 25819 (1.5.1-1.5.6): the figures reuse their source in one query."""
    setting = asked.store.sql("SELECT current_setting('disabled_optimizers') AS s")["s"].iloc[0]
    assert "common_subplan" in setting


def test_a_closed_day_is_kept_as_hour_and_day_rows_summed_from_its_buckets(tmp_path, make_rows) -> None:
    """Hour and day rows are the day's 15-minute rows grouped again (counts and sums equal, fewer
    rows); a late segment makes the day stale with its levels, and the next pass builds them again."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 48))  # 08:00-11:55, every 5 minutes
    preagg.refresh(path, defs, now=day + dt.timedelta(hours=20))
    assert all(len(b.files) == 2 for b in preagg.coverage(path, defs).built)  # an open day: 15-minute rows only
    preagg.refresh(path, defs, now=day + dt.timedelta(days=1, minutes=10))
    (built,) = preagg.coverage(path, defs).built
    assert set(built.files) == {(k, lv) for k in ("runs", "steps") for lv in (900, 3600, 86_400)} | {
        ("top", 86_400), ("topsteps", 86_400), ("tophours", 86_400), ("missed", 86_400)}
    assert built.files[("missed", 86_400)] == ""  # no missed slot that day
    con = duckdb.connect()
    for kind in ("runs", "steps"):
        rows_, n, total = zip(*(con.execute(f"SELECT count(*), sum(n), sum(sum_s) FROM '{built.files[(kind, lv)]}'")
                                 .fetchone() for lv in (900, 3600, 86_400)))
        assert n[0] == n[1] == n[2] == (48 if kind == "runs" else 96)
        assert total == pytest.approx((total[0],) * 3, rel=1e-12)
        assert rows_[0] >= rows_[1] > rows_[2]
    days = con.execute(f"SELECT DISTINCT moment FROM '{built.files[('runs', 86_400)]}'").fetchall()
    assert [m for (m,) in days] == [day]
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=9, minutes=1), 2, site="clinic"))  # late
    assert preagg.coverage(path, defs).built == ()
    assert int(_same_counts(path, defs, (day, day + dt.timedelta(days=1)))["samples"].sum()) == 50
    preagg.refresh(path, defs, now=day + dt.timedelta(days=1, minutes=10))
    (built,) = preagg.coverage(path, defs).built
    assert ("runs", 86_400) in built.files
    assert int(_same_counts(path, defs, (day, day + dt.timedelta(days=1)))["samples"].sum()) == 50
    assert not [p for p in preagg.directory(path, defs).iterdir()
                if p.suffix == ".parquet" and str(p) not in built.files.values()]


def test_a_figure_reads_the_coarsest_level_that_its_use_of_time_allows() -> None:
    """The one rule (``figures.level_for``): day rows for figures that use no time, the level
    that divides a timeline's buckets, hour rows for local hours and periods on the hour in
    zones on the hour (across a clock change), 15-minute rows otherwise."""
    def q(start: dt.datetime, days: int = 31) -> f.Question:
        return f.ask(None, RunFilter(start, start + dt.timedelta(days=days)), DEFS)  # type: ignore[arg-type]

    october = q(dt.datetime(2026, 10, 1, tzinfo=dt.UTC))  # British Summer Time ends on the 25th
    assert f.level_for(october) == 86_400
    assert [f.level_for(october, bucket_s=b) for b in (900, 1800, 3600, 6 * 3600, 86_400, 7 * 86_400)] == \
        [900, 900, 3600, 3600, 86_400, 86_400]
    assert f.level_for(october, zones=["Europe/London", "America/New_York"]) == 3600
    assert f.level_for(october, zones=["Europe/London", "Asia/Kolkata"]) == 900  # +05:30
    assert f.level_for(q(dt.datetime(2026, 4, 1, tzinfo=dt.UTC)), zones=["Australia/Lord_Howe"]) == 900  # 30-min DST
    assert f.level_for(q(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), zones=["Australia/Lord_Howe"]) == 3600  # +11:00
    assert f.level_for(october, zones=["Europe/London"], periods=[(dt.time(8), dt.time(17))]) == 3600
    assert f.level_for(october, zones=["Europe/London"], periods=[(dt.time(8), dt.time(10, 30))]) == 900
    assert f.level_for(october, bucket_s=86_400, zones=["Europe/London"]) == 3600
    assert f.level_for(f.ask(None, RunFilter(None, None), DEFS), zones=["UTC"]) == 900  # type: ignore[arg-type]


def test_the_slowest_runs_of_whole_days_come_from_their_kept_lists_and_equal_a_scan(tmp_path, make_rows,
                                                                                    monkeypatch) -> None:
    """Each closed day keeps its slowest runs overall, per workflow, per site and per pair, in the
    whole day and in each of its hours: the slowest N of a window (any workflows and sites) are the
    same runs, in the same order, as a scan of every run finds, with days kept, days stale, days
    held in part (their whole hours from the hours' lists) and edges read from the runs."""
    from analysis.query import sources

    monkeypatch.setattr(sources, "TOP_RUNS", 3)  # few kept, so that the ranks decide
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    rows_ = []
    for i in range(3 * 24):  # three days, a run an hour per workflow and site, waits all different
        for j, (workflow, site) in enumerate([("open", "ward-7"), ("open", "clinic"), ("chart", "ward-7")]):
            wait = (1.0, 0.1, 2.0)[j] * (1 + i * 7 % 41 / 100)  # open at the clinic never in a day's top 3
            rows_ += make_rows(day + dt.timedelta(hours=i, minutes=10 * j), workflow, site, [("find", wait)])
    write_spans(path, rows_)
    preagg.refresh(path, defs, now=day + dt.timedelta(days=3, hours=1))
    assert sum((preagg.TOP, 86_400) in b.files for b in preagg.coverage(path, defs).built) == 3
    with analysis.open_store(path) as store:  # a window of whole hours, two days of it in part: no run read
        read: list[str] = []
        real = store.sql
        store.sql = lambda q, p=None, t=None: read.append(q) or real(q, p, t)  # type: ignore[method-assign]
        window = RunFilter(day + dt.timedelta(hours=7), day + dt.timedelta(hours=60))
        assert rows.slowest(store, window, limit=3, defs=defs).equals(rows.slowest(store, window, limit=3))
        assert "tophours" in read[0] and "FROM runs" not in read[0], read[0]
    write_spans(path, make_rows(day + dt.timedelta(days=1, hours=5), "open", "clinic", [("find", 0.15)]))  # late
    with analysis.open_store(path) as store:
        for lo_h, hi_h in ((0, 72), (-5, 80), (7, 60), (24, 48), (7.25, 60.5), (30, 40), (25.5, 25.75)):
            for workflows, sites in ((None, None), (["open"], None), (None, ["ward-7"]), (["open"], ["clinic"])):
                window = RunFilter(day + dt.timedelta(hours=lo_h), day + dt.timedelta(hours=hi_h), workflows, sites)
                for limit in (1, 3, 5):
                    ours = rows.slowest(store, window, limit=limit, defs=defs)
                    scan = rows.slowest(store, window, limit=limit)
                    assert ours.equals(scan), (lo_h, hi_h, workflows, sites, limit)
                    assert len(ours) == limit or hi_h - lo_h < 1


def test_the_open_days_closed_hours_keep_their_slowest_runs(tmp_path, make_rows, monkeypatch) -> None:
    """Today (the day not closed) keeps the slowest of each of its closed hours as the buckets
    close, so the runs page reads only the hour not closed yet from the runs; the list equals a
    scan of every run at each pass, with late spans and a range ending inside an hour."""
    from analysis.query import sources

    monkeypatch.setattr(sources, "TOP_RUNS", 3)  # few kept, so that the ranks decide
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})

    def runs_between(lo_min: int, hi_min: int) -> list[dict]:
        out = []
        for m in range(lo_min, hi_min, 7):
            for j, (workflow, site) in enumerate([("open", "ward-7"), ("open", "clinic"), ("chart", "ward-7")]):
                out += make_rows(day + dt.timedelta(minutes=m, seconds=j), workflow, site,
                                 [("find", (1.0, 0.1, 2.0)[j] * (1 + m * 13 % 37 / 100))])
        return out

    def same(now: dt.datetime) -> list[str]:
        with analysis.open_store(path) as store:
            for lo_h, hi_h in ((0, 24), (2, 24), (3.25, 9), (0, 5)):
                for workflows, sites in ((None, None), (["open"], None), (None, ["clinic"])):
                    window = RunFilter(day + dt.timedelta(hours=lo_h), day + dt.timedelta(hours=hi_h), workflows, sites)
                    for limit in (1, 3):
                        ours = rows.slowest(store, window, limit=limit, defs=defs)
                        assert ours.equals(rows.slowest(store, window, limit=limit)), (now, lo_h, hi_h, workflows, limit)
            with monkeypatch.context() as patch:
                read = _reading(store, patch)
                rows.slowest(store, RunFilter(day, day + dt.timedelta(days=1)), limit=3, defs=defs)
        return read

    write_spans(path, runs_between(0, 10 * 60 + 20))
    now = day + dt.timedelta(hours=8, minutes=7)  # 08:00 closed: its hours 00-07 kept
    preagg.refresh(path, defs, now=now)
    (built,) = preagg.coverage(path, defs).built
    assert (built.lo, built.hi) == (int(day.timestamp()), int(day.timestamp()) + 8 * 3600)
    assert (preagg.TOP_HOURS, 86_400) in built.files
    read = same(now)
    assert "tophours" in read[0] and read[0].count("start >= ? AND start < ?") == 2, read[0]  # 08:00-now only
    for minutes in (22, 37, 52, 67, 130):  # pass after pass; a late run at 03:30 in between
        now = day + dt.timedelta(hours=8, minutes=minutes)
        if minutes == 67:
            write_spans(path, make_rows(day + dt.timedelta(hours=3, minutes=30), "open", "clinic", [("find", 9.0)]))
        preagg.refresh(path, defs, now=now)
        same(now)
    open_day = [b for b in preagg.coverage(path, defs).built if (preagg.TOP_HOURS, 86_400) in b.files]
    assert [(b.lo - int(day.timestamp())) / 3600 for b in open_day] == [0] and open_day[0].hi % 3600 == 0
    assert not [p for p in preagg.directory(path, defs).iterdir()
                if p.suffix == ".parquet" and str(p) not in {f for b in preagg.coverage(path, defs).built
                                                             for f in b.files.values()}]


def test_the_coverage_is_planned_once_per_state_and_segments(tmp_path, make_rows) -> None:
    """A page asks the coverage several times per request: the same state and segments give the
    same coverage without planning it again; a new segment or a new pass plans it again."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 6, minutes=50))
    preagg.refresh(path, defs, now=day + dt.timedelta(days=1, hours=1))
    first = preagg.coverage(path, defs)
    assert first.built and preagg.coverage(path, defs) is first
    write_spans(path, _runs(make_rows, day + dt.timedelta(days=1, hours=8), 6, minutes=50))  # a new segment
    second = preagg.coverage(path, defs)
    assert second is not first and second.data != first.data
    preagg.refresh(path, defs, now=day + dt.timedelta(days=2, hours=1))  # a new state
    third = preagg.coverage(path, defs)
    assert third is not second and len(third.built) == 2 and preagg.coverage(path, defs) is third


def test_a_window_edge_where_no_segment_has_spans_is_not_read_exactly(tmp_path, make_rows) -> None:
    """A month's window starts and ends where the store has no spans (before the first, after the
    last): those edges are not asked of the store's views (an empty exact read of the steps cost
    0.4 s at 10M spans); an edge holding spans still is."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    write_spans(path, _runs(make_rows, day + dt.timedelta(hours=8), 12))
    preagg.refresh(path, defs, now=day + dt.timedelta(days=2))
    with analysis.open_store(path) as store:
        for lo, hi, exact_read in ((day - dt.timedelta(hours=1), day + dt.timedelta(days=1, hours=5), False),
                                   (day + dt.timedelta(hours=8, minutes=7), day + dt.timedelta(days=1), True)):
            q = f.ask(store, RunFilter(lo, hi), defs)
            assert ("FROM steps AS st" in q._source("steps")[0]) == exact_read
            assert ("FROM runs AS r" in q._source("runs")[0]) == exact_read
            assert f.steps(q)["samples"].tolist() == f.steps(f.ask(store, RunFilter(lo, hi), defs, exact=True))[
                "samples"].tolist()


def test_the_listed_runs_steps_come_from_the_kept_steps_and_equal_the_spans(tmp_path, make_rows,
                                                                           monkeypatch) -> None:
    """The runs page's chart: the steps of listed runs kept by their day come from the day's kept
    steps, the others' (a run not kept, a day still open) from the spans; the same rows either way."""
    from analysis.query import sources

    monkeypatch.setattr(sources, "TOP_RUNS", 2)
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    rows_ = []
    for i in range(30):  # two days and a half; the last run of the first day ends after midnight
        start = day + (dt.timedelta(hours=23, minutes=59, seconds=50) if i == 11 else dt.timedelta(hours=2 * i))
        rows_ += make_rows(start, "open", "ward-7", [("find", 0.5 + i % 4), ("notes", 30.0 + i)], think_s=20)
    write_spans(path, rows_)
    preagg.refresh(path, defs, now=day + dt.timedelta(days=2, hours=1))
    built = [b for b in preagg.coverage(path, defs).built if (preagg.TOP_STEPS, 86_400) in b.files]
    assert len(built) == 2
    with analysis.open_store(path) as store:
        listed = rows.slowest(store, RunFilter(day, day + dt.timedelta(days=3)), limit=30)
        assert len(listed) == 30
        ours, spans = rows.chart_steps(store, listed, defs), rows.chart_steps(store, listed)
        assert len(ours) == 60
        assert ours.equals(spans)
        kept = store.sql(f"SELECT trace_id, start FROM '{built[0].files[(preagg.TOP_STEPS, 86_400)]}'")
        assert kept["trace_id"].nunique() == 2  # only the kept runs' steps are kept
        assert kept["start"].max() >= day + dt.timedelta(days=1)  # the last run's notes, after midnight


def _reading(store, monkeypatch) -> list[str]:
    """Every query ``store`` and the slices of a few segments are asked, from now on."""
    from analysis.query.slices import Slice

    read: list[str] = []
    real, real_slice = store.sql, Slice.sql
    monkeypatch.setattr(store, "sql", lambda q, p=None, t=None: read.append(q) or real(q, p, t))
    monkeypatch.setattr(Slice, "sql", lambda self, q, p=None: read.append(f"[{len(self.segments)} segments] {q}")
                        or real_slice(self, q, p))
    return read


def test_each_sites_newest_measured_run_is_found_without_reading_every_run(tmp_path, make_rows,
                                                                           monkeypatch) -> None:
    """The site health page's newest measured run per site equals the scan of every run, with
    simulated history newer than a site's measured runs, a day kept whole, a stale range, and
    buckets not built yet; and no read of the runs is unbounded in time."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})

    def simulated(rows_: list[dict]) -> list[dict]:
        for row in rows_:
            row[schema.RESOURCE_ATTRIBUTES] = {**row[schema.RESOURCE_ATTRIBUTES], schema.ATTR_SIMULATED: "true"}
        return rows_

    rows_ = _runs(make_rows, day + dt.timedelta(hours=1), 40, minutes=37)  # ward-7, measured, two days
    rows_ += _runs(make_rows, day + dt.timedelta(hours=3), 5, site="clinic")  # the clinic, measured, day one
    rows_ += simulated(_runs(make_rows, day + dt.timedelta(hours=20), 60, site="clinic", minutes=43))  # then simulated
    rows_ += simulated(_runs(make_rows, day, 10, site="community", minutes=300))  # never measured
    write_spans(path, rows_)

    def scan(store) -> dict:
        frame = store.sql("SELECT site, max(start) AS last FROM runs WHERE NOT simulated AND site IS NOT NULL "
                          "GROUP BY site")
        return {r.site: pd.Timestamp(r.last).to_pydatetime() for r in frame.itertuples()}

    for now, late in ((day + dt.timedelta(days=1, hours=2), None),  # day one closed, day two partly built
                      (day + dt.timedelta(days=3), None),  # both days closed: day rows
                      (day + dt.timedelta(days=3), day + dt.timedelta(days=1, hours=23, minutes=50))):  # a stale range
        if late is not None:
            write_spans(path, make_rows(late, "open", "ward-7", [("find", 0.3)]))
        else:
            preagg.refresh(path, defs, now=now)
        with analysis.open_store(path) as store, monkeypatch.context() as patch:
            expected = scan(store)
            reads = _reading(store, patch)
            assert rows.newest_measured(store, defs) == expected, now
            exact = [q for q in reads if "FROM runs" in q or "FROM spans" in q]
            assert exact and all('"Timestamp" >= ?' in q for q in exact), reads  # never every run
        with analysis.open_store(path) as store:
            assert set(scan(store)) == {"ward-7", "clinic"}
            assert rows.newest_measured(store) == scan(store)  # without the definitions: the scan


def test_missed_slots_are_read_from_the_window_only_and_equal_the_view(tmp_path, make_rows, monkeypatch) -> None:
    """The runs page's missed slots: the view's rows whose slot is in the window, read with the
    span's start bounded (a missed slot's span starts at its slot), not from every span."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    spans = _runs(make_rows, day, 10, minutes=300)
    for i, site in enumerate(["ward-7", "clinic"] * 6):
        slot = day + dt.timedelta(hours=4 * i, minutes=7)
        spans.append({
            schema.TIMESTAMP: slot, schema.TRACE_ID: f"{i + 1:032x}", schema.SPAN_ID: f"{i + 1:016x}",
            schema.SPAN_NAME: "missed slot", schema.DURATION: 0,
            schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SITE: site, schema.SERVICE_NAME_ATTR: "wardwatch-probe"},
            schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT, schema.ATTR_WORKFLOW: "open",
                                     schema.ATTR_SLOT: slot.isoformat(), schema.ATTR_MISSED_REASON: "busy"}})
    write_spans(path, spans)
    with analysis.open_store(path) as store:
        for lo_h, hi_h, sites in ((0, 48, False), (4.1, 20.2, False), (8.2, 8.5, False), (-10, 100, True), (4, 30, True)):
            window = RunFilter(day + dt.timedelta(hours=lo_h), day + dt.timedelta(hours=hi_h), sites=["clinic"] if sites else None)
            where, params = window.where(time_column="slot")
            view = store.sql(f"SELECT trace_id, slot, workflow, site, reason FROM missed_slots WHERE {where} "
                             "ORDER BY slot", params)
            with monkeypatch.context() as patch:
                read = _reading(store, patch)
                ours = rows.missed_slots(store, window)
            assert ours.equals(view) and (len(ours) > 0) == (lo_h != 8.2)
            assert '"Timestamp" >= ?' in read[0]  # the row groups (and segments) of the window only


def _missed(slot: dt.datetime, site: str, i: int, workflow: str = "open") -> dict:
    return {schema.TIMESTAMP: slot, schema.TRACE_ID: f"{i + 1:032x}", schema.SPAN_ID: f"{i + 1:016x}",
            schema.SPAN_NAME: "missed slot", schema.DURATION: 0,
            schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SITE: site, schema.SERVICE_NAME_ATTR: "wardwatch-probe"},
            schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT, schema.ATTR_WORKFLOW: workflow,
                                     schema.ATTR_SLOT: slot.isoformat(), schema.ATTR_MISSED_REASON: "busy"}}


def test_a_closed_days_missed_slots_are_kept_and_read_instead_of_its_spans(tmp_path, make_rows, monkeypatch) -> None:
    """A month's missed slots: each closed day keeps its own (a day with none keeps that it has
    none), so only the open day's spans are read; the rows equal the view's, late ones included."""
    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    defs = Definitions.of({"open": 1.0})
    spans, i = [], 0
    for d_ in range(4):  # four days of runs; missed slots on days 0, 2 (one just before midnight) and 3 (open)
        spans += _runs(make_rows, day + dt.timedelta(days=d_, hours=8), 6, minutes=50)
        for minutes in ((7, 300, 1439) if d_ != 1 else ()):
            spans.append(_missed(day + dt.timedelta(days=d_, minutes=minutes), ["ward-7", "clinic"][i % 2], i))
            i += 1
    write_spans(path, spans)
    preagg.refresh(path, defs, now=day + dt.timedelta(days=3, hours=12))
    kept = {b.lo: b.files.get((preagg.MISSED, 86_400)) for b in preagg.coverage(path, defs).built}
    assert kept[int((day + dt.timedelta(days=1)).timestamp())] == ""  # none that day, and that is known
    assert sum(bool(f) for f in kept.values()) == 2
    windows = ((0, 96, None), (0, 24, None), (-10, 100, ["clinic"]), (23.9, 24, None), (5, 72, None), (30, 40, None))

    def view(store, window):
        where, params = window.where(time_column="slot")
        return store.sql(f"SELECT trace_id, slot, workflow, site, reason FROM missed_slots WHERE {where} "
                         "ORDER BY slot, trace_id", params)

    with analysis.open_store(path) as store:
        for lo_h, hi_h, sites in windows:
            window = RunFilter(day + dt.timedelta(hours=lo_h), day + dt.timedelta(hours=hi_h), sites=sites)
            expected = view(store, window)
            with monkeypatch.context() as patch:
                read = _reading(store, patch)
                ours = rows.missed_slots(store, window, defs)
            assert ours.equals(expected), (lo_h, hi_h)
            assert ours.equals(rows.missed_slots(store, window)), (lo_h, hi_h)
            spans_read = [q for q in read if ("FROM spans" in q or "missed_slots" in q) and "[0 segments]" not in q]
            if hi_h + 1 <= 72:  # closed days only (the window widened by an hour): no span read
                assert not spans_read, (lo_h, hi_h, read)
            else:  # the open day's spans only
                assert all("[1 segments]" in q for q in spans_read), read
    write_spans(path, [_missed(day + dt.timedelta(days=1, hours=3), "ward-7", 99)])  # a late one, in a kept day
    with analysis.open_store(path) as store:
        window = RunFilter(day, day + dt.timedelta(days=4))
        ours = rows.missed_slots(store, window, defs)
        assert ours.equals(view(store, window)) and len(ours) == 10


def test_a_runs_waterfall_from_the_segments_of_its_hours_equals_the_stores(tmp_path, make_rows) -> None:
    """The runs page reads a listed run's waterfall from a slice of the segments around it."""
    from analysis.query.slices import Slice

    path = tmp_path / "store"
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for i in range(4):  # a segment per day
        write_spans(path, _runs(make_rows, day + dt.timedelta(days=i, hours=8), 6, minutes=50))
    with analysis.open_store(path) as store:
        listed = rows.slowest(store, RunFilter(day, day + dt.timedelta(days=4)), limit=3)
        for run in listed.itertuples():
            between = (run.start - dt.timedelta(hours=1), run.start + dt.timedelta(hours=1))
            part = Slice(path, [between])
            assert len(part.segments) == 1
            ours, theirs = run_waterfall(part, run.trace_id, between), run_waterfall(store, run.trace_id, between)
            assert len(ours.spans) == 3 and ours.spans.equals(theirs.spans) and ours.marks.equals(theirs.marks)
