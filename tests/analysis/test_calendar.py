"""Clinical periods in each site's local time, across daylight-saving changes."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.calendar import ClinicalCalendar
from analysis.config import PeriodConfig

UTC = dt.UTC
WARD_ROUNDS = PeriodConfig(
    name="ward rounds", start=dt.time(8), end=dt.time(10, 30),
    except_dates=[dt.date(2026, 8, 31)],  # summer bank holiday
)
HANDOVER = PeriodConfig(
    name="handover", weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    start=dt.time(8), end=dt.time(8, 30),
)
CLINICS = PeriodConfig(name="clinics", start=dt.time(13), end=dt.time(17), sites=["Clinic 2"])
NIGHT = PeriodConfig(name="small hours", weekdays=["sun"], start=dt.time(1), end=dt.time(2))

ZONES = {"Ward 7": "Europe/London", "Clinic 2": "Europe/London", "Boston": "America/New_York"}


@pytest.fixture
def calendar() -> ClinicalCalendar:
    return ClinicalCalendar([WARD_ROUNDS, HANDOVER, CLINICS, NIGHT], ZONES)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def test_ward_rounds_follow_the_local_clock_across_the_dst_change(calendar) -> None:
    # Friday 23 October 2026 is in BST (UTC+1); Monday 26 October in GMT.
    assert calendar.periods_at(at("2026-10-23T07:30:00+00:00"), "Ward 7") == ("ward rounds",)
    assert calendar.periods_at(at("2026-10-26T07:30:00+00:00"), "Ward 7") == ()
    assert calendar.periods_at(at("2026-10-26T08:30:00+00:00"), "Ward 7") == ("ward rounds",)
    assert calendar.periods_at(at("2026-10-26T08:00:00+00:00"), "Ward 7") == (
        "ward rounds", "handover"
    )
    assert calendar.periods_at(at("2026-10-26T10:30:00+00:00"), "Ward 7") == ()  # end excluded
    assert calendar.periods_at(at("2026-10-24T07:15:00+00:00"), "Ward 7") == ("handover",)  # Sat


def test_exception_dates_and_site_specific_periods(calendar) -> None:
    # 08:10 BST: the bank holiday has a handover but no ward round; the next day has both.
    assert calendar.periods_at(at("2026-08-31T07:10:00+00:00"), "Ward 7") == ("handover",)
    assert calendar.periods_at(at("2026-09-01T07:10:00+00:00"), "Ward 7") == (
        "ward rounds", "handover"
    )
    assert calendar.periods_at(at("2026-10-26T14:00:00+00:00"), "Clinic 2") == ("clinics",)
    assert calendar.periods_at(at("2026-10-26T14:00:00+00:00"), "Ward 7") == ()


def test_each_site_uses_its_own_zone(calendar) -> None:
    moment = at("2026-10-26T13:00:00+00:00")  # 09:00 in Boston (EDT), 13:00 in London
    assert calendar.periods_at(moment, "Boston") == ("ward rounds",)
    assert calendar.periods_at(moment, "Ward 7") == ()


def test_the_repeated_hour_counts_both_times(calendar) -> None:
    # Sunday 25 October 2026: 01:30 London happens at 00:30Z (BST) and at 01:30Z (GMT).
    assert calendar.periods_at(at("2026-10-25T00:30:00+00:00"), "Ward 7") == ("small hours",)
    assert calendar.periods_at(at("2026-10-25T01:30:00+00:00"), "Ward 7") == ("small hours",)
    assert calendar.periods_at(at("2026-10-25T02:00:00+00:00"), "Ward 7") == ()


def test_occurrences_as_utc_intervals(calendar) -> None:
    found = calendar.occurrences(
        "ward rounds", "Ward 7", at("2026-10-23T00:00:00+00:00"), at("2026-10-27T00:00:00+00:00")
    )
    assert found == [
        (at("2026-10-23T07:00:00+00:00"), at("2026-10-23T09:30:00+00:00")),
        (at("2026-10-26T08:00:00+00:00"), at("2026-10-26T10:30:00+00:00")),
    ]
    assert calendar.occurrences(
        "clinics", "Ward 7", at("2026-10-23T00:00:00+00:00"), at("2026-10-27T00:00:00+00:00")
    ) == []


def test_label_and_mask_runs(calendar) -> None:
    runs = pd.DataFrame({
        "start": pd.to_datetime([
            "2026-10-23T07:30:00Z", "2026-10-26T07:30:00Z", "2026-10-26T08:10:00Z",
            "2026-10-26T14:00:00Z", "2026-10-26T13:00:00Z",
        ], utc=True),
        "site": ["Ward 7", "Ward 7", "Ward 7", "Clinic 2", "Boston"],
    })
    labelled = calendar.label(runs)
    assert list(labelled["periods"]) == [
        ("ward rounds",), (), ("ward rounds", "handover"), ("clinics",), ("ward rounds",)
    ]
    assert list(calendar.mask(runs, "ward rounds")) == [True, False, True, False, True]
    assert "periods" not in runs.columns  # a copy


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        ClinicalCalendar([WARD_ROUNDS], {"Ward 7": "Mars/Olympus"})
    with pytest.raises(ValueError, match="named twice"):
        ClinicalCalendar([WARD_ROUNDS, WARD_ROUNDS], {})
    calendar = ClinicalCalendar([WARD_ROUNDS], {})
    with pytest.raises(ValueError, match="no time zone for site"):
        calendar.periods_at(at("2026-10-26T08:00:00+00:00"), "Ward 7")
    with pytest.raises(KeyError, match="no period named"):
        calendar.period("lunch")
    assert ClinicalCalendar([WARD_ROUNDS], {}, default_timezone="UTC").periods_at(
        at("2026-10-26T08:00:00+00:00"), "anywhere"
    ) == ("ward rounds",)


@settings(max_examples=50, deadline=None)
@given(
    moments=st.lists(
        st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1),
                     timezones=st.just(UTC)),
        min_size=1, max_size=20,
    ),
    sites=st.data(),
)
def test_vectorised_labels_agree_with_one_by_one(moments, sites) -> None:
    calendar = ClinicalCalendar([WARD_ROUNDS, HANDOVER, CLINICS, NIGHT], ZONES)
    names = sites.draw(st.lists(st.sampled_from(sorted(ZONES)), min_size=len(moments),
                                max_size=len(moments)))
    frame = pd.DataFrame({"start": pd.to_datetime(moments, utc=True), "site": names})
    labelled = calendar.label(frame)
    for moment, site, periods in zip(moments, names, labelled["periods"], strict=True):
        assert periods == calendar.periods_at(moment, site)


@settings(max_examples=25, deadline=None)
@given(
    moments=st.lists(
        st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1),
                     timezones=st.just(UTC)),
        min_size=1, max_size=20,
    ),
    site=st.sampled_from(sorted(ZONES)),
)
def test_the_sql_condition_agrees_with_the_mask(moments, site) -> None:
    calendar = ClinicalCalendar([WARD_ROUNDS, HANDOVER, CLINICS, NIGHT], ZONES)
    frame = pd.DataFrame({"start": pd.to_datetime(moments, utc=True), "site": site,
                          "i": range(len(moments))})
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name in calendar.period_names:
            condition, params = calendar.sql_condition(name, site)
            inside = con.execute(f"SELECT {condition} AS inside FROM frame ORDER BY i",
                                 params).df()["inside"]
            assert inside.tolist() == calendar.mask(frame, name).tolist(), name
            zone = calendar.timezone(site).key
            condition, params = calendar.sql_condition(name, site, "local", local=True)
            inside = con.execute(f"SELECT {condition} AS inside FROM (SELECT i, "
                                 f"timezone(?, start) AS local FROM frame) ORDER BY i",
                                 [*params, zone]).df()["inside"]
            assert inside.tolist() == calendar.mask(frame, name).tolist(), name
    finally:
        con.close()


def test_the_sql_condition_at_the_edges(calendar) -> None:
    edges = [at("2026-10-23T08:00:00+01:00"), at("2026-10-23T10:29:59.999999+01:00"),
             at("2026-10-23T10:30:00+01:00"), at("2026-10-26T07:59:59+00:00"),
             at("2026-08-31T09:00:00+01:00")]  # a bank holiday
    frame = pd.DataFrame({"start": pd.to_datetime(edges, utc=True), "site": "Ward 7"})  # noqa: F841 - DuckDB reads it by name (FROM frame)
    condition, params = calendar.sql_condition("ward rounds", "Ward 7")
    con = duckdb.connect()
    try:
        inside = con.execute(f"SELECT {condition} AS inside FROM frame", params).df()["inside"]
    finally:
        con.close()
    assert inside.tolist() == [True, True, False, False, False]
    assert calendar.sql_condition("clinics", "Ward 7") == ("FALSE", [])
