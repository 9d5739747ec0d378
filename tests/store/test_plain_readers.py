"""The store read from outside Wardwatch (issue 19 item 8): plain DuckDB, pandas or pyarrow over
``spans/**/*.parquet`` count what ``analysis.open_store()`` counts, once compaction has run.

Compaction leaves the segments it replaced on disk for ``grace_s`` (readers that listed them just
before the merge still find them); they used to stay until the next pass, or for good when the
probe stopped first: 1,177 rows for 815 spans.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

import analysis
from store import compact, list_segments, remove_replaced, write_spans
from store.maintenance import Maintenance
from tests.store.test_maintenance import DAY1, DAY2, _rows


def plain_duckdb_count(data: Path) -> int:
    glob = str(data / "spans" / "**" / "*.parquet")
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()[0]


def open_store_count(data: Path) -> int:
    with analysis.open_store(data) as store:
        return int(store.sql("SELECT count(*) AS n FROM spans")["n"][0])


def test_a_stopped_maintenance_leaves_nothing_a_plain_reader_counts_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    maintenance = Maintenance(data, interval_s=0.05, grace_s=3600.0)  # a grace no test outlives
    write_spans(data, _rows(DAY1, 0, 10))
    maintenance.start()
    try:
        for batch in range(1, 30):
            write_spans(data, _rows(DAY1 if batch % 2 else DAY2, batch, 10))
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while maintenance.passes < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        maintenance.run_once()  # a merge of the last batches, its inputs in their grace
    finally:
        maintenance.stop()
    assert maintenance.passes >= 3
    assert open_store_count(data) == 300
    assert plain_duckdb_count(data) == 300
    assert ds.dataset(data / "spans", format="parquet", partitioning="hive").count_rows() == 300
    assert sorted(p.name for p in (data / "spans").rglob("*.parquet")) == sorted(p.name for p in list_segments(data))


def test_replaced_segments_go_when_their_grace_ends_not_at_the_next_pass(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for batch in range(6):
        write_spans(data, _rows(DAY1, batch, 5))
    assert compact(data, grace_s=0.3).merged
    assert plain_duckdb_count(data) == 60  # in their grace: a reader that listed them still finds them
    assert remove_replaced(data, grace_s=0.3) == []
    time.sleep(0.35)
    assert len(remove_replaced(data, grace_s=0.3)) == 6
    assert plain_duckdb_count(data) == open_store_count(data) == 30


def test_the_maintenance_thread_sweeps_between_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for batch in range(4):
        write_spans(data, _rows(DAY2, batch, 5))
    maintenance = Maintenance(data, interval_s=3600.0, grace_s=2.0)
    maintenance.run_once()
    maintenance.start()
    try:
        deadline = time.monotonic() + 30
        while plain_duckdb_count(data) != 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert plain_duckdb_count(data) == 20  # swept after its 2 s grace, not after an hour
    finally:
        maintenance.stop()


def test_timestamps_read_with_fetchall_as_zoned_datetimes(tmp_path: Path) -> None:
    """DuckDB turns TIMESTAMP WITH TIME ZONE into Python datetimes through pytz."""
    data = tmp_path / "data"
    write_spans(data, _rows(DAY1, 0, 3))
    glob = str(data / "spans" / "**" / "*.parquet")
    rows = duckdb.sql(f'SELECT "Timestamp" FROM read_parquet(\'{glob}\') ORDER BY 1').fetchall()
    assert rows[0][0] == DAY1 and rows[0][0].utcoffset() == dt.timedelta(0)
