"""analysis.open_store: runs and steps frames, filters and SQL over real Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import analysis
from analysis import RUN_COLUMNS, STEP_COLUMNS, open_store
from store import StoreError, init_store

NS = 1_000_000_000
T0 = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)


def _ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * NS


@pytest.fixture
def data(tmp_path: Path, make_probe) -> Path:
    """Three runs at Ward 7, one at Clinic 2 (a failed one), one of another workflow."""
    ward, clinic = make_probe(site="Ward 7"), make_probe(site="Clinic 2", simulated=True)
    ward.run(_ns(T0 + dt.timedelta(minutes=2)), steps=(("find_patient", 0.5), ("notes", 1.5)))
    ward.run(_ns(T0), steps=(("find_patient", 0.25), ("notes", 0.75)))
    ward.run(_ns(T0 + dt.timedelta(minutes=1)), workflow="handover", steps=(("list", 2.0),))
    clinic.run(_ns(T0 + dt.timedelta(minutes=1, seconds=30)),
               steps=(("find_patient", 0.125), ("notes", 4.0)), failed_step="notes")
    return tmp_path / "data"


def test_runs_frame_has_exactly_the_documented_columns(data: Path) -> None:
    with open_store(data) as store:
        runs = store.runs()
    assert tuple(runs.columns) == RUN_COLUMNS == (
        "trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s",
        "slot", "simulated",
    )
    assert str(runs["start"].dtype).endswith(", UTC]")
    assert str(runs["slot"].dtype).endswith(", UTC]")
    assert runs["simulated"].dtype == bool
    assert runs["waiting_s"].dtype == "float64"
    assert runs["start"].is_monotonic_increasing
    assert list(runs["workflow"]) == [
        "open_patient_record", "handover", "open_patient_record", "open_patient_record"
    ]
    assert list(runs["site"]) == ["Ward 7", "Ward 7", "Clinic 2", "Ward 7"]
    assert list(runs["status"]) == ["ok", "ok", "failed", "ok"]
    assert list(runs["error_type"].isna()) == [True, True, False, True]
    assert list(runs["waiting_s"]) == [1.0, 2.0, 4.125, 2.0]
    assert list(runs["wall_s"]) == pytest.approx([1.05, 2.0, 4.175, 2.05])
    assert list(runs["simulated"]) == [False, False, True, False]
    assert runs["start"].iloc[0] == pd.Timestamp(T0)


def test_steps_frame_has_exactly_the_documented_columns(data: Path) -> None:
    with open_store(data) as store:
        steps = store.steps()
    assert tuple(steps.columns) == STEP_COLUMNS == (
        "trace_id", "span_id", "start", "workflow", "site", "step", "step_index", "status",
        "error_type", "http_status", "duration_s", "dns_s", "connect_s", "tls_s", "ttfb_s",
        "transfer_s", "response_bytes",
    )
    assert len(steps) == 7
    assert steps["start"].is_monotonic_increasing
    assert str(steps["step_index"].dtype) == "Int64"
    assert str(steps["http_status"].dtype) == "Int64"
    failed = steps[steps["status"] != "ok"]
    assert list(failed["step"]) == ["notes"]
    assert list(failed["site"]) == ["Clinic 2"]
    assert list(failed["error_type"]) == ["http_5xx"]
    assert list(failed["http_status"]) == [500]
    assert list(failed["duration_s"]) == [4.0]
    first = steps.iloc[0]
    assert (first["step"], first["step_index"], first["duration_s"]) == ("find_patient", 0, 0.25)
    assert first["dns_s"] == 0.001 and pd.isna(steps.iloc[1]["dns_s"])
    assert first["ttfb_s"] == pytest.approx(0.2)


def test_filters(data: Path) -> None:
    with open_store(data) as store:
        assert len(store.runs(workflow="handover")) == 1
        assert len(store.runs(workflow=["handover", "open_patient_record"])) == 4
        assert list(store.runs(site="Clinic 2")["status"]) == ["failed"]
        window = store.runs(start=T0 + dt.timedelta(minutes=1),
                            end=pd.Timestamp("2026-11-27T08:32:00Z"))
        assert list(window["workflow"]) == ["handover", "open_patient_record"]
        assert set(store.steps(site="Ward 7", workflow="open_patient_record")["step"]) == {
            "find_patient", "notes"
        }
        assert len(store.runs(site="Nowhere")) == 0
        with pytest.raises(ValueError, match="timezone-aware"):
            store.runs(start=dt.datetime(2026, 11, 27))


def test_filter_values_are_parameters_not_sql(data: Path) -> None:
    with open_store(data) as store:
        assert len(store.runs(site="x' OR '1'='1")) == 0
        assert len(store.runs()) == 4


def test_sql_over_the_views(data: Path) -> None:
    with open_store(data) as store:
        frame = store.sql(
            "SELECT site, count(*) AS runs FROM runs WHERE workflow = ? GROUP BY site ORDER BY site",
            ["open_patient_record"],
        )
        assert frame.to_dict("records") == [
            {"site": "Clinic 2", "runs": 1}, {"site": "Ward 7", "runs": 2}
        ]
        spans = store.sql('SELECT count(*) AS n FROM spans')
        assert spans["n"].iloc[0] == 11


def test_sql_joins_a_table_passed_with_the_query(data: Path) -> None:
    with open_store(data) as store:
        ward = store.runs(site="Ward 7", workflow="open_patient_record")
        wanted = pd.DataFrame({"trace_id": ward["trace_id"].iloc[:1].astype(str)})
        frame = store.sql("SELECT step FROM steps JOIN wanted USING (trace_id) ORDER BY step",
                          tables={"wanted": wanted})
        assert frame["step"].tolist() == ["find_patient", "notes"]
        with pytest.raises(duckdb.CatalogException, match="wanted"):  # for one query only
            store.sql("SELECT * FROM wanted")


def test_new_segments_are_seen_by_an_open_store(tmp_path: Path, make_probe) -> None:
    data = tmp_path / "data"
    init_store(data)
    with open_store(data) as store:
        assert len(store.runs()) == 0
        make_probe(path=data).run(_ns(T0))
        assert len(store.runs()) == 1


def test_an_empty_store_gives_empty_frames_with_the_columns(tmp_path: Path) -> None:
    init_store(tmp_path)
    with analysis.open_store(tmp_path) as store:
        runs, steps = store.runs(), store.steps()
    assert tuple(runs.columns) == RUN_COLUMNS and len(runs) == 0
    assert tuple(steps.columns) == STEP_COLUMNS and len(steps) == 0
    assert str(runs["start"].dtype).endswith(", UTC]")


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a Wardwatch store"):
        open_store(tmp_path / "missing")


def test_period_filter_uses_the_calendar(data: Path) -> None:
    from analysis import ClinicalCalendar
    from analysis.config import PeriodConfig

    # 08:31-08:32 UTC on Friday 27 November is 08:31-08:32 in London (GMT).
    early = PeriodConfig(name="early", start=dt.time(8, 30), end=dt.time(8, 31, 45))
    calendar = ClinicalCalendar([early], {"Ward 7": "Europe/London", "Clinic 2": "Europe/London"})
    with open_store(data, calendar=calendar) as store:
        runs = store.runs(period="early")
        assert list(runs["start"].dt.strftime("%H:%M:%S")) == ["08:30:00", "08:31:00", "08:31:30"]
        assert len(store.steps(period="early", site="Ward 7")) == 3
    with open_store(data) as store, pytest.raises(ValueError, match="needs a calendar"):
        store.runs(period="early")


def test_an_open_store_follows_compaction(tmp_path: Path, make_probe) -> None:
    from store import compact

    data = tmp_path / "data"
    probe = make_probe(path=data)
    for minute in range(5):
        probe.run(_ns(T0 + dt.timedelta(minutes=minute)))
    with open_store(data) as store:
        before = store.runs()
        assert len(before) == 5
        report = compact(data, grace_s=0)
        assert report.merged
        after_merge = store.runs()
        compact(data, grace_s=0)  # deletes the merged-away segments
        after_delete = store.steps()
    pd.testing.assert_frame_equal(before, after_merge)
    assert len(after_delete) == 10


def test_requests_and_missed_slots_frames(tmp_path: Path, make_probe) -> None:
    from analysis import MISSED_SLOT_COLUMNS, REQUEST_COLUMNS
    from store import schema

    data = tmp_path / "data"
    probe = make_probe(path=data)
    probe.run(_ns(T0), steps=(("find_patient", 0.25), ("notes", 0.5)))
    slot = T0 + dt.timedelta(minutes=1)
    tracer = probe.provider.get_tracer("t")
    tracer.start_span("missed slot", start_time=_ns(slot), attributes={
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT, schema.ATTR_WORKFLOW: "handover",
        schema.ATTR_SITE: "Ward 7", schema.ATTR_SLOT: slot.isoformat(),
        schema.ATTR_MISSED_REASON: "probe_down",
    }).end(end_time=_ns(slot))
    with open_store(data) as store:
        requests = store.requests()
        assert tuple(requests.columns) == REQUEST_COLUMNS
        assert list(requests["step"]) == ["find_patient", "notes"]
        assert list(requests["duration_s"]) == [0.25, 0.5]
        assert set(requests["source"]) == {"probe"}
        assert len(store.requests(source="server")) == 0
        missed = store.missed_slots()
        assert tuple(missed.columns) == MISSED_SLOT_COLUMNS
        assert missed.to_dict("records")[0] | {"trace_id": None} == {
            "trace_id": None, "slot": pd.Timestamp(slot), "workflow": "handover",
            "site": "Ward 7", "reason": "probe_down", "simulated": False,
        }
        assert len(store.missed_slots(end=slot)) == 0
        assert len(store.missed_slots(start=slot, workflow="handover")) == 1


def test_arrow_sorts_as_duckdbs_order_by(data: Path) -> None:
    """Store.arrow sorts in Arrow what an ORDER BY would (ties by the next key, nulls last), so
    frames come in the same order without DuckDB's sort of the whole result."""
    import pyarrow as pa

    rows = pa.table({"moment": pa.array([3, 1, None, 1, 2], pa.int64()), "id": ["c", "b", "a", "a", None]})
    query = "SELECT moment, id FROM t"
    with open_store(data) as store:
        mine = store.arrow(query, order_by=["moment", "id"], tables={"t": rows})
        theirs = store.arrow(query + " ORDER BY moment, id", tables={"t": rows})
        assert mine.to_pylist() == theirs.to_pylist() == [
            {"moment": 1, "id": "a"}, {"moment": 1, "id": "b"}, {"moment": 2, "id": None}, {"moment": 3, "id": "c"},
            {"moment": None, "id": "a"}]
        runs = store.runs()
        assert list(runs["trace_id"]) == list(store.sql(
            "SELECT trace_id FROM runs ORDER BY start, trace_id")["trace_id"])
