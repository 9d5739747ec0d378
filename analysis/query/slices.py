"""Rows read from a few segments: the store's ``spans`` view over only the live segments that may
hold spans starting in a time, for the rows a page reads exactly at a known time (missed slots,
each site's newest measured run, a run's waterfall).

A query over a reader's views binds every live segment before it reads a row: at 100M spans (210
segments) that cost 0.2-0.4 s per query however few rows it read; over the 50 segments of a week,
about 0.05 s. A segment's extent (the buckets its spans start and end in) comes from its Parquet
statistics (:func:`analysis.query.preagg.segments_between`, cached: segments never change). The
views are made on a cursor of one database per process, whose Parquet metadata cache all
cursors share.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis.query import dialect, preagg
from analysis.store import to_pandas
from store import StoreError, create_views
from store.config import apply_duckdb_settings

__all__ = ["Slice"]

_database: duckdb.DuckDBPyConnection | None = None
_opening = threading.Lock()


def _shared() -> duckdb.DuckDBPyConnection:
    global _database
    with _opening:
        if _database is None:
            con = duckdb.connect(":memory:")
            apply_duckdb_settings(con)
            con.execute("SET parquet_metadata_cache = true")
            _database = con
    return _database


class Slice:
    """The ``spans`` view (and ``views``, of ``store.VIEWS``) over the live segments that may hold
    spans starting in any of ``times`` (``(lo, hi)`` pairs); :meth:`sql` as a store reader's (the
    rows asked of it must start in the slice's times)."""

    def __init__(self, path: Path, times: Sequence[tuple[dt.datetime, dt.datetime]],
                 views: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.views = tuple(views)
        chosen = {s for lo, hi in times for s in preagg.segments_between(self.path, lo, hi)}
        self.segments = sorted(chosen)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """``query``'s result over the slice's ``spans`` view (``StoreError``: a segment vanished
        meanwhile; make a new slice)."""
        cursor = _shared().cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            for statement in dialect.SESSION:
                cursor.execute(statement)
            create_views(cursor, self.segments, names=self.views, temporary=True)
            return to_pandas(cursor.execute(query, list(params or [])).to_arrow_table())
        except duckdb.IOException as exc:  # a segment vanished (compaction, retention)
            raise StoreError(f"cannot read the store at {self.path}: {exc}") from exc
        finally:
            cursor.close()
