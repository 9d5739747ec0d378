"""Writing spans into the store: an OpenTelemetry span exporter and a plain function.

Every write produces whole Parquet files, one per UTC date the batch touches, each written under a
temporary name in its partition directory, flushed to disk and renamed into place: a reader (or a
crash) never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from store import schema
from store.errors import StoreError
from store.layout import (
    PARTITION_KEY,
    SEGMENT_SUFFIX,
    SPAN_ARROW_SCHEMA,
    SPANS_DIR,
    TEMP_SUFFIX,
    WRITTEN_ARROW_SCHEMA,
    init_store,
    new_segment_name,
    partition_dir,
)
from store.promote import promote

__all__ = [
    "ParquetSpanExporter",
    "last_slots",
    "render_attribute_value",
    "rows_to_table",
    "span_to_row",
    "write_segment",
    "write_spans",
]

_log = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 1_000_000_000
# Spans per Parquet row group: segments are sorted by start time, so a reader looking at a few
# minutes of a day segment (a run's waterfall, a window's edge) skips the rest by row-group statistics.
ROW_GROUP_SPANS = 65_536
_EPOCH = dt.date(1970, 1, 1)
# Dropped runs kept as missed slots while the store cannot be written (about 2 KB each in
# memory): at a run a minute for each of six jobs, more than a day of a full disk.
_MAX_NOT_STORED_RUNS = 10_000

_KIND_NAMES = {
    SpanKind.INTERNAL: "Internal",
    SpanKind.SERVER: "Server",
    SpanKind.CLIENT: "Client",
    SpanKind.PRODUCER: "Producer",
    SpanKind.CONSUMER: "Consumer",
}
_STATUS_NAMES = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}

Row = dict[str, Any]


def render_attribute_value(value: object) -> str:
    """An attribute value as the string stored in a ``map<string, string>`` column.

    Booleans become ``true``/``false``, integers their decimal form, floats their shortest
    round-tripping form (``repr``), so ``float(rendered) == value``; sequences become JSON arrays,
    as the ClickHouse exporter renders them.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Sequence):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def _render_map(attributes: Mapping[str, object] | None) -> list[tuple[str, str]]:
    if not attributes:
        return []
    return [(str(k), render_attribute_value(v)) for k, v in attributes.items()]


def span_to_row(span: ReadableSpan) -> Row:
    """One finished OpenTelemetry span as a row of the store's columns (see ``store.schema``)."""
    ctx = span.context
    if ctx is None:
        raise ValueError(f"span {span.name!r} has no context")
    resource_attrs = dict(span.resource.attributes) if span.resource is not None else {}
    span_attrs = dict(span.attributes or {})
    start_ns = span.start_time or 0
    end_ns = span.end_time if span.end_time is not None else start_ns
    scope = span.instrumentation_scope
    site = span_attrs.get(schema.ATTR_SITE, resource_attrs.get(schema.ATTR_SITE))
    return {
        schema.TIMESTAMP: start_ns,
        schema.TRACE_ID: format(ctx.trace_id, "032x"),
        schema.SPAN_ID: format(ctx.span_id, "016x"),
        schema.PARENT_SPAN_ID: format(span.parent.span_id, "016x") if span.parent else "",
        schema.TRACE_STATE: ctx.trace_state.to_header() if ctx.trace_state else "",
        schema.SPAN_NAME: span.name,
        schema.SPAN_KIND: _KIND_NAMES.get(span.kind, "Unspecified"),
        schema.SERVICE_NAME: render_attribute_value(resource_attrs.get(schema.SERVICE_NAME_ATTR, "")),
        schema.RESOURCE_ATTRIBUTES: _render_map(resource_attrs),
        schema.SCOPE_NAME: (scope.name if scope else "") or "",
        schema.SCOPE_VERSION: (scope.version if scope else "") or "",
        schema.SPAN_ATTRIBUTES: _render_map(span_attrs),
        schema.DURATION: max(0, end_ns - start_ns),
        schema.STATUS_CODE: _STATUS_NAMES[span.status.status_code],
        schema.STATUS_MESSAGE: span.status.description or "",
        schema.EVENTS: [
            {"Timestamp": e.timestamp, "Name": e.name, "Attributes": _render_map(e.attributes)}
            for e in span.events
        ],
        schema.WORKFLOW: _optional_str(span_attrs.get(schema.ATTR_WORKFLOW)),
        schema.SITE: _optional_str(site),
        schema.STEP: _optional_str(span_attrs.get(schema.ATTR_STEP)),
        schema.SPAN_TYPE: _optional_str(span_attrs.get(schema.ATTR_SPAN_TYPE)),
    }


