"""The analyst's entry point: runs and steps of a store as pandas DataFrames, and SQL over it.

```python
import analysis
store = analysis.open_store("data")
runs = store.runs(workflow="open_patient_record", site="Ward 7")
```
"""

from __future__ import annotations

import datetime as dt
import inspect
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.calendar import ClinicalCalendar
from store import StoreError, check_store, create_views, list_segments
from store.config import StoreConfig, apply_duckdb_settings

__all__ = [
    "FrameCache",
    "MISSED_SLOT_COLUMNS",
    "REQUEST_COLUMNS",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "Store",
    "open_store",
    "to_pandas",
]

RUN_COLUMNS = (
    "trace_id", "start", "workflow", "site", "status", "error_type", "waiting_s", "wall_s",
    "slot", "simulated",
)
STEP_COLUMNS = (
    "trace_id", "span_id", "start", "workflow", "site", "step", "step_index", "status",
    "error_type", "http_status", "duration_s", "dns_s", "connect_s", "tls_s", "ttfb_s",
    "transfer_s", "response_bytes",
)
REQUEST_COLUMNS = (
    "trace_id", "span_id", "start", "workflow", "site", "step", "source", "span_type",
    "http_method", "url_template", "http_status", "status", "error_type", "duration_s",
    "simulated",
)
MISSED_SLOT_COLUMNS = ("trace_id", "slot", "workflow", "site", "reason", "simulated")

_RETRIES = 3  # a segment merged away by compaction between listing and reading: list again

TimeBound = dt.datetime | pd.Timestamp | str | None
Names = str | Sequence[str] | None


def _int_mapper(arrow_type: pa.DataType) -> Any:
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    return None


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a DataFrame: integers as nullable ``Int64``, zoned timestamps in ``UTC``."""
    frame = table.to_pandas(types_mapper=_int_mapper)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.tz_convert("UTC")
    return frame


@dataclass(frozen=True)
class RunFilter:
    """Which runs an aggregate covers: a time range [start, end) and optional workflows and sites."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    workflows: Sequence[str] | None = None  # None: every workflow
    sites: Sequence[str] | None = None  # None: every site

    def where(self, alias: str = "", time_column: str = "start") -> tuple[str, list[Any]]:
        """A SQL condition (``TRUE`` when nothing is filtered) and its parameters."""
        prefix = f"{alias}." if alias else ""
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        for bound, op in ((self.start, ">="), (self.end, "<")):
            if bound is not None:
                if bound.tzinfo is None:
                    raise ValueError("time bounds must be timezone-aware")
                clauses.append(f"{prefix}{time_column} {op} ?")
                params.append(bound)
        if self.workflows is not None:
            clauses.append(f"list_contains(?, {prefix}workflow)")
            params.append(list(self.workflows))
        if self.sites is not None:
            clauses.append(f"list_contains(?, {prefix}site)")
            params.append(list(self.sites))
        return " AND ".join(clauses), params


def _utc(bound: TimeBound, name: str) -> dt.datetime | None:
    if bound is None:
        return None
    ts = pd.Timestamp(bound)
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. 2026-10-01T00:00Z), got {bound!r}")
    return ts.tz_convert("UTC").to_pydatetime()


