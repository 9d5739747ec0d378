"""Typed columns promoted at write time, and upgrading a store written before them.

The promoted columns must say exactly what DuckDB's ``TRY_CAST`` of the map values says (the
views read them in place of the maps), and a version-1 store must upgrade in place losing nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import (
    SPAN_ARROW_SCHEMA,
    StoreError,
    compact,
    connect,
    list_segments,
    read_schema_version,
    schema,
    upgrade_store,
    write_spans,
)
from store.layout import COMPACTED_PREFIX, WRITTEN_ARROW_SCHEMA
from store.promote import PROMOTED_COLUMNS
from store.reader import read_replaces

T0 = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)


def _row(n: int, attrs: dict[str, str], resource: dict[str, str] | None = None) -> dict:
    return {
        schema.TIMESTAMP: T0 + dt.timedelta(seconds=n),
        schema.TRACE_ID: f"{n:032x}",
        schema.SPAN_ID: f"{n + 1:016x}",
        schema.SPAN_ATTRIBUTES: attrs,
        schema.RESOURCE_ATTRIBUTES: resource or {},
    }


def _stored(tmp_path: Path, rows: list[dict]) -> list[dict]:
    write_spans(tmp_path / "data", rows)
    con = connect(tmp_path / "data")
    names = ", ".join(f'"{c.name}"' for c in PROMOTED_COLUMNS)
    query = f'SELECT {names} FROM spans ORDER BY "{schema.TIMESTAMP}"'
    return con.execute(query).arrow().read_all().to_pylist()


def test_each_attribute_lands_in_its_typed_column(tmp_path: Path) -> None:
    attrs = {
        schema.ATTR_RUN_STATUS: "ok",
        schema.ATTR_RUN_WAITING_S: "2.5",
        schema.ATTR_STEP_INDEX: "3",
        schema.ERROR_TYPE: "timeout",
        schema.HTTP_RESPONSE_STATUS_CODE: "503",
        schema.HTTP_REQUEST_METHOD: "GET",
        schema.URL_TEMPLATE: "/Patient/{id}",
        schema.ATTR_DNS_S: "0.001",
        schema.ATTR_CONNECT_S: "0.002",
        schema.ATTR_TLS_S: "0.003",
        schema.ATTR_TTFB_S: "0.25",
        schema.ATTR_TRANSFER_S: "0.004",
        schema.ATTR_RESPONSE_BYTES: "1234",
        schema.ATTR_BUNDLE_PAGES: "2",
        schema.ATTR_SLOT: "2026-11-27T08:30:00.000+00:00",
        schema.ATTR_SLOT_OFFSET_S: "0.75",
        schema.ATTR_MISSED_REASON: "busy",
    }
    resource = {
        schema.ATTR_SIMULATED: "true",
        schema.ATTR_SITE_TIMEZONE: "Europe/London",
        schema.ATTR_PROBE_ID: "probe-1",
    }
    [got] = _stored(tmp_path, [_row(0, attrs, resource)])
    assert got == {
        schema.RUN_STATUS: "ok",
        schema.WAITING_S: 2.5,
        schema.STEP_INDEX: 3,
        schema.ERROR_TYPE_COLUMN: "timeout",
        schema.HTTP_STATUS_CODE: 503,
        schema.HTTP_METHOD: "GET",
        schema.URL_TEMPLATE_COLUMN: "/Patient/{id}",
        schema.DNS_S: 0.001,
        schema.CONNECT_S: 0.002,
        schema.TLS_S: 0.003,
        schema.TTFB_S: 0.25,
        schema.TRANSFER_S: 0.004,
        schema.RESPONSE_BYTES: 1234,
        schema.BUNDLE_PAGES: 2,
        schema.SLOT: dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC),
        schema.SLOT_OFFSET_S: 0.75,
        schema.MISSED_REASON: "busy",
        schema.SIMULATED: True,
        schema.SITE_TIMEZONE: "Europe/London",
        schema.PROBE_ID: "probe-1",
    }


def test_absent_empty_and_unparsable_values_are_null(tmp_path: Path) -> None:
    rows = [
        _row(0, {}),
        _row(1, {schema.ERROR_TYPE: "", schema.ATTR_RUN_WAITING_S: "soon",
                 schema.HTTP_RESPONSE_STATUS_CODE: "2xx", schema.ATTR_SLOT: "yesterday"}),
        _row(2, {schema.ATTR_STEP_INDEX: "1.5", schema.ATTR_RESPONSE_BYTES: "12.0"},
             {schema.ATTR_SIMULATED: "false"}),
    ]
    got = _stored(tmp_path, rows)
    assert all(v is None for k, v in got[0].items() if k != schema.SIMULATED)
    assert [g[schema.SIMULATED] for g in got] == [False, False, False]
    assert got[1][schema.ERROR_TYPE_COLUMN] is None
    assert got[1][schema.WAITING_S] is None
    assert got[1][schema.HTTP_STATUS_CODE] is None
    assert got[1][schema.SLOT] is None
    assert got[2][schema.STEP_INDEX] is None  # not a whole number, as TRY_CAST('1.5' AS BIGINT)
    assert got[2][schema.RESPONSE_BYTES] == 12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-10**12, 10**12).map(str),
    st.text(max_size=6),
), min_size=1, max_size=8))
def test_numbers_agree_with_duckdb_try_cast(values: list[str]) -> None:
    from store.promote import promote

    table = pa.table(
        {
            schema.SPAN_ATTRIBUTES: pa.array(
                [[(schema.ATTR_RUN_WAITING_S, v)] for v in values],
                pa.map_(pa.string(), pa.string()),
            ),
            schema.RESOURCE_ATTRIBUTES: pa.array(
                [[] for _ in values], pa.map_(pa.string(), pa.string())
            ),
        }
    )
    ours = promote(table).column(schema.WAITING_S).to_pylist()
    con = duckdb.connect()
    theirs = [con.execute("SELECT TRY_CAST(? AS DOUBLE)", [v]).fetchall()[0][0] for v in values]
    for a, b, raw in zip(ours, theirs, values, strict=True):
        if b is None or (isinstance(b, float) and not math.isfinite(b)):
            continue  # DuckDB also reads 'inf'/'nan' words and padded forms; we may leave those null
        assert a == b, raw


def _write_version_1_store(data: Path, tables: list[pa.Table]) -> None:
    """A store as version 1 wrote it: no promoted columns, version 1 in the marker."""
    partition = data / "spans" / "date=2026-11-27"
    partition.mkdir(parents=True)
    (data / "store.json").write_text(json.dumps({"schema_version": 1}))
    for i, table in enumerate(tables):
        pq.write_table(table.select(WRITTEN_ARROW_SCHEMA.names), partition / f"2026112{i}.parquet")


def test_a_version_1_store_is_refused_with_the_command_that_upgrades_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_version_1_store(data, [])
    with pytest.raises(StoreError, match=r"version 1.*wardwatch upgrade-store"):
        connect(data)


def test_upgrade_rewrites_every_segment_and_keeps_what_merged_segments_replace(tmp_path: Path) -> None:
    new = tmp_path / "new"
    rows = [
        _row(n, {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_RUN_WAITING_S: str(n / 4),
                 schema.ATTR_RUN_STATUS: "ok", schema.ATTR_WORKFLOW: "open-record"})
        for n in range(6)
    ]
    write_spans(new, rows[:3])
    write_spans(new, rows[3:])
    compact(new, small_bytes=1 << 30, grace_s=3600)
    segments = list_segments(new)
    [merged] = [s for s in segments if s.name.startswith(COMPACTED_PREFIX)]
    replaced = read_replaces(merged)
    # The same files as version 1 would have held them: the merged one and both it replaced.
    data = tmp_path / "data"
    partition = data / "spans" / merged.parent.name
    partition.mkdir(parents=True)
    (data / "store.json").write_text(json.dumps({"schema_version": 1}))
    for segment in sorted(merged.parent.glob("*.parquet")):
        table = pq.ParquetFile(segment).read()
        old = table.select(WRITTEN_ARROW_SCHEMA.names).replace_schema_metadata(table.schema.metadata)
        pq.write_table(old, partition / segment.name)

    assert upgrade_store(data) == 3
    assert read_schema_version(data) == schema.SCHEMA_VERSION
    assert read_replaces(partition / merged.name) == replaced
    assert pq.read_schema(partition / merged.name).names == SPAN_ARROW_SCHEMA.names
    con = connect(data)
    waits = [r[0] for r in con.execute("SELECT waiting_s FROM runs ORDER BY start").fetchall()]
    assert waits == [n / 4 for n in range(6)]  # each span once: the replaced inputs stay hidden
    assert upgrade_store(data) == 0  # already this version: nothing to do