def _optional_str(value: object) -> str | None:
    return None if value is None else render_attribute_value(value)


def _as_pairs(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), render_attribute_value(v)) for k, v in value.items()]
    return [(str(k), render_attribute_value(v)) for k, v in value]  # type: ignore[attr-defined]


def rows_to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (mappings keyed by the ``store.schema`` column names) as a table of the store's schema.

    ``Timestamp`` may be integer nanoseconds since the epoch or a timezone-aware datetime;
    attribute maps may be dicts with any values (rendered as strings). Missing optional columns
    default to ``""`` (strings), an empty map or list; missing promoted columns (workflow, site,
    step, span type) are taken from the attributes as the exporter does.

    Raises:
        ValueError: a row lacks ``Timestamp``, ``TraceId`` or ``SpanId``, or has a naive datetime.
    """
    prepared = [_complete_row(row) for row in rows]
    return _with_promoted(pa.Table.from_pylist(prepared, schema=WRITTEN_ARROW_SCHEMA))


def _complete_row(row: Mapping[str, Any]) -> Row:
    for required in (schema.TIMESTAMP, schema.TRACE_ID, schema.SPAN_ID):
        if row.get(required) is None:
            raise ValueError(f"span row lacks {required}")
    out: Row = dict(row)
    ts = out[schema.TIMESTAMP]
    if isinstance(ts, dt.datetime):
        if ts.tzinfo is None:
            raise ValueError(f"{schema.TIMESTAMP} must be timezone-aware, got {ts!r}")
        delta = ts.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        out[schema.TIMESTAMP] = (
            delta.days * NS_PER_DAY + delta.seconds * 1_000_000_000 + delta.microseconds * 1000
        )
    res = _as_pairs(out.get(schema.RESOURCE_ATTRIBUTES))
    attrs = _as_pairs(out.get(schema.SPAN_ATTRIBUTES))
    out[schema.RESOURCE_ATTRIBUTES] = res
    out[schema.SPAN_ATTRIBUTES] = attrs
    out.setdefault(schema.PARENT_SPAN_ID, "")
    out.setdefault(schema.DURATION, 0)
    out.setdefault(schema.EVENTS, [])
    for column in (
        schema.TRACE_STATE, schema.SPAN_NAME, schema.SCOPE_NAME, schema.SCOPE_VERSION,
        schema.STATUS_MESSAGE,
    ):
        out.setdefault(column, "")
    out.setdefault(schema.SPAN_KIND, "Internal")
    out.setdefault(schema.STATUS_CODE, "Unset")
    res_map, attr_map = dict(res), dict(attrs)
    out.setdefault(schema.SERVICE_NAME, res_map.get(schema.SERVICE_NAME_ATTR, ""))
    out.setdefault(schema.WORKFLOW, attr_map.get(schema.ATTR_WORKFLOW))
    out.setdefault(schema.SITE, attr_map.get(schema.ATTR_SITE, res_map.get(schema.ATTR_SITE)))
    out.setdefault(schema.STEP, attr_map.get(schema.ATTR_STEP))
    out.setdefault(schema.SPAN_TYPE, attr_map.get(schema.ATTR_SPAN_TYPE))
    out[schema.EVENTS] = [
        {**e, "Attributes": _as_pairs(e.get("Attributes"))} for e in out[schema.EVENTS]
    ]
    return out


def _with_promoted(table: pa.Table) -> pa.Table:
    return promote(table).cast(SPAN_ARROW_SCHEMA)


def _conform(table: pa.Table) -> pa.Table:
    missing = [name for name in WRITTEN_ARROW_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"span table lacks columns {', '.join(missing)}")
    return _with_promoted(table.select(WRITTEN_ARROW_SCHEMA.names).cast(WRITTEN_ARROW_SCHEMA))


def write_segment(directory: Path, table: pa.Table, name: str | None = None) -> Path:
    """Write ``table`` as one Parquet file in ``directory``, atomically.

    The file is written as ``.<name>.tmp`` (a name readers ignore), fsynced, renamed to
    ``<name>`` and the directory fsynced. Returns the final path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = name or new_segment_name()
    final = directory / name
    tmp = directory / f".{name}{TEMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd", row_group_size=ROW_GROUP_SPANS)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return final


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _utc_days(table: pa.Table) -> pa.ChunkedArray:
    """Each span's UTC day since the epoch, floored (in Arrow: a probe process has no numpy)."""
    ns = table.column(schema.TIMESTAMP).cast(pa.int64())
    days = pa.compute.divide(ns, NS_PER_DAY)  # truncates toward zero: one day less before 1970 unless exact
    return pa.compute.if_else(pa.compute.greater(pa.compute.multiply(days, NS_PER_DAY), ns),
                              pa.compute.subtract(days, 1), days)


