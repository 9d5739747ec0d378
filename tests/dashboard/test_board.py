"""The overview's board rates each workflow at each site by its worst part of the day, not by a
pooled week that dilutes an afternoon where one run in eight waits seven times T."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import analysis
from analysis.config import PeriodConfig
from analysis.query import preagg
from analysis.query.figures import FRUSTRATED_SHARE, ask, board_scopes
from dashboard.context import DashboardContext, SiteInfo, WorkflowInfo
from dashboard.data import definitions
from dashboard.filters import Filters
from store import ParquetSpanExporter
from analysis.apdex import SMALL_GROUP_SAMPLES
from dashboard import DashboardServer, create_app
from dashboard.board import MIN_RATED_RUNS, all_hours_line, apdex_rating, rating_words, worst_scopes
from tests.dashboard.test_bad_input import route

T_S = 1.0
NOW = dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC)  # a Saturday: the five weekdays before it
CLINICS = PeriodConfig(name="outpatient clinics", start=dt.time(14), end=dt.time(16), sites=["clinic"])


def _context(path: Path) -> DashboardContext:
    return DashboardContext(
        data_dir=path, timezone="UTC",
        sites=(SiteInfo("clinic", "Outpatient clinic", "UTC"), SiteInfo("ward", "Ward 7", "UTC")),
        workflows=(WorkflowInfo("open_patient_record", threshold_s=T_S, threshold_source="test"),),
        periods=(CLINICS,), now=lambda: NOW,
    )


def build(make_probe, path: Path, days: int, exact: bool = False) -> pd.DataFrame:
    """``days`` weekdays, a run every 15 minutes at two sites, all quick (0.3 s) except at the clinic:
    during the clinics (14:00-16:00) one run in eight takes 7 s, seven times T. Returns the board's scopes."""
    memory = InMemorySpanExporter()
    clinic, ward = (make_probe(site=site, timezone="UTC", exporter=memory) for site in ("clinic", "ward"))
    for day in range(1, days + 1):
        midnight = NOW - dt.timedelta(days=day)
        for quarter in range(96):
            start = midnight + dt.timedelta(minutes=15 * quarter)
            start_ns = int(start.timestamp()) * 1_000_000_000
            stalled = start.hour == 14 and start.minute == 0
            clinic.run(start_ns, steps=(("read", 7.0 if stalled else 0.3),))
            ward.run(start_ns, steps=(("read", 0.3),))
    ParquetSpanExporter(path).export(memory.get_finished_spans())  # one segment, not one per span
    context = _context(path)
    defs = definitions(context)
    if not exact:
        assert preagg.refresh(path, defs, now=NOW) > 0
    with analysis.open_store(path) as store:
        q = ask(store, Filters(window="7d").run_filter(NOW, "UTC"), defs, exact=exact)
        assert q.relative_error == (0.0 if exact else 0.01)
        return board_scopes(q, calendar=context.calendar())


@pytest.fixture(params=[False, True], ids=["pre-aggregated", "exact"])
def scopes(make_probe, tmp_path: Path, request) -> pd.DataFrame:
    return build(make_probe, tmp_path / "data", days=5, exact=request.param)


def test_the_pooled_week_is_good_and_the_clinics_are_not(scopes: pd.DataFrame) -> None:
    clinic = scopes[scopes["site"] == "clinic"].set_index("scope")
    pooled, clinics = clinic.loc["all hours"], clinic.loc["outpatient clinics"]
    assert pooled["apdex"].rating == "Excellent" and pooled["samples"] == 5 * 96
    assert clinics["samples"] == 5 * 8 and clinics["frustrated_share"] == pytest.approx(1 / 8)
    # Apdex alone reads 0.88 "Good" in the clinics: the flag must not rely on it.
    assert clinics["apdex"].rating == "Good"
    # The hour of the stall (20 runs, 5 of them frustrated) is found without any period naming it.
    hours = clinic[clinic["kind"] == "hours"]
    assert list(hours.index) == ["14:00\u201315:00"]
    assert hours.iloc[0]["frustrated_share"] == pytest.approx(5 / 20)
    assert "outpatient clinics" not in set(scopes[scopes["site"] == "ward"]["scope"])  # not a ward period


def test_a_row_is_rated_by_its_worst_part_of_the_day(scopes: pd.DataFrame) -> None:
    rows = worst_scopes(scopes).set_index("site")
    assert rows.loc["clinic", "rating"] == "Fair"  # the hour of the stall: Apdex 0.75
    assert rows.loc["clinic", "worst"]["scope"] == "14:00\u201315:00"
    assert rows.loc["ward", "rating"] == "Excellent" and rows.loc["ward", "worst"]["kind"] == "all"
    assert list(worst_scopes(scopes)["site"]) == ["clinic", "ward"]  # worst first


