"""An older store is upgraded in place, by the demo on its own store and on request."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import connect, read_schema_version, schema, write_spans
from store.layout import WRITTEN_ARROW_SCHEMA
from wardwatch import wiring
from wardwatch.errors import UserError


def _version_1_store(data: Path) -> None:
    write_spans(data, [{
        schema.TIMESTAMP: dt.datetime(2026, 10, 5, 8, 0, tzinfo=dt.UTC),
        schema.TRACE_ID: "a" * 32,
        schema.SPAN_ID: "b" * 16,
        schema.SPAN_ATTRIBUTES: {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_RUN_WAITING_S: "4.25",
            schema.ATTR_RUN_STATUS: schema.RUN_OK,
        },
    }])
    for segment in data.glob("spans/*/*.parquet"):  # as version 1 wrote it: no typed columns
        pq.write_table(pq.read_table(segment).select(WRITTEN_ARROW_SCHEMA.names), segment)
    (data / "store.json").write_text(json.dumps({"schema_version": 1}))


def test_upgrade_says_what_it_does_and_the_store_reads_again(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    _version_1_store(data)
    assert wiring.upgrade(data) == 1
    assert "schema version" in capsys.readouterr().err
    assert read_schema_version(data) == schema.SCHEMA_VERSION
    assert connect(data).execute("SELECT waiting_s, status FROM runs").fetchall() == [(4.25, "ok")]
    assert wiring.upgrade(data) == 0
    assert wiring.upgrade(tmp_path / "no-store-yet") == 0


def test_a_store_of_an_unknown_version_is_a_user_error(tmp_path) -> None:
    data = tmp_path / "data"
    _version_1_store(data)
    (data / "store.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(UserError, match="cannot be upgraded"):
        wiring.upgrade(data)