def write_spans(path: Path, spans: pa.Table | Iterable[Mapping[str, Any]]) -> list[Path]:
    """Write spans into the store at ``path``, one new segment per UTC date they start on.

    Args:
        path: the store's data directory; made a store if it is not one yet.
        spans: a table with every column of :data:`store.layout.SPAN_ARROW_SCHEMA` except the
            typed ones of :mod:`store.promote` (derived here from the attribute maps; given
            ones are recomputed), or rows as accepted by :func:`rows_to_table`.

    Returns:
        The segment files written (none for no spans).

    Raises:
        StoreError: ``path`` is a store of another schema version or cannot be written.
        ValueError: the spans lack required columns.
    """
    table = _conform(spans) if isinstance(spans, pa.Table) else rows_to_table(spans)
    if table.num_rows == 0:
        return []
    init_store(path)
    days = _utc_days(table)
    written = []
    try:
        for day in sorted(pa.compute.unique(days).to_pylist()):
            part = table.filter(pa.compute.equal(days, day))
            part = part.sort_by(schema.TIMESTAMP)
            date = _EPOCH + dt.timedelta(days=int(day))
            written.append(write_segment(partition_dir(path, date), part))
    except OSError as exc:
        raise StoreError(f"cannot write spans under {path}: {exc.strerror or exc}") from exc
    return written


def last_slots(path: Path, *, partitions: int = 7) -> dict[tuple[str, str], dt.datetime]:
    """The latest slot the store holds a run or a missed slot for, per (workflow, site).

    What a probe restarting after ``kill -9`` needs: the slots after these were never recorded
    (their runs' spans were still in memory), whatever the probe's state file says it handled.
    Reads the typed columns of the newest ``partitions`` UTC dates only; a segment that cannot
    be read (removed by compaction meanwhile, or cut by a crash) is passed over.
    """
    spans = Path(path) / SPANS_DIR
    try:
        dates = sorted((p for p in spans.iterdir() if p.name.startswith(f"{PARTITION_KEY}=")), reverse=True)
    except OSError:
        return {}
    latest: dict[tuple[str, str], dt.datetime] = {}
    kinds = pa.array([schema.SPAN_TYPE_RUN, schema.SPAN_TYPE_MISSED_SLOT])
    for partition in dates[:partitions]:
        try:
            files = [f for f in partition.iterdir() if f.name.endswith(SEGMENT_SUFFIX) and not f.name.startswith(".")]
        except OSError:
            continue
        for segment in files:
            try:
                table = pq.read_table(segment, columns=[schema.WORKFLOW, schema.SITE, schema.SPAN_TYPE, schema.SLOT])
            except (OSError, ValueError, pa.ArrowException):
                continue
            table = table.filter(pa.compute.is_in(table.column(schema.SPAN_TYPE), kinds))
            table = table.filter(pa.compute.is_valid(table.column(schema.SLOT)))
            if table.num_rows == 0:
                continue
            grouped = table.group_by([schema.WORKFLOW, schema.SITE]).aggregate([(schema.SLOT, "max")])
            for workflow, site, slot in zip(
                grouped.column(schema.WORKFLOW).to_pylist(),
                grouped.column(schema.SITE).to_pylist(),
                grouped.column(f"{schema.SLOT}_max").to_pylist(),
                strict=True,
            ):
                key = (workflow, site)
                if slot is not None and (key not in latest or slot > latest[key]):
                    latest[key] = slot
    return latest