def test_a_row_is_never_rated_good_beside_a_period_where_one_run_in_ten_is_frustrated(
        make_probe, tmp_path: Path) -> None:
    # Two days: 8 runs an hour, too few to judge an hour on its own; the clinics' Apdex reads Good.
    scopes = build(make_probe, tmp_path / "data", days=2)
    assert "hours" not in set(scopes["kind"])
    rows = worst_scopes(scopes).set_index("site")
    clinic = rows.loc["clinic"]
    assert clinic["worst"]["apdex"].rating == "Good"
    assert clinic["rating"] == "Flagged" and clinic["worst"]["scope"] == "outpatient clinics"
    assert clinic["worst"]["frustrated_share"] == pytest.approx(1 / 8)
    assert 1 / 8 >= FRUSTRATED_SHARE


def test_a_rating_needs_enough_runs_that_one_run_cannot_decide_it() -> None:
    # One run moves a score of n runs by 1/n; Excellent is 0.94-1.00 wide, the narrowest band.
    assert 1 / (MIN_RATED_RUNS - 1) > 0.06 >= 1 / MIN_RATED_RUNS
    assert MIN_RATED_RUNS < SMALL_GROUP_SAMPLES  # from it up to 99 runs: rated, with the small group's "*"


def test_a_workflow_with_one_run_is_too_few_to_rate_not_excellent(make_probe, tmp_path: Path) -> None:
    """A workflow run once in the window (a quick run: Apdex 1.00) is not Excellent: the board says
    plainly it has too few runs to rate, below those it can rate; and the page shows it so."""
    memory = InMemorySpanExporter()
    ward = make_probe(site="ward", timezone="UTC", exporter=memory)
    for quarter in range(40):  # 40 quick record openings and a single quick handover, the day before NOW
        ward.run(int((NOW - dt.timedelta(hours=20, minutes=15 * quarter)).timestamp()) * 10**9,
                 steps=(("read", 0.3),))
    ward.run(int((NOW - dt.timedelta(hours=3)).timestamp()) * 10**9, workflow="handover", steps=(("list", 0.2),))
    path = tmp_path / "data"
    ParquetSpanExporter(path).export(memory.get_finished_spans())
    context = replace(_context(path), workflows=(*_context(path).workflows, WorkflowInfo("handover", threshold_s=T_S)))
    with analysis.open_store(path) as store:
        q = ask(store, Filters(window="7d").run_filter(NOW, "UTC"), definitions(context), exact=True)
        rows = worst_scopes(board_scopes(q, calendar=context.calendar()))
    assert list(rows["workflow"]) == ["open_patient_record", "handover"]  # rated first, unrated last
    handover, record = rows.set_index("workflow").loc["handover"], rows.set_index("workflow").loc["open_patient_record"]
    assert handover["pooled"]["apdex"].rating == "Excellent"  # what the board said before
    assert rating_words(handover, T_S) == "too few runs to rate (n = 1)"
    assert rating_words(record, T_S) == "Excellent"
    assert apdex_rating(handover["pooled"]["apdex"]) == "too few runs to rate"
    assert apdex_rating(record["pooled"]["apdex"]) == "Excellent"
    with DashboardServer(create_app(context), port=0) as server:
        response = route(server.url.rstrip("/"), "/", "?window=7d")
        workflow = json.dumps(route(server.url.rstrip("/"), "/workflow", "?workflow=handover").json(),
                              ensure_ascii=False)
    assert response.status_code == 200, response.text[:500]
    text = json.dumps(response.json(), ensure_ascii=False)
    assert "too few runs to rate (n = 1)" in text
    assert text.count('"Excellent"') == 1  # the record opening's, not the handover's
    # the workflow page does not rate it either
    assert "Apdex 1.00 [1.0]* (too few runs to rate) over 1 run; 0 did not complete." in workflow