def _names(value: Names) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class Store:
    """Read access to one store. Thread-safe; each query sees the segments present when it starts.

    Use :func:`open_store` to make one. ``close()`` (or a ``with`` block) releases DuckDB.
    """

    def __init__(self, path: Path, calendar: ClinicalCalendar | None = None,
                 settings: StoreConfig | None = None) -> None:
        """Open the store at ``path``; ``calendar`` enables the ``period`` filters; DuckDB's
        memory limit and temp directory come from ``settings`` (default: the configuration's,
        ``store.config.use_duckdb_settings``).

        Raises:
            StoreError: ``path`` is not a Wardwatch store or holds another schema version.
        """
        self._path = Path(path)
        check_store(self._path)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        apply_duckdb_settings(self._con, settings)
        # Build each join's hash table on the side the query puts on the right. DuckDB otherwise
        # swaps sides by its estimates, which miss badly on the views: it builds the requests
        # view's anti join on every step span (their trace and span ids) rather than on the few
        # steps that made several requests, most of the cost of an SLA over a month of requests
        # (half the month's report at 10M spans). The analysis's own joins put the small side
        # (a registered table, a subquery) on the right. The setting is per database, and this
        # database is the store's own.
        self._con.execute("SET disabled_optimizers = 'build_side_probe_side,common_subplan'")  # duckdb issue 25819
        # Every query binds the views, which name the segment files many times over: read each
        # file's footer once (segments never change in place: a new segment is a new file).
        self._con.execute("SET parquet_metadata_cache = true")
        self._lock = threading.Lock()
        self._segments: list[Path] | None = None
        self._replaces: dict[str, frozenset[str]] = {}
        self._calendar = calendar

    @property
    def path(self) -> Path:
        """The store's data directory."""
        return self._path

    def close(self) -> None:
        """Release the DuckDB connection."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _refresh(self, force: bool = False) -> None:
        segments = list_segments(self._path, self._replaces)
        if force or segments != self._segments:
            create_views(self._con, segments)
            self._segments = segments

    def _arrow(self, query: str, params: Sequence[Any] | None = None,
               tables: Mapping[str, pa.Table | pd.DataFrame] | None = None) -> pa.Table:
        last_error: duckdb.Error | None = None
        for attempt in range(_RETRIES):
            with self._lock:
                try:
                    self._refresh(force=attempt > 0)
                    cursor = self._con.cursor()
                except duckdb.IOException as exc:
                    last_error = exc
                    continue
            try:
                for name, table in (tables or {}).items():
                    cursor.register(name, table)
                return cursor.execute(query, list(params or [])).to_arrow_table()
            except duckdb.IOException as exc:  # a segment vanished (compaction, retention)
                last_error = exc
            finally:
                cursor.close()
        raise StoreError(f"cannot read the store at {self._path}: {last_error}") from last_error

    def arrow(self, query: str, params: Sequence[Any] | None = None,
              tables: Mapping[str, pa.Table | pd.DataFrame] | None = None,
              order_by: Sequence[str] = ()) -> pa.Table:
        """The result of ``query`` (as :meth:`sql` takes it) as an Arrow table, sorted by the
        columns ``order_by`` (ascending, nulls last, as DuckDB's ``ORDER BY``) if given.

        Sorted here rather than by DuckDB: its sort of a month's runs at 10M spans (1.25M rows,
        a 120 MB result) left the process 440 MB larger, against 230 MB sorted in Arrow.
        """
        table = self._arrow(query, params, tables)
        if order_by and table.num_rows:
            table = table.take(pc.sort_indices(table, [(column, "ascending") for column in order_by]))
        return table

    def sql(self, query: str, params: Sequence[Any] | None = None,
            tables: Mapping[str, pa.Table | pd.DataFrame] | None = None) -> pd.DataFrame:
        """The result of ``query`` over the store's views as a DataFrame.

        The views: ``spans``, ``runs``, ``steps``, ``requests``, ``missed_slots`` (see
        ``store.reader``).

        Args:
            query: DuckDB SQL; pass user values as ``?`` placeholders, never formatted in.
            params: the placeholder values, in order.
            tables: Arrow tables or DataFrames the query may read by name, for this query only
                (e.g. the trace ids of the runs to join with ``steps``).
        """
        return to_pandas(self._arrow(query, params, tables))

    def _frame(
        self,
        view: str,
        columns: Sequence[str],
        start: TimeBound,
        end: TimeBound,
        workflow: Names,
        site: Names,
        period: str | None,
        time_column: str = "start",
        extra: Sequence[tuple[str, Any]] = (),
    ) -> pd.DataFrame:
        if period is not None and self._calendar is None:
            raise ValueError("filtering by period needs a calendar: open_store(path, calendar=...)")
        runs = RunFilter(_utc(start, "start"), _utc(end, "end"), _names(workflow), _names(site))
        condition, params = runs.where(time_column=time_column)
        where = [condition]
        for column, value in extra:
            if (values := _names(value)) is not None:
                where.append(f"list_contains(?, {column})")
                params.append(values)
        query = f"SELECT {', '.join(columns)} FROM {view} WHERE " + " AND ".join(where)
        order = [time_column, "trace_id", *(["span_id"] if "span_id" in columns else [])]
        frame = to_pandas(self.arrow(query, params, order_by=order))
        if period is not None and self._calendar is not None:
            frame = frame[self._calendar.mask(frame, period, time_column=time_column)]
        return frame.reset_index(drop=True)

    def runs(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        workflow: Names = None,
        site: Names = None,
        period: str | None = None,
    ) -> pd.DataFrame:
        """One row per workflow run, sorted by start.

        Args:
            start: only runs starting at or after this moment (timezone-aware).
            end: only runs starting before this moment (timezone-aware).
            workflow: one workflow name or several.
            site: one site name or several.
            period: only runs that start inside this clinical period at their site (needs the
                store opened with a calendar).

        Returns:
            Columns ``trace_id, start`` (UTC), ``workflow, site, status`` (ok, failed, timed_out,
            interrupted), ``error_type, waiting_s`` (sum of step durations), ``wall_s`` (with
            think time), ``slot`` (UTC), ``simulated`` (bool).
        """
        return self._frame("runs", RUN_COLUMNS, start, end, workflow, site, period)

    def steps(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        workflow: Names = None,
        site: Names = None,
        period: str | None = None,
    ) -> pd.DataFrame:
        """One row per workflow step, sorted by start; filters as :meth:`runs`.

        Returns:
            Columns ``trace_id, span_id, start`` (UTC), ``workflow, site, step, step_index,
            status`` (ok, failed, timed_out), ``error_type, http_status, duration_s, dns_s,
            connect_s, tls_s, ttfb_s, transfer_s`` (seconds; null for phases that did not occur),
            ``response_bytes``.
        """
        return self._frame("steps", STEP_COLUMNS, start, end, workflow, site, period)

    def requests(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        workflow: Names = None,
        site: Names = None,
        period: str | None = None,
        source: Names = None,
    ) -> pd.DataFrame:
        """One row per HTTP request, sorted by start; filters as :meth:`runs`, plus ``source``.

        The probe's requests are its ``request`` spans, the ``step`` spans that made a single
        request and its ``auth`` spans; the EPR's server spans (``source`` ``server``) take the
        workflow and site of the probe run whose trace they joined.

        Returns:
            Columns ``trace_id, span_id, start`` (UTC), ``workflow, site, step, source`` (probe,
            server, page: a browser workflow's page), ``span_type`` (request, step, auth,
            page_request, server), ``http_method, url_template,
            http_status, status`` (ok, failed: an error or a 5xx; timed_out), ``error_type,
            duration_s, simulated``.
        """
        return self._frame("requests", REQUEST_COLUMNS, start, end, workflow, site, period,
                           extra=[("source", source)])

    def missed_slots(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        workflow: Names = None,
        site: Names = None,
    ) -> pd.DataFrame:
        """One row per slot that passed without a run, sorted by slot; bounds apply to the slot.

        Returns:
            Columns ``trace_id, slot`` (UTC), ``workflow, site, reason`` (busy, probe_down),
            ``simulated``.
        """
        return self._frame("missed_slots", MISSED_SLOT_COLUMNS, start, end, workflow, site, None,
                           time_column="slot")


def open_store(path: Path | str, calendar: ClinicalCalendar | None = None,
               settings: StoreConfig | None = None) -> Store:
    """Open the store at ``path`` for reading.

    Args:
        path: the store's data directory (``store.path``).
        calendar: the clinical calendar, for the ``period`` filters of ``runs`` and ``steps``.
        settings: DuckDB's memory limit and temp directory (``store.duckdb_memory_limit``,
            ``store.duckdb_temp_directory``); default: the configuration's, as the command line
            set them, else the defaults.

    Raises:
        StoreError: ``path`` is not a Wardwatch store or holds another schema version.
    """
    return Store(Path(path), calendar, settings)


class FrameCache:
    """A :class:`Store` whose frames are read once: ``runs``, ``steps``, ``requests`` and
    ``missed_slots`` remember their result per question (the arguments by name; a filter passed
    as ``None`` is the same question as one left out), for one computation that asks the same
    question several times (a report); :meth:`memo` remembers any other result (an SLA's
    figures, an objective's evaluation). Other attributes are the store's.

    The frames returned are shared: treat them as read-only.
    """

    def __init__(self, store: Store | FrameCache) -> None:
        """Wrap ``store`` (a cache wraps the store underneath, not another cache)."""
        self._store: Store = store._store if isinstance(store, FrameCache) else store
        self._frames: dict[tuple[Any, ...], pd.DataFrame] = {}
        self._results: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed once per ``key`` for the life of this cache."""
        if key not in self._results:
            self._results[key] = compute()
        return self._results[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _get(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> pd.DataFrame:
        def frozen(value: Any) -> Any:
            return tuple(value) if isinstance(value, list | tuple) else value

        # One question, one key: arguments by name, and a filter left out same as passed None.
        bound = inspect.signature(getattr(self._store, kind)).bind(*args, **kwargs).arguments
        key = (kind, tuple(sorted((k, frozen(v)) for k, v in bound.items() if v is not None)))
        if key not in self._frames:
            self._frames[key] = getattr(self._store, kind)(*args, **kwargs)
        return self._frames[key]

    def runs(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """:meth:`Store.runs`, read once per argument list."""
        return self._get("runs", args, kwargs)

    def steps(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """:meth:`Store.steps`, read once per argument list."""
        return self._get("steps", args, kwargs)

    def requests(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """:meth:`Store.requests`, read once per argument list."""
        return self._get("requests", args, kwargs)

    def missed_slots(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """:meth:`Store.missed_slots`, read once per argument list."""
        return self._get("missed_slots", args, kwargs)