class ParquetSpanExporter(SpanExporter):
    """An OpenTelemetry span exporter that writes each batch into the Parquet store.

    Thread-safe: several tracer providers (one per site) may share one instance through their
    span processors. Each ``export`` call writes synchronously, and the exporter holds no open
    resources: ``shutdown`` (which every sharing provider calls when it shuts down) does not stop
    the others' exports. Failures are logged and reported as ``SpanExportResult.FAILURE``; they
    never reach the code being traced.

    When the store cannot be written (a full or read-only disk), batches wait in memory, up to
    ``max_waiting_spans``, and are written, oldest first, by the next export or flush once it can
    be; past that bound the oldest are dropped, counted, and each dropped run is kept as a
    ``missed_slot`` span (reason ``not_stored``; at most 10,000 of them, the rest only counted)
    written when the store can take it, so the gap shows. The trouble is logged in one line, at most once per ``report_every_s``.

    Args:
        path: the store's data directory.
        max_waiting_spans: the most spans kept in memory while the store cannot be written.
        report_every_s: the least time between two log lines about it.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_waiting_spans: int = 100_000,
        report_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open (or create) the store at ``path``.

        Raises:
            StoreError: ``path`` is a store of another schema version or cannot be created.
        """
        self._path = Path(path)
        self._lock = threading.Lock()
        self._max_waiting_spans = max_waiting_spans
        self._report_every_s = report_every_s
        self._clock = clock
        # One UTC date per batch: each is one file, written whole or not at all, so a retry
        # never writes a span twice.
        self._waiting: deque[list[Row]] = deque()
        self._waiting_spans = 0
        self._not_stored: list[Row] = []  # dropped runs, as missed slots
        self.dropped_spans = 0
        self.dropped_runs = 0
        self._failing_since: float | None = None
        self._reported_at: float | None = None
        self._waited_spans = 0  # written after waiting, since the trouble began
        init_store(self._path)

    @property
    def path(self) -> Path:
        """The store's data directory."""
        return self._path

    @property
    def waiting_spans(self) -> int:
        """Spans kept in memory until the store can be written."""
        with self._lock:
            return self._waiting_spans + len(self._not_stored)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans`` (after any still waiting) as new segments; ``FAILURE`` when not all
        could be written now (they wait, see the class)."""
        with self._lock:
            if spans:
                try:
                    rows = [span_to_row(s) for s in spans]
                except Exception:  # the export boundary: telemetry must never crash the probe
                    _log.exception("could not convert %d spans for the store at %s", len(spans), self._path)
                    return SpanExportResult.FAILURE
                by_day: dict[int, list[Row]] = {}
                for row in rows:
                    by_day.setdefault(row[schema.TIMESTAMP] // NS_PER_DAY, []).append(row)
                self._waiting.extend(by_day.values())
                self._waiting_spans += len(rows)
                self._make_room()
            return SpanExportResult.SUCCESS if self._write_waiting() else SpanExportResult.FAILURE

    def _make_room(self) -> None:
        while self._waiting_spans > self._max_waiting_spans and len(self._waiting) > 1:
            batch = self._waiting.popleft()
            self._waiting_spans -= len(batch)
            self.dropped_spans += len(batch)
            for row in batch:
                missed = _missed_slot_row(row)
                if missed is not None:
                    self.dropped_runs += 1
                    if len(self._not_stored) < _MAX_NOT_STORED_RUNS:
                        self._not_stored.append(missed)

    def _write_waiting(self) -> bool:
        """Write what waits, oldest first; False when the store could not take it all."""
        while self._not_stored or self._waiting:
            batch = self._not_stored if self._not_stored else self._waiting[0]
            written = True
            try:
                write_spans(self._path, batch)
            except StoreError as exc:
                self._note_failure(exc)
                return False
            except Exception:  # a batch that can never be written: say so once, and go on
                _log.exception("could not write %d spans to the store at %s; they are dropped", len(batch), self._path)
                self.dropped_spans += len(batch)
                written = False
            if batch is self._not_stored:
                self._not_stored = []
            else:
                self._waiting.popleft()
                self._waiting_spans -= len(batch)
                if written and self._failing_since is not None:
                    self._waited_spans += len(batch)
        if self._failing_since is not None:
            _log.warning(
                "the store at %s can be written again after %.0f s: %d spans that waited were written; "
                "%d spans dropped (%d runs, recorded as missed slots)",
                self._path, self._clock() - self._failing_since, self._waited_spans,
                self.dropped_spans, self.dropped_runs,
            )
            self._failing_since = self._reported_at = None
            self._waited_spans = 0
        return True

    def _note_failure(self, exc: StoreError) -> None:
        now_s = self._clock()
        if self._failing_since is None:
            self._failing_since = now_s
        if self._reported_at is not None and now_s - self._reported_at < self._report_every_s:
            return
        self._reported_at = now_s
        # One line, no traceback: the same cause would otherwise be logged for every batch.
        _log.warning(
            "%s: %d spans wait in memory (at most %d) to be written when it can; %d spans dropped so far "
            "(%d runs, recorded as missed slots once the store can be written)",
            exc, self._waiting_spans + len(self._not_stored), self._max_waiting_spans,
            self.dropped_spans, self.dropped_runs,
        )

    def shutdown(self) -> None:
        """Write what still waits if the store can take it now, and say what could not be."""
        with self._lock:
            if not self._write_waiting():
                _log.warning(
                    "%d spans could not be written to the store at %s before the end and are lost",
                    self._waiting_spans + len(self._not_stored), self._path,
                )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write what waits; ``True`` when nothing is left waiting."""
        with self._lock:
            return self._write_waiting()


