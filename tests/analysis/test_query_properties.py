"""Pre-aggregated against exact, on random stores and random questions: counts, shares and sums
exactly equal, percentiles within the histogram's documented relative error.

The stores hold runs of several workflows at several sites, some failed or interrupted, written in
several segments with a run's spans split between them (the run span in a later batch than its
steps, as a probe's batches may), some buckets built before more spans arrived (late data). The
questions read the coarser levels of closed days (hour and day rows) where a figure may
(``figures.level_for``): whole days, hours in zones on the hour, a period on the hour, across a
daylight-saving change; and 15-minute rows where it may not (India's half hour, a period ending
at half past)."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import analysis
from analysis import RunFilter
from analysis.config import PeriodConfig
from analysis.query import figures as f
from analysis.query import preagg
from analysis.query.sources import DAY_S, Definitions
from store import schema, write_spans
from tests.analysis.conftest import run_rows

BASE = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)  # a Monday
# Or a Saturday evening before New York's clocks go back (Sunday 2026-11-01 06:00 UTC).
BASES = (BASE, dt.datetime(2026, 10, 31, 18, 0, tzinfo=dt.UTC))
WORKFLOWS = ("open", "chart", "handover")
SITES = ("ward-7", "clinic", "community")
STATUSES = ("ok", "ok", "ok", "failed", "timed_out", "interrupted")
DEFS = Definitions.of({"open": 1.0, "chart": 2.5}, 3.0)
BOUND = f.RELATIVE_ERROR * (1 + 1e-9)
ROUNDS = PeriodConfig(name="rounds", weekdays=["mon", "tue"], start="08:00", end="10:30")
CLINICS = PeriodConfig(name="clinics", weekdays=["sun", "mon", "tue"], start="01:00", end="17:00")
CALENDAR = analysis.ClinicalCalendar([ROUNDS], {"ward-7": "Europe/London", "clinic": "Asia/Kolkata",
                                                "community": "America/New_York"})
# Every zone on the hour and a period on the hour: hour rows answer the periods and the hours.
HOURLY = analysis.ClinicalCalendar([CLINICS], {"ward-7": "Europe/London", "clinic": "Europe/Berlin",
                                               "community": "America/New_York"})

run = st.fixed_dictionaries({
    "minute": st.integers(0, 36 * 60 - 1),
    "second": st.integers(0, 59),
    "workflow": st.sampled_from(WORKFLOWS),
    "site": st.sampled_from(SITES),
    "status": st.sampled_from(STATUSES),
    "steps": st.lists(st.floats(0.0, 40.0, allow_nan=False).map(lambda v: round(v, 4)), min_size=1, max_size=4),
    "batch": st.integers(0, 3),  # which write the run's steps go in
    "root_later": st.booleans(),  # its run span in the next write (a run straddling segments)
})
question = st.fixed_dictionaries({
    "start_min": st.integers(-8 * 60, 36 * 60),
    "length_min": st.integers(1, 36 * 60),
    "on_grid": st.booleans(),
    "workflows": st.none() | st.lists(st.sampled_from(WORKFLOWS), min_size=1, max_size=2, unique=True),
    "sites": st.none() | st.lists(st.sampled_from(SITES), min_size=1, max_size=2, unique=True),
})

# A window holding a whole UTC day (of the first two the runs touch) and some hours either side.
whole_day = st.fixed_dictionaries({
    "day": st.integers(0, 1),
    "before_min": st.integers(0, 8 * 60),
    "after_min": st.integers(0, 8 * 60),
    "on_grid": st.booleans(),
    "workflows": st.none() | st.lists(st.sampled_from(WORKFLOWS), min_size=1, max_size=2, unique=True),
    "sites": st.none(),
})


def _window(spec: dict, base: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if "day" in spec:
        day = base.replace(hour=0, minute=0) + dt.timedelta(days=spec["day"] + (1 if base.hour >= 12 else 0))
        start = day - dt.timedelta(minutes=spec["before_min"])
        end = day + dt.timedelta(days=1, minutes=spec["after_min"])
    else:
        start = base + dt.timedelta(minutes=spec["start_min"])
        end = start + dt.timedelta(minutes=spec["length_min"])
    if spec["on_grid"]:
        start, end = start.replace(minute=start.minute // 15 * 15), end.replace(minute=end.minute // 15 * 15)
        end = max(end, start + dt.timedelta(minutes=15))
    else:
        start += dt.timedelta(seconds=17)
    return start, end


def _write(path: Path, runs: list[dict], base: dt.datetime = BASE) -> None:
    batches: list[list[dict]] = [[] for _ in range(5)]
    kind = schema.ATTR_SPAN_TYPE
    for r in runs:
        start = base + dt.timedelta(minutes=r["minute"], seconds=r["second"])
        spans = run_rows(start, r["workflow"], r["site"], [(f"s{i}", v) for i, v in enumerate(r["steps"])],
                         status=r["status"], think_s=1.0)
        for span in spans:
            root = span[schema.SPAN_ATTRIBUTES][kind] == schema.SPAN_TYPE_RUN
            batches[r["batch"] + (1 if root and r["root_later"] else 0)].append(span)
    for batch in batches:
        if batch:
            write_spans(path, batch)


def _close(ours: pd.DataFrame, exact: pd.DataFrame, keys: list[str], counts: list[str], percentiles: list[str],
           sums: tuple[str, ...] = ()) -> None:
    assert len(ours) == len(exact)
    ours, exact = ours.sort_values(keys).reset_index(drop=True), exact.sort_values(keys).reset_index(drop=True)
    assert ours[keys + counts].to_dict("records") == exact[keys + counts].to_dict("records")
    for column in sums:  # exact sums, added in another order
        assert np.allclose(ours[column].astype(float), exact[column].astype(float), rtol=1e-9, equal_nan=True)
    for column in percentiles:
        a, b = ours[column].astype(float).to_numpy(), exact[column].astype(float).to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all()
        fine = ~np.isnan(b)
        assert (np.abs(a[fine] - b[fine]) <= BOUND * np.abs(b[fine]) + 1e-12).all(), (column, a, b)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(run, min_size=1, max_size=40), built_min=st.just(48 * 60) | st.integers(0, 40 * 60),
       late=st.just([]) | st.lists(run, min_size=1, max_size=6),
       questions=st.lists(question | whole_day, min_size=1, max_size=3),
       base=st.sampled_from(BASES))
def test_pre_aggregated_answers_equal_the_exact_ones(runs, built_min, late, questions, base) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store"
        _write(path, runs, base)
        preagg.refresh(path, DEFS, now=base + dt.timedelta(minutes=built_min))
        if late:
            _write(path, late, base)  # after the build: some buckets are stale until the next pass
        days = [b for b in preagg.coverage(path, DEFS).built if ("runs", DAY_S) in b.files]
        with analysis.open_store(path) as store:
            for spec in questions:
                start, end = _window(spec, base)
                window = RunFilter(start, end, spec["workflows"], spec["sites"])
                ours, exact = f.ask(store, window, DEFS), f.ask(store, window, DEFS, exact=True)
                event("pre-aggregated buckets read" if ours.relative_error else "exact rows only")
                if any(start.timestamp() <= b.lo and b.hi <= end.timestamp() for b in days):
                    event("a whole day's day rows read")
                _check(ours, exact)


def _check(ours: f.Question, exact: f.Question) -> None:
    counts = ["samples", "not_ok", "share_under"]
    _close(f.board(ours), f.board(exact), ["workflow", "site"], [*counts, "threshold_s"], ["p50_s", "p90_s"])
    _close(f.sites(ours), f.sites(exact), ["site"], counts, ["p50_s", "p90_s"])
    for zone in ("Europe/London", "America/New_York", "Asia/Kolkata"):
        _close(f.time_of_day(ours, timezone=zone), f.time_of_day(exact, timezone=zone),
               ["weekday", "hour"], ["samples", "share_under"], ["p90_s"])
    for bucket_s in (900, 3600, 6 * 3600, 86_400):
        _close(f.timeline(ours, bucket_s=bucket_s), f.timeline(exact, bucket_s=bucket_s), ["bucket"], ["samples"],
               ["p50_s", "p90_s"])
    _close(f.steps(ours), f.steps(exact), ["step"], ["step_index", "samples"], ["median_s", "p90_s"], ("mean_s",))
    _close(f.phases(ours), f.phases(exact), ["site"], ["samples"], [], ("dns_s", "connect_s", "ttfb_s"))
    assert f.simulated_share(ours) == f.simulated_share(exact)
    # Known from the figures' counts above, as a question of its own asks it.
    assert f.simulated_share(ours) == f.simulated_share(f.ask(exact.store, exact.runs, DEFS, exact=True))
    for calendar, period in ((CALENDAR, "rounds"), (HOURLY, "clinics")):
        a, b = f.board_scopes(ours, calendar=calendar), f.board_scopes(exact, calendar=calendar)
        keys = ["workflow", "site", "scope", "kind", "samples", "not_ok", "satisfied", "tolerating"]
        assert a[keys].sort_values(keys).to_dict("records") == b[keys].sort_values(keys).to_dict("records")
        da = f.waiting_distribution(ours, period=period, calendar=calendar)
        db = f.waiting_distribution(exact, period=period, calendar=calendar)
        assert (da.samples, da.ok, da.satisfied, da.tolerating) == (db.samples, db.ok, db.satisfied, db.tolerating)
        assert int(da.counts.sum()) == int(db.counts.sum())
        for (la, na, ga, pa), (lb, nb, gb, pb) in zip(f.period_split(ours, calendar=calendar, period=period),
                                                      f.period_split(exact, calendar=calendar, period=period),
                                                      strict=True):
            assert (la, na) == (lb, nb)
            assert (math.isnan(ga) and math.isnan(gb)) or ga == gb
            assert (math.isnan(pa) and math.isnan(pb)) or abs(pa - pb) <= BOUND * abs(pb) + 1e-12
    whole = f.waiting_distribution(ours)
    assert (whole.samples, int(whole.counts.sum())) == (f.waiting_distribution(exact).samples,
                                                        int(f.waiting_distribution(exact).counts.sum()))
