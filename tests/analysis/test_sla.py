"""SLAs as the contract computes them, on small stores with hand-computed figures."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from analysis import open_store
from analysis.config import SLAConfig
from analysis.sla import evaluate_sla, load_exclusions_csv, parse_month, sla_window

UTC = dt.UTC
OCT = (dt.datetime(2026, 9, 30, 23, tzinfo=UTC), dt.datetime(2026, 11, 1, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """Ten requests on Thursday 1 October 2026 (BST, UTC+1) at ward-7:

    - 09:00-09:40 local (08:00Z..): five one-step runs of 0.5, 1.0, 1.5, 2.5 and 3.0 s;
    - 03:00 local (02:00Z): four runs of 4.0 s (the nightly batch), one of which failed (503);
    - 12:00 local (11:00Z): one run of 0.2 s.
    """
    rows = []
    for i, seconds in enumerate([0.5, 1.0, 1.5, 2.5, 3.0]):
        rows += make_rows(at(1, 8, 10 * i), "notes", "ward-7", [("read", seconds)])
    for i in range(4):
        rows += make_rows(at(1, 2, 10 * i), "notes", "ward-7",
                          [("read", 4.0, 503 if i == 0 else 200)], status="failed" if i == 0 else "ok")
    rows += make_rows(at(1, 11), "notes", "ward-7", [("read", 0.2)])
    return rows_store(rows)


def sla(**kwargs) -> SLAConfig:
    return SLAConfig(name="contract", **kwargs)


def test_share_under_counts_every_request(store_path: Path) -> None:
    with open_store(store_path) as store:
        r = evaluate_sla(store, sla(metric="share_under", threshold_s=2, target=0.5), *OCT)
    # within 2 s: 0.5, 1.0, 1.5, 0.2 -> 4 of 10
    assert r.samples == 10
    assert r.value == pytest.approx(0.4)
    assert r.met is False
    assert r.budget_remaining == pytest.approx(1 - 0.6 / 0.5)


def test_service_hours_leave_out_the_night(store_path: Path) -> None:
    hours = {"weekdays": ["thu"], "start": "08:00", "end": "18:00"}
    with open_store(store_path) as store:
        r = evaluate_sla(store, sla(metric="share_under", threshold_s=2, target=0.5,
                                    service_hours=hours, timezone="Europe/London"), *OCT)
    assert r.outside_service_hours == 4
    assert r.samples == 6
    assert r.value == pytest.approx(4 / 6)
    assert r.met is True
    assert r.budget_remaining == pytest.approx(1 - (2 / 6) / 0.5)


def test_exclusions_from_config_and_csv(store_path: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "maintenance.csv"
    csv_file.write_text("start,end,title\n2026-10-01T12:00:00+01:00,2026-10-01T12:30:00+01:00,patch\n")
    config = sla(metric="availability", target=0.9,
                 exclusions=[{"start": "2026-10-01T02:00:00Z", "end": "2026-10-01T02:05:00Z"}],
                 exclusions_file=Path("maintenance.csv"))
    with open_store(store_path) as store:
        r = evaluate_sla(store, config, *OCT, base_dir=tmp_path)
    assert r.excluded == 2  # the failed 02:00 request and the 12:00 one
    assert r.samples == 8
    assert r.value == 1.0  # the failure was in agreed maintenance; slow requests are "up"
    assert r.met is True


def test_availability_counts_slow_but_successful_as_up(store_path: Path) -> None:
    with open_store(store_path) as store:
        r = evaluate_sla(store, sla(metric="availability", target=0.95), *OCT)
    assert r.value == pytest.approx(0.9)  # only the 503 is down; the 4 s responses are up
    assert r.met is False


def test_mean_and_percentile(store_path: Path) -> None:
    durations = [0.5, 1.0, 1.5, 2.5, 3.0, 4.0, 4.0, 4.0, 4.0, 0.2]
    with open_store(store_path) as store:
        mean = evaluate_sla(store, sla(metric="mean", target=2.4), *OCT)
        p90 = evaluate_sla(store, sla(metric="percentile", percentile=90, target=3.5), *OCT)
    assert mean.value == pytest.approx(sum(durations) / 10)
    assert mean.met is False and math.isnan(mean.budget_remaining) and mean.budget is None
    # sorted: 0.2 0.5 1.0 1.5 2.5 3.0 4 4 4 4; p90 at rank 8.1 (0-based) -> 4.0
    assert p90.value == pytest.approx(4.0)
    assert p90.met is False
    # "p90 <= 3.5 s" is "90% within 3.5 s": 6 of 10 within, budget 0.1 overspent fourfold
    assert p90.budget_remaining == pytest.approx(1 - 0.4 / 0.1)


def test_only_a_percentile_sla_computes_the_windows_quantile(store_path: Path, monkeypatch) -> None:
    """The window's quantile holds every request's time in DuckDB: an SLA on a share or a mean
    never reads it, so its query does not compute it."""
    from analysis.store import Store

    read: list[str] = []
    arrow = Store._arrow
    monkeypatch.setattr(Store, "_arrow", lambda self, query, params=None, tables=None: (
        read.append(query), arrow(self, query, params, tables))[1])
    with open_store(store_path) as store:
        for config in (sla(metric="share_under", threshold_s=2, target=0.5), sla(metric="mean", target=2.4)):
            read.clear()
            assert evaluate_sla(store, config, *OCT).samples == 10
            assert read and not [q for q in read if "quantile_cont" in q]
        read.clear()
        assert evaluate_sla(store, sla(metric="percentile", percentile=90, target=3.5), *OCT).value == 4.0
        assert [q for q in read if "quantile_cont(duration_s, 0.9)" in q]


def test_timeslices_on_availability(store_path: Path) -> None:
    # 5-minute slices with requests: 02:00 (the 503), 02:10, 02:20, 02:30, 08:00..08:40 (5), 11:00
    config = sla(metric="availability", target=0.9, budgeting_method="Timeslices",
                 time_slice_target=1.0, time_slice_minutes=5)
    ratio = sla(metric="availability", target=0.9, budgeting_method="RatioTimeslices",
                time_slice_minutes=60)
    with open_store(store_path) as store:
        r = evaluate_sla(store, config, *OCT)
        rr = evaluate_sla(store, ratio, *OCT)
    assert r.budget is not None and r.budget.slices == 10 and r.budget.good_slices == 9
    assert r.value == pytest.approx(0.9) and r.met is True
    # hourly slices: 02:00 (3 of 4 good), 08:00 (5 of 5), 11:00 (1 of 1): mean 0.9167
    assert rr.budget is not None and rr.budget.slices == 3
    assert rr.value == pytest.approx((0.75 + 1 + 1) / 3)


def test_workflow_and_site_filters(store_path: Path) -> None:
    with open_store(store_path) as store:
        none = evaluate_sla(store, sla(metric="availability", target=0.9, sites=["elsewhere"]), *OCT)
    assert none.samples == 0 and none.met is None and math.isnan(none.value)
    assert none.display == "no requests (n=0)"


def test_windows() -> None:
    month = sla(metric="availability", target=0.999, timezone="Europe/London")
    start, end = sla_window(month, month="2026-10")
    assert (start, end) == OCT
    assert sla_window(month, end=at(15, 12)) == OCT
    rolling = sla(metric="availability", target=0.999, window="rolling", rolling_days=28)
    assert sla_window(rolling, end=at(29, 0)) == (at(1, 0), at(29, 0))
    assert parse_month("2026-10") == (2026, 10)
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("October")


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="needs percentile"):
        sla(metric="percentile", target=2)
    with pytest.raises(ValidationError, match="needs threshold_s"):
        sla(metric="share_under", target=0.95)
    with pytest.raises(ValidationError, match="target ratio"):
        sla(metric="availability", target=99.9)
    with pytest.raises(ValidationError, match="rolling_days"):
        sla(metric="availability", target=0.99, window="rolling")
    with pytest.raises(ValidationError, match="Occurrences"):
        sla(metric="mean", target=1, budgeting_method="Timeslices", time_slice_target=0.9)
    with pytest.raises(ValidationError, match="time zone"):
        sla(metric="mean", target=1, timezone="Mars/Olympus")
    assert sla(metric="share_under", threshold_s=2, target=0.95).wording == (
        "95% of requests within 2 s, 24x7, per calendar month"
    )


def test_exclusions_csv_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end\n2026-10-01T02:00:00Z,2026-10-01T01:00:00Z\n")
    with pytest.raises(ValueError, match=r"bad.csv:2"):
        load_exclusions_csv(bad)
    (tmp_path / "cols.csv").write_text("from,to\n")
    with pytest.raises(ValueError, match="missing column"):
        load_exclusions_csv(tmp_path / "cols.csv")


def test_server_data_source_reads_imported_timings(tmp_path: Path) -> None:
    from store.importers import import_server_timings

    path = tmp_path / "epr.csv"
    path.write_text(
        "timestamp,endpoint,duration,status\n"
        "2026-10-01T08:00:00Z,GET /fhir/Patient,120,200\n"
        "2026-10-01T08:00:01Z,GET /fhir/DocumentReference,2500,200\n"
        "2026-10-01T08:00:02Z,GET /fhir/DocumentReference,900,200\n"
        "2026-10-01T08:00:03Z,GET /fhir/Observation,80,503\n"
    )
    store_path = tmp_path / "store"
    assert import_server_timings(path, store_path).spans == 4
    with open_store(store_path) as store:
        share = evaluate_sla(store, sla(metric="share_under", threshold_s=2, target=0.7,
                                        data_source="server"), *OCT)
        notes = evaluate_sla(store, sla(metric="mean", target=2, data_source="server",
                                        endpoints=["/fhir/DocumentReference*"]), *OCT)
        up = evaluate_sla(store, sla(metric="availability", target=0.7, data_source="server"), *OCT)
        probe = evaluate_sla(store, sla(metric="availability", target=0.7), *OCT)
    assert share.samples == 4 and share.value == 0.75 and share.met is True
    assert notes.samples == 2 and notes.value == pytest.approx(1.7)
    assert up.value == 0.75  # the 503 is down; the 2.5 s response is up
    assert probe.samples == 0  # server timings are not the probe's


def test_filter_requests_agrees_with_the_query(store_path: Path) -> None:
    from analysis.sla import counted_requests, filter_requests

    config = sla(metric="share_under", threshold_s=2, target=0.5, timezone="Europe/London",
                 service_hours={"weekdays": ["thu"], "start": "08:00", "end": "18:00"},
                 exclusions=[{"start": "2026-10-01T08:15:00Z", "end": "2026-10-01T08:25:00Z"}],
                 endpoints=["/fhir/re*"])
    with open_store(store_path) as store:
        queried = counted_requests(store, config, *OCT)
        filtered = filter_requests(store.requests(*OCT, source="probe"), config)
    assert len(queried) == 5  # 08:00-08:40Z and 11:00Z, less the excluded 08:20Z
    assert list(queried["span_id"]) == list(filtered["span_id"])
    assert list(queried["good"]) == list(filtered["good"])


def test_service_hours_skip_bank_holidays(store_path: Path) -> None:
    hours = {"weekdays": ["thu"], "start": "00:00", "end": "23:59",
             "except_dates": ["2026-10-01"]}
    with open_store(store_path) as store:
        r = evaluate_sla(store, sla(metric="availability", target=0.9, service_hours=hours,
                                    timezone="Europe/London"), *OCT)
    assert r.samples == 0 and r.outside_service_hours == 10 and r.met is None


def test_scope_figures_agree_with_the_filtered_frame(store_path: Path) -> None:
    import numpy as np

    from analysis.calendar import ClinicalCalendar
    from analysis.config import PeriodConfig
    from analysis.sla import filter_requests, scope_request_figures
    from analysis.store import FrameCache

    morning = PeriodConfig(name="morning", weekdays=["thu"], start=dt.time(9), end=dt.time(9, 30))
    calendar = ClinicalCalendar([morning], {"ward-7": "Europe/London"})
    config = sla(metric="percentile", percentile=90, target=3.0, timezone="Europe/London",
                 exclusions=[{"start": "2026-10-01T08:15:00Z", "end": "2026-10-01T08:25:00Z"}])
    scopes = [("notes", "ward-7", "morning"), ("notes", "ward-7", None),
              ("notes", "elsewhere", "all hours")]
    with open_store(store_path) as store:
        cache = FrameCache(store)
        figures = scope_request_figures(cache, config, *OCT, scopes, calendar, q=0.9)
        assert evaluate_sla(cache, config, *OCT).samples == 9  # the same pass counted them
        frame = filter_requests(store.requests(*OCT, source="probe"), config)
    for row, mask in zip(figures.itertuples(), [calendar.mask(frame, "morning"),
                                                 np.ones(len(frame), dtype=bool),
                                                 np.zeros(len(frame), dtype=bool)], strict=True):
        part = frame[np.asarray(mask)]
        durations = part["duration_s"].astype("float64").to_numpy()
        assert (row.requests, row.good, row.durations) == (len(part), int(part["good"].sum()),
                                                           len(durations))
        if len(durations):
            assert row.mean_s == pytest.approx(durations.mean())
            assert row.p95_s == pytest.approx(np.percentile(durations, 95))
            assert row.quantile_s == pytest.approx(np.percentile(durations, 90))
        else:
            assert math.isnan(row.mean_s) and math.isnan(row.p95_s)
    assert figures["requests"].tolist() == [2, 9, 0]  # 09:00 and 09:10 local; 09:20 is excluded