def _missed_slot_row(row: Row) -> Row | None:
    """The ``missed_slot`` span (reason ``not_stored``) standing for a dropped run's root span,
    or None for any other span."""
    attributes = dict(row[schema.SPAN_ATTRIBUTES])
    slot = attributes.get(schema.ATTR_SLOT)
    if attributes.get(schema.ATTR_SPAN_TYPE) != schema.SPAN_TYPE_RUN or not slot:
        return None
    try:
        slot_ns = _iso_to_ns(slot)
    except ValueError:
        return None
    return {
        schema.TIMESTAMP: slot_ns,
        schema.TRACE_ID: secrets.token_hex(16),
        schema.SPAN_ID: secrets.token_hex(8),
        schema.SPAN_NAME: "missed slot",
        schema.SPAN_KIND: "Internal",
        schema.SERVICE_NAME: row[schema.SERVICE_NAME],
        schema.RESOURCE_ATTRIBUTES: row[schema.RESOURCE_ATTRIBUTES],
        schema.SCOPE_NAME: row[schema.SCOPE_NAME],
        schema.SCOPE_VERSION: row[schema.SCOPE_VERSION],
        schema.SPAN_ATTRIBUTES: [
            (schema.ATTR_SPAN_TYPE, schema.SPAN_TYPE_MISSED_SLOT),
            (schema.ATTR_WORKFLOW, attributes.get(schema.ATTR_WORKFLOW, "")),
            (schema.ATTR_SITE, attributes.get(schema.ATTR_SITE, "")),
            (schema.ATTR_SLOT, slot),
            (schema.ATTR_MISSED_REASON, schema.MISSED_NOT_STORED),
            (schema.USER_AGENT_SYNTHETIC_TYPE, attributes.get(schema.USER_AGENT_SYNTHETIC_TYPE, "test")),
        ],
        schema.DURATION: 0,
    }


def _iso_to_ns(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("naive slot")
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta.days * NS_PER_DAY + delta.seconds * 1_000_000_000 + delta.microseconds * 1000