def test_the_workflow_page_says_its_apdex_is_over_all_hours_and_names_the_worst_part(
        make_probe, tmp_path: Path) -> None:
    """The workflow page's all-hours Apdex reads Excellent beside the board's Fair: one line says why."""
    scopes = build(make_probe, tmp_path / "data", days=5, exact=True)
    clinic = worst_scopes(scopes[scopes["site"] == "clinic"])
    expected = ("That is over all hours; the overview rates by the worst part of the day, which at Outpatient "
                "clinic is Fair at 14:00\u201315:00 (0.75 [1.0]*).")
    titles = {"clinic": "Outpatient clinic", "ward": "Ward 7"}.get
    assert all_hours_line(clinic, T_S, titles) == expected
    ward = worst_scopes(scopes[scopes["site"] == "ward"])
    assert all_hours_line(ward, T_S, titles).endswith("which at Ward 7 is Excellent (no part of the day rates worse).")
    with DashboardServer(create_app(_context(tmp_path / "data")), port=0) as server:
        url = server.url.rstrip("/")
        shown = json.dumps(route(url, "/workflow", "?workflow=open_patient_record&site=clinic").json(),
                           ensure_ascii=False)
        during = json.dumps(route(url, "/workflow", "?workflow=open_patient_record&site=clinic"
                                  "&period=outpatient+clinics").json(), ensure_ascii=False)
    assert "Apdex 0.99 [1.0] (Excellent)" in shown and json.dumps(expected, ensure_ascii=False) in shown
    assert "worst part of the day" not in during  # a period chosen: the figure is not over all hours


def test_the_pages_write_a_count_of_thousands_with_a_comma(make_probe, tmp_path: Path) -> None:
    build(make_probe, tmp_path / "data", days=6, exact=True)  # 6 x 96 runs at each of two sites
    with DashboardServer(create_app(_context(tmp_path / "data")), port=0) as server:
        shown = json.dumps(route(server.url.rstrip("/"), "/workflow", "?workflow=open_patient_record").json(),
                           ensure_ascii=False)
    assert "over 1,152 runs; 0 did not complete." in shown
    assert "(n = 1,152 runs)" in shown and "1152" not in shown


def test_a_fair_week_is_flagged_where_an_hour_too_small_to_rate_is_frustrated() -> None:
    """A handover run every 2 hours: its afternoon hour (7 runs in a week, every one waiting over
    4T) is too small to rate, and the week pooled reads Fair; the board must still say where."""
    from analysis.apdex import Apdex

    def scope(kind: str, name: str, samples: int, satisfied: int, frustrated: int) -> dict[str, object]:
        tolerating = samples - satisfied - frustrated
        score = (satisfied + tolerating / 2) / samples
        return {"workflow": "ward_handover", "site": "ward", "kind": kind, "scope": name, "samples": samples,
                "apdex": Apdex(score, 15.0, samples, satisfied, tolerating, frustrated, 0),
                "frustrated_share": frustrated / samples}

    scopes = pd.DataFrame([scope("all", "all hours", 84, 66, 14), scope("hours", "14:00\u201315:00", 7, 0, 7)])
    assert scopes.at[0, "apdex"].rating == "Fair" and scopes.at[1, "samples"] < MIN_RATED_RUNS
    row = worst_scopes(scopes).iloc[0]
    assert row["rating"] == "Flagged" and row["worst"]["scope"] == "14:00\u201315:00"
    assert rating_words(row, 15.0) == "Flagged: 100% of runs over 60 s at 14:00\u201315:00"


def test_the_workflow_page_says_what_a_period_applies_to_and_a_site_without_it(make_probe, tmp_path: Path) -> None:
    """Ward rounds chosen at a site that has none read 'NS over 0 runs' above charts of every run."""
    build(make_probe, tmp_path / "data", days=2, exact=True)
    with DashboardServer(create_app(_context(tmp_path / "data")), port=0) as server:
        url = server.url.rstrip("/")
        ward = json.dumps(route(url, "/workflow", "?workflow=open_patient_record&site=ward"
                                "&period=outpatient+clinics").json(), ensure_ascii=False)
        clinic = json.dumps(route(url, "/workflow", "?workflow=open_patient_record&site=clinic"
                                  "&period=outpatient+clinics").json(), ensure_ascii=False)
        pooled = json.dumps(route(url, "/workflow", "?workflow=open_patient_record&site=clinic").json(),
                            ensure_ascii=False)
    assert ("Ward 7 has no outpatient clinics in its calendar (they are kept at Outpatient clinic), so no run "
            "falls in them.") in ward
    assert "over all hours of the window" in ward and "over all hours of the window" in clinic
    assert "has no outpatient clinics" not in clinic and "workflow-period-note" not in pooled


def test_a_row_flagged_over_all_hours_says_so_in_words() -> None:
    from analysis.apdex import Apdex

    pooled = {"workflow": "ward_handover", "site": "ward", "kind": "all", "scope": "all hours", "samples": 36,
              "apdex": Apdex(0.83, 15.0, 36, 28, 4, 4, 0), "frustrated_share": 6 / 36}
    row = worst_scopes(pd.DataFrame([pooled])).iloc[0]
    assert rating_words(row, 15.0) == "Flagged: 17% of runs over 60 s (all hours)"
