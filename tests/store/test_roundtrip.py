"""Spans written by the exporter read back, column by column, as the in-memory exporter saw them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import SPAN_ARROW_SCHEMA, connect, list_segments, schema
from store.writer import render_attribute_value

NS = 1_000_000_000
START_NS = int(dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC).timestamp()) * NS + 123_456_789


def _rows(con, query: str) -> list[dict]:
    return con.execute(query).to_arrow_table().to_pylist()


def _rendered(attributes) -> dict[str, str]:
    return {k: render_attribute_value(v) for k, v in dict(attributes).items()}


def test_spans_view_matches_the_in_memory_spans(make_probe, tmp_path: Path) -> None:
    probe = make_probe()
    probe.run(START_NS, failed_step="read_patient")
    expected = {format(s.context.span_id, "016x"): s for s in probe.memory.get_finished_spans()}
    assert len(expected) == 3

    with connect(tmp_path / "data") as con:
        rows = _rows(con, "SELECT * FROM spans")
    assert len(rows) == len(expected)
    for row in rows:
        span = expected[row[schema.SPAN_ID]]
        assert row[schema.TRACE_ID] == format(span.context.trace_id, "032x")
        assert row[schema.PARENT_SPAN_ID] == (
            format(span.parent.span_id, "016x") if span.parent else ""
        )
        assert row[schema.SPAN_NAME] == span.name
        assert row[schema.SPAN_KIND] == ("Client" if span.parent else "Internal")
        assert row[schema.SERVICE_NAME] == "wardwatch-probe"
        assert row[schema.SCOPE_NAME] == "wardwatch.collector"
        assert row[schema.SCOPE_VERSION] == "0.1.0"
        assert dict(row[schema.SPAN_ATTRIBUTES]) == _rendered(span.attributes)
        assert dict(row[schema.RESOURCE_ATTRIBUTES]) == _rendered(span.resource.attributes)
        assert row[schema.DURATION] == span.end_time - span.start_time
        # DuckDB reads zoned timestamps at microsecond precision; the file keeps nanoseconds.
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        delta = row[schema.TIMESTAMP] - epoch
        assert delta // dt.timedelta(microseconds=1) == span.start_time // 1000
        assert row[schema.STATUS_CODE] == span.status.status_code.name.capitalize()
        assert row[schema.STATUS_MESSAGE] == (span.status.description or "")
        assert [e["Name"] for e in row[schema.EVENTS]] == [e.name for e in span.events]
        for stored, event in zip(row[schema.EVENTS], span.events, strict=True):
            assert dict(stored["Attributes"]) == _rendered(event.attributes)
        assert row[schema.SITE] == "Ward 7"
        assert row[schema.WORKFLOW] == span.attributes.get(schema.ATTR_WORKFLOW)
        assert row[schema.STEP] == span.attributes.get(schema.ATTR_STEP)
        assert row[schema.SPAN_TYPE] == span.attributes[schema.ATTR_SPAN_TYPE]
        assert row["date"] == dt.date(2026, 11, 27)


def test_segment_files_have_the_exact_arrow_schema_and_nanoseconds(make_probe, tmp_path) -> None:
    probe = make_probe()
    probe.run(START_NS)
    starts = sorted(s.start_time for s in probe.memory.get_finished_spans())
    segments = list_segments(tmp_path / "data")
    assert segments
    tables = [pq.read_table(p) for p in segments]
    for table in tables:
        assert table.schema.remove_metadata().equals(SPAN_ARROW_SCHEMA)
    stored = sorted(
        ns for t in tables for ns in t.column(schema.TIMESTAMP).cast("int64").to_pylist()
    )
    assert stored == starts


def test_span_kinds_and_status_codes_use_the_clickhouse_spelling(make_probe, tmp_path) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    probe = make_probe()
    tracer = probe.provider.get_tracer("t")
    for kind in (SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER):
        span = tracer.start_span(kind.name, kind=kind, start_time=START_NS)
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=START_NS + 5)
    with connect(tmp_path / "data") as con:
        rows = _rows(con, 'SELECT "SpanName", "SpanKind", "StatusCode", "Duration" FROM spans')
    assert {r["SpanName"]: (r["SpanKind"], r["StatusCode"], r["Duration"]) for r in rows} == {
        "SERVER": ("Server", "Ok", 5),
        "PRODUCER": ("Producer", "Ok", 5),
        "CONSUMER": ("Consumer", "Ok", 5),
    }


def test_site_comes_from_the_span_attribute_before_the_resource(make_probe, tmp_path) -> None:
    probe = make_probe(site="Ward 7")
    tracer = probe.provider.get_tracer("t")
    tracer.start_span("a", attributes={schema.ATTR_SITE: "Clinic 2"}, start_time=START_NS).end(
        end_time=START_NS + 1
    )
    tracer.start_span("b", start_time=START_NS).end(end_time=START_NS + 1)
    with connect(tmp_path / "data") as con:
        rows = _rows(con, 'SELECT "SpanName", "Site" FROM spans ORDER BY 1')
    assert rows == [{"SpanName": "a", "Site": "Clinic 2"}, {"SpanName": "b", "Site": "Ward 7"}]


def test_runs_and_steps_views(make_probe, tmp_path: Path) -> None:
    probe = make_probe(simulated=True)
    probe.run(START_NS, steps=(("find_patient", 0.25), ("read_patient", 0.5)), think_s=1.0)
    with connect(tmp_path / "data") as con:
        runs = _rows(con, "SELECT * FROM runs")
        steps = _rows(con, "SELECT * FROM steps ORDER BY step_index")
    assert len(runs) == 1
    run = runs[0]
    assert run["workflow"] == "open_patient_record"
    assert run["site"] == "Ward 7"
    assert run["status"] == "ok"
    assert run["error_type"] is None
    assert run["waiting_s"] == 0.75
    assert run["wall_s"] == pytest.approx(1.75)
    assert run["slot"] == dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)
    assert run["slot_offset_s"] == 0.012
    assert run["simulated"] is True
    assert run["site_timezone"] == "Europe/London"
    assert [s["step"] for s in steps] == ["find_patient", "read_patient"]
    assert [s["step_index"] for s in steps] == [0, 1]
    assert all(s["workflow"] == "open_patient_record" for s in steps)  # from the run
    assert all(s["trace_id"] == run["trace_id"] for s in steps)
    assert all(s["parent_span_id"] == run["span_id"] for s in steps)
    assert [s["duration_s"] for s in steps] == [0.25, 0.5]
    assert steps[0]["dns_s"] == 0.001 and steps[1]["dns_s"] is None
    assert steps[1]["ttfb_s"] == 0.4
    assert [s["http_status"] for s in steps] == [200, 200]
    assert [s["response_bytes"] for s in steps] == [1234, 1235]
    assert [s["status"] for s in steps] == ["ok", "ok"]


def test_failed_run_and_step_status(make_probe, tmp_path: Path) -> None:
    probe = make_probe()
    probe.run(START_NS, steps=(("find_patient", 0.1), ("read_patient", 0.1), ("notes", 0.1)),
              failed_step="read_patient")
    with connect(tmp_path / "data") as con:
        run = _rows(con, "SELECT status, error_type FROM runs")
        steps = _rows(con, "SELECT step, status, error_type, http_status FROM steps ORDER BY start")
    assert run == [{"status": "failed", "error_type": "http_5xx"}]
    assert steps == [
        {"step": "find_patient", "status": "ok", "error_type": None, "http_status": 200},
        {"step": "read_patient", "status": "failed", "error_type": "http_5xx", "http_status": 500},
    ]


def test_partitions_by_utc_date(make_probe, tmp_path: Path) -> None:
    probe = make_probe()
    tracer = probe.provider.get_tracer("t")
    midnight = int(dt.datetime(2026, 11, 28, tzinfo=dt.UTC).timestamp()) * NS
    tracer.start_span("before", start_time=midnight - NS // 10).end(end_time=midnight + NS)
    tracer.start_span("at", start_time=midnight).end(end_time=midnight + 1)
    data = tmp_path / "data"
    dirs = sorted(p.parent.name for p in list_segments(data))
    assert dirs == ["date=2026-11-27", "date=2026-11-28"]
    with connect(data) as con:
        rows = _rows(con, 'SELECT "SpanName", date FROM spans ORDER BY "Timestamp"')
    assert rows == [
        {"SpanName": "before", "date": dt.date(2026, 11, 27)},
        {"SpanName": "at", "date": dt.date(2026, 11, 28)},
    ]
