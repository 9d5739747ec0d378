"""The store's files: marker and version, temp files, empty stores, failures at the boundary."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from store import (
    ParquetSpanExporter,
    VIEWS,
    StoreError,
    connect,
    init_store,
    list_segments,
    read_schema_version,
    schema,
    write_spans,
)
from store.writer import write_segment

T0 = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)


def _row(span_id: str = "b" * 16, **extra) -> dict:
    return {
        schema.TIMESTAMP: T0,
        schema.TRACE_ID: "a" * 32,
        schema.SPAN_ID: span_id,
        schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN},
        **extra,
    }


def test_a_new_store_records_the_schema_version(tmp_path: Path) -> None:
    ParquetSpanExporter(tmp_path / "data")
    marker = json.loads((tmp_path / "data" / "store.json").read_text())
    assert marker == {"schema_version": schema.SCHEMA_VERSION}
    assert read_schema_version(tmp_path / "data") == schema.SCHEMA_VERSION


def test_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"is not a Wardwatch store.*wardwatch probe"):
        connect(tmp_path / "nothing-here")


@pytest.mark.parametrize("content", ["{", "[]", '{"schema_version": "1"}', "{}"])
def test_a_corrupt_marker_is_a_store_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "store.json").write_text(content)
    with pytest.raises(StoreError, match="store.json"):
        connect(tmp_path)


def test_another_schema_version_is_refused_by_readers_and_writers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_spans(data, [_row()])
    (data / "store.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match=rf"schema version {schema.SCHEMA_VERSION + 1}.*reads version {schema.SCHEMA_VERSION}"):
        connect(data)
    with pytest.raises(StoreError, match="schema version"):
        ParquetSpanExporter(data)
    with pytest.raises(StoreError, match="schema version"):
        write_spans(data, [_row()])


def test_an_empty_store_has_the_views_with_the_same_types(tmp_path: Path) -> None:
    empty, full = tmp_path / "empty", tmp_path / "full"
    init_store(empty)
    write_spans(full, [_row()])
    with connect(empty) as e, connect(full) as f:
        for view in VIEWS:
            empty_types = e.execute(f"DESCRIBE {view}").fetchall()
            full_types = f.execute(f"DESCRIBE {view}").fetchall()
            assert [c[:2] for c in empty_types] == [c[:2] for c in full_types]
            assert e.execute(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
        assert f.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]


def test_readers_ignore_temp_and_hidden_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [segment] = write_spans(data, [_row()])
    (segment.parent / f".{segment.name}.tmp").write_bytes(b"half a parquet file")
    (segment.parent / ".hidden.parquet").write_bytes(b"not parquet either")
    (segment.parent / "notes.txt").write_text("not a segment")
    assert list_segments(data) == [segment]
    with connect(data) as con:
        assert con.execute("SELECT count(*) FROM spans").fetchall() == [(1,)]


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(AttributeError):
        write_segment(tmp_path, "not a table", name="x.parquet")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_write_spans_accepts_a_table_and_refuses_missing_columns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    from store import rows_to_table

    table = rows_to_table([_row("1" * 16), _row("2" * 16)])
    assert len(write_spans(data, table)) == 1
    with pytest.raises(ValueError, match="lacks columns Duration"):
        write_spans(data, table.drop_columns([schema.DURATION]))
    with pytest.raises(ValueError, match="lacks SpanId"):
        write_spans(data, [{schema.TIMESTAMP: T0, schema.TRACE_ID: "a" * 32}])
    with pytest.raises(ValueError, match="timezone-aware"):
        write_spans(data, [_row(**{schema.TIMESTAMP: dt.datetime(2026, 1, 1)})])
    assert write_spans(data, pa.Table.from_pylist([], schema=table.schema)) == []


def test_rows_get_promoted_columns_from_their_attributes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    row = _row(**{
        schema.SPAN_ATTRIBUTES: {schema.ATTR_WORKFLOW: "handover", schema.ATTR_STEP_INDEX: 3},
        schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SITE: "Clinic 2", "service.name": "probe"},
    })
    write_spans(data, [row])
    with connect(data) as con:
        got = con.execute(
            'SELECT "Workflow", "Site", "Step", "ServiceName", "SpanAttributes" FROM spans'
        ).fetchall()
    assert got == [("handover", "Clinic 2", None, "probe",
                    {schema.ATTR_WORKFLOW: "handover", schema.ATTR_STEP_INDEX: "3"})]


def test_export_failure_is_reported_not_raised(tmp_path: Path, make_probe, caplog) -> None:
    data = tmp_path / "data"
    probe = make_probe(path=data)
    # A file where the partition directory should be: the write fails with an OSError.
    (data / "spans" / "date=2026-11-27").write_text("in the way")
    start_ns = int(T0.timestamp()) * 1_000_000_000
    span = probe.provider.get_tracer("t").start_span("x", start_time=start_ns)
    span.end(end_time=start_ns + 1)
    [finished] = probe.memory.get_finished_spans()
    with caplog.at_level(logging.WARNING, logger="store.writer"):
        assert probe.exporter.export([finished]) is SpanExportResult.FAILURE
    # Kept to be written when the store can take it (tests/campaign/test_full_disk.py).
    assert ": 1 spans wait in memory" in caplog.text


def test_a_shared_exporter_outlives_one_providers_shutdown(make_probe, tmp_path) -> None:
    first = make_probe(site="Ward 7")
    second = make_probe(site="Clinic 2", exporter=first.exporter)
    first.provider.shutdown()  # shuts the shared exporter down too
    assert first.exporter.force_flush() is True
    second.run(int(T0.timestamp()) * 1_000_000_000)
    with connect(tmp_path / "data") as con:
        assert con.execute('SELECT DISTINCT "Site" FROM spans').fetchall() == [("Clinic 2",)]
