"""Importing spans from elsewhere: OTLP JSON lines, and the EPR's own request timings.

**OTLP JSON lines** are what the OpenTelemetry Collector's file exporter writes: one
``ExportTraceServiceRequest`` per line, ``{"resourceSpans": [{"resource": {...}, "scopeSpans":
[{"scope": {...}, "spans": [...]}]}]}``. Ids may be hex (OTLP/JSON) or base64 (the protobuf JSON
mapping); attribute values are ``AnyValue`` objects (``stringValue``, ``boolValue``, ``intValue``,
``doubleValue``, ``arrayValue``, ``kvlistValue``, ``bytesValue``); kinds and status codes may be
numbers or enum names. Each span is marked ``wardwatch.source = otlp`` (unless it says otherwise).
Any pipeline's spans can so be analysed; the EPR's server spans join the
probe's runs by trace id (the store's ``requests`` view, source ``server``).

**Server request timings** (CSV or Parquet with columns ``timestamp, endpoint, duration, status``)
are stored as one Server span each, in a trace of its own, with ``url.template`` and
``http.request.method`` from the endpoint (``GET /fhir/Patient/{id}``, or a path alone),
``http.response.status_code`` from the status, and ``wardwatch.source = server_log``. The
``requests`` view lists them with source ``server``, which an SLA with ``data_source: server``
reads; they have no workflow or site.

Both importers are robust: a bad line or row (not UTF-8, not parseable, a status code outside
100-599, a duration that is not finite or longer than a day, a time outside 1970-2262, a CSV field
over 128 KiB, the cut-off end of a truncated ``.gz``) is reported with its line number and
skipped; the rest is written in batches of whole segments (``store.write_spans``), so nothing
already stored is touched and a failure part-way loses only the batch being built.

Both are **idempotent**: a span whose trace id and span id are already stored (on the day it
starts) is not stored again, so an import killed part-way can simply be run again. A request-log
row's ids are derived from its file name, its content and how many identical rows came before it,
so the same file gives the same ids every time, and two identical requests stay two spans.

Both **redact** what they store as the probe does (``store.redact``): URL paths become templates
(``/fhir/Patient/{id}``), query values ``REDACTED``, free-text status messages and exception
messages are dropped. No patient identifier in an imported file reaches the store.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hashlib
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import schema
from store.layout import PARTITION_KEY
from store.redact import redact_attributes, redact_span_name, redact_target, status_class
from store.segments import list_segments
from store.writer import render_attribute_value, write_spans

__all__ = ["ImportIssue", "ImportReport", "import_otlp_jsonl", "import_server_timings"]

_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS = {0: "Unset", 1: "Ok", 2: "Error"}
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_DURATION_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_METHOD = re.compile(r"^([A-Z]+)\s+(\S.*)$")
CSV_FIELD_LIMIT_BYTES = 128 * 1024  # the csv module's own default; a longer field is a bad row
_MAX_REQUEST_NS = 86_400 * 1_000_000_000  # a request that took longer than a day is not a timing
_FIRST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_END_OF_TIME = dt.datetime(2262, 4, 11, tzinfo=dt.UTC)  # what a timestamp[ns] column holds
# Attributes whose values may hold patient data, and how each is made safe (None: dropped).

Row = dict[str, Any]


@dataclass(frozen=True)
class ImportIssue:
    """A line or row that was skipped.

    Attributes:
        source: the file (or ``<lines>``).
        line: 1-based line number (for CSV, the file's line; for Parquet, the row number + 1).
        message: what was wrong.
    """

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        lines: lines (or rows) read.
        spans: spans written.
        already_stored: spans not written because the store held them already (same trace and
            span id), e.g. from an earlier run of the same import.
        segments: segment files written.
        issues: lines or rows skipped, with the reason.
    """

    lines: int = 0
    spans: int = 0
    already_stored: int = 0
    segments: list[Path] = field(default_factory=list)
    issues: list[ImportIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing was skipped."""
        return not self.issues


class _BadInput(ValueError):
    """One line or row cannot be imported."""


# -- OTLP JSON -----------------------------------------------------------------------------------


def _id(value: Any, size: int, name: str, allow_empty: bool = False) -> str:
    text = "" if value is None else str(value)
    if text == "":
        if allow_empty:
            return ""
        raise _BadInput(f"{name} is missing")
    if len(text) == 2 * size and _HEX.match(text):
        result = text.lower()
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _BadInput(f"{name} {text!r} is neither hex nor base64") from exc
        if len(raw) != size:
            raise _BadInput(f"{name} {text!r} is not {size} bytes")
        result = raw.hex()
    if set(result) == {"0"}:
        if allow_empty:
            return ""
        raise _BadInput(f"{name} is all zeros")
    return result


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    if not isinstance(value, Mapping) or not value:
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError, OverflowError) as exc:
            raise _BadInput(f"intValue {value['intValue']!r} is not an integer") from exc
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError) as exc:
            raise _BadInput(f"doubleValue {value['doubleValue']!r} is not a number") from exc
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: _any_value(kv.get("value")) for kv in
                (value["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"], validate=True).hex()
        except (TypeError, ValueError) as exc:
            raise _BadInput(f"bytesValue {value['bytesValue']!r} is not base64") from exc
    raise _BadInput(f"unknown AnyValue {sorted(value)}")


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if value is None:
        return ""
    return render_attribute_value(value)


def _attributes(items: Any) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _BadInput("attributes is not a list of key-value pairs")
    out = {}
    for kv in items:
        if not isinstance(kv, Mapping) or "key" not in kv:
            raise _BadInput("an attribute has no key")
        out[str(kv["key"])] = _render(_any_value(kv.get("value")))
    return out


def _enum(value: Any, table: dict[int, str], prefix: str, name: str) -> str:
    if value is None:
        return table[0]
    if isinstance(value, int):
        if value not in table:
            raise _BadInput(f"unknown {name} {value}")
        return table[value]
    text = str(value)
    if text.isdigit():
        return _enum(int(text), table, prefix, name)
    short = text.removeprefix(prefix).replace("_", "").lower()
    for label in table.values():
        if label.lower() == short:
            return label
    raise _BadInput(f"unknown {name} {text!r}")


def _nanos(value: Any, name: str) -> int:
    try:
        nanos = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _BadInput(f"{name} {value!r} is not integer nanoseconds") from exc
    if not 0 <= nanos < 2**63:  # what a timestamp[ns] column holds: 1970 to 2262
        raise _BadInput(f"{name} {value!r} is outside 1970..2262 in nanoseconds")
    return nanos


def _span_row(span: Mapping[str, Any], resource: dict[str, str], scope: Mapping[str, Any]) -> Row:
    start = _nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
    end = _nanos(span.get("endTimeUnixNano", start), "endTimeUnixNano")
    status = span.get("status") or {}
    attrs = redact_attributes(_attributes(span.get("attributes")))
    attrs.setdefault(schema.ATTR_SOURCE, schema.SOURCE_OTLP)  # provenance, unless already said
    return {
        schema.TIMESTAMP: start,
        schema.TRACE_ID: _id(span.get("traceId"), 16, "traceId"),
        schema.SPAN_ID: _id(span.get("spanId"), 8, "spanId"),
        schema.PARENT_SPAN_ID: _id(span.get("parentSpanId"), 8, "parentSpanId", allow_empty=True),
        schema.TRACE_STATE: str(span.get("traceState") or ""),
        schema.SPAN_NAME: redact_span_name(str(span.get("name") or "")),
        schema.SPAN_KIND: _enum(span.get("kind"), _KINDS, "SPAN_KIND_", "span kind"),
        schema.SERVICE_NAME: resource.get(schema.SERVICE_NAME_ATTR, ""),
        schema.RESOURCE_ATTRIBUTES: resource,
        schema.SCOPE_NAME: str(scope.get("name") or ""),
        schema.SCOPE_VERSION: str(scope.get("version") or ""),
        schema.SPAN_ATTRIBUTES: attrs,
        schema.DURATION: max(0, end - start),
        schema.STATUS_CODE: _enum(status.get("code"), _STATUS, "STATUS_CODE_", "status code"),
        schema.STATUS_MESSAGE: status_class(str(status.get("message") or "")),
        schema.EVENTS: [
            {"Timestamp": _nanos(e.get("timeUnixNano"), "event timeUnixNano"),
             "Name": str(e.get("name") or ""), "Attributes": redact_attributes(_attributes(e.get("attributes")))}
            for e in span.get("events") or []
        ],
    }


def _otlp_rows(document: Any) -> list[Row]:
    if not isinstance(document, Mapping) or "resourceSpans" not in document:
        raise _BadInput("not an OTLP trace export (no resourceSpans)")
    rows = []
    for resource_spans in document["resourceSpans"] or []:
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        scope_spans = resource_spans.get("scopeSpans")
        if scope_spans is None:  # the name before OTLP 0.15
            scope_spans = resource_spans.get("instrumentationLibrarySpans") or []
        for group in scope_spans:
            scope = group.get("scope") or group.get("instrumentationLibrary") or {}
            rows += [_span_row(span, resource, scope) for span in group.get("spans") or []]
    return rows


def _lines(source: Path | str | Iterable[str]) -> tuple[str, Iterator[tuple[int, str | _BadInput]]]:
    """``(line number, text)`` for each line, or ``(number, _BadInput)`` for one that cannot be read:
    a line that is not UTF-8 is reported alone, and a truncated or corrupt ``.gz`` ends the lines
    read so far with one reported line (everything before it is kept)."""
    if isinstance(source, Path | str):
        path = Path(source)

        def read() -> Iterator[tuple[int, str | _BadInput]]:
            number = 0
            with open(path, "rb") as f:
                raws = _gunzipped_lines(f) if path.suffix == ".gz" else iter(f)
                try:
                    for number, raw in enumerate(raws, start=1):  # noqa: B007 - read after the loop
                        yield number, _decoded(raw)
                except (EOFError, zlib.error) as exc:
                    yield number + 1, _BadInput(f"the compressed file is cut off or corrupt here ({exc}); "
                                                "the lines before it were read")

        return str(path), read()
    return "<lines>", ((number, line) for number, line in enumerate(source, start=1))


def _gunzipped_lines(f: Any, chunk_bytes: int = 1 << 16) -> Iterator[bytes]:
    """The lines of a gzip file (several members allowed), every whole line before a cut or a
    corrupt byte included: ``gzip.open`` loses what it decompressed in the read that hit the end.

    Raises:
        EOFError: the file ends inside a member (after yielding what came before, as a last line).
        zlib.error: the compressed data is corrupt.
    """
    decompressor = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    pending = b""
    started = False
    while chunk := f.read(chunk_bytes):
        started = True
        while chunk:
            pending += decompressor.decompress(chunk)
            chunk = b""
            if decompressor.eof:  # a member ended; another may follow
                chunk = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                started = bool(chunk)
        *lines, pending = pending.split(b"\n")
        yield from (line + b"\n" for line in lines)
    if pending:
        yield pending
    if started:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _decoded(raw: bytes) -> str | _BadInput:
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark (Excel's "UTF-8 CSV")
    except UnicodeDecodeError as exc:
        return _BadInput(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")


class _Stored:
    """Which (TraceId, SpanId) pairs a batch would store again: imports are idempotent.

    Looks only in the live segments of the days the batch touches, and only for the batch's ids,
    so a day of millions of spans is scanned two columns at a time, never held as a set.
    """

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.written: set[tuple[str, str]] = set()  # by this import, in earlier batches

    def fresh(self, batch: list[Row]) -> tuple[list[Row], int]:
        """The batch without spans already stored (or repeated within it); and how many those were."""
        keys = pa.array([r[schema.TRACE_ID] + r[schema.SPAN_ID] for r in batch], pa.string())
        days = {_day(r[schema.TIMESTAMP]) for r in batch}
        stored: set[str] = set()
        for segment in list_segments(self.store_path):
            if segment.parent.name.removeprefix(f"{PARTITION_KEY}=") not in days:
                continue
            try:
                table = pq.read_table(segment, columns=[schema.TRACE_ID, schema.SPAN_ID])
            except FileNotFoundError:  # merged away meanwhile; the merged segment is listed next time
                continue
            ids = pc.binary_join_element_wise(table[schema.TRACE_ID], table[schema.SPAN_ID], "")
            stored.update(pc.filter(ids, pc.is_in(ids, value_set=keys)).to_pylist())
        out = []
        for row, key in zip(batch, keys.to_pylist(), strict=True):
            pair = (row[schema.TRACE_ID], row[schema.SPAN_ID])
            if key in stored or pair in self.written:
                continue
            self.written.add(pair)
            out.append(row)
        return out, len(batch) - len(out)


def _day(timestamp: int | dt.datetime) -> str:
    if isinstance(timestamp, dt.datetime):
        return timestamp.astimezone(dt.UTC).date().isoformat()
    return (dt.date(1970, 1, 1) + dt.timedelta(days=timestamp // 86_400_000_000_000)).isoformat()


def _flush(store_path: Path, batch: list[Row], report: ImportReport, stored: _Stored) -> None:
    if batch:
        rows, repeated = stored.fresh(batch)
        report.already_stored += repeated
        report.segments += write_spans(store_path, rows)
        report.spans += len(rows)
        batch.clear()


def import_otlp_jsonl(
    source: Path | str | Iterable[str],
    store_path: Path | str,
    batch_spans: int = 50_000,
) -> ImportReport:
    """Import OTLP JSON lines (the Collector's file exporter format) into the store.

    Args:
        source: a file path (``.gz``: gzip-compressed), or the lines themselves.
        store_path: the store's data directory (made a store if it is not one yet).
        batch_spans: spans per write (each write is whole segments, one per UTC day).

    Returns:
        What was imported, and every line skipped with its number and reason.

    Raises:
        OSError: the file cannot be read.
        StoreError: the store cannot be written.
    """
    name, lines = _lines(source)
    report = ImportReport()
    batch: list[Row] = []
    stored = _Stored(Path(store_path))
    for number, line in lines:
        if isinstance(line, _BadInput):
            report.lines += 1
            report.issues.append(ImportIssue(name, number, str(line)))
            continue
        if not line.strip():
            continue
        report.lines += 1
        try:
            rows = _otlp_rows(json.loads(line))
        except json.JSONDecodeError as exc:
            report.issues.append(ImportIssue(name, number, f"not JSON: {exc.msg}"))
            continue
        except RecursionError:
            report.issues.append(ImportIssue(name, number, "not JSON: nested too deeply"))
            continue
        except _BadInput as exc:
            report.issues.append(ImportIssue(name, number, str(exc)))
            continue
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            reason = f"not an OTLP traces document ({type(exc).__name__}: {exc})"
            report.issues.append(ImportIssue(name, number, reason))
            continue
        batch += rows
        if len(batch) >= batch_spans:
            _flush(Path(store_path), batch, report, stored)
    _flush(Path(store_path), batch, report, stored)
    return report


# -- Server request timings ----------------------------------------------------------------------


def _timestamp(value: Any, assume_timezone: dt.tzinfo | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _BadInput(f"timestamp {text[:64]!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        if assume_timezone is None:
            raise _BadInput(f"timestamp {value!s} has no UTC offset (pass assume_timezone)")
        moment = moment.replace(tzinfo=assume_timezone)
    try:
        moment = moment.astimezone(dt.UTC)
    except (OverflowError, ValueError) as exc:
        raise _BadInput(f"timestamp {value!s} is outside 1970..2262") from exc
    if not _FIRST_TIME <= moment < _END_OF_TIME:
        raise _BadInput(f"timestamp {value!s} is outside 1970..2262")
    return moment


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _BadInput(f"{name} {str(value)[:64]!r} is not a number") from exc
    if not math.isfinite(number):
        raise _BadInput(f"{name} {value!s} is not a finite number")
    return number


def _server_row(record: Mapping[str, Any], unit_ns: int, service: str,
                assume_timezone: dt.tzinfo | None, salt: str, seen: Counter[str]) -> Row:
    for column in ("timestamp", "endpoint", "duration", "status"):
        if record.get(column) in (None, ""):
            raise _BadInput(f"{column} is missing")
    start = _timestamp(record["timestamp"], assume_timezone)
    duration = _number(record["duration"], "duration")
    if duration < 0:
        raise _BadInput("duration is negative")
    if duration * unit_ns > _MAX_REQUEST_NS:
        raise _BadInput(f"duration {record['duration']!s} is longer than a day")
    duration_ns = int(round(duration * unit_ns))
    status_number = _number(record["status"], "status")
    if not (status_number.is_integer() and 100 <= status_number <= 599):
        raise _BadInput(f"status {str(record['status'])[:64]} is not an HTTP status code (100-599)")
    status = int(status_number)
    endpoint = str(record["endpoint"]).strip()
    match = _METHOD.match(endpoint)
    method, target = (match.group(1), match.group(2)) if match else (None, endpoint)
    template = redact_target(target)
    attrs: dict[str, Any] = {
        schema.URL_TEMPLATE: template.partition("?")[0], schema.HTTP_RESPONSE_STATUS_CODE: status,
        schema.ATTR_SOURCE: schema.SOURCE_SERVER_LOG,
    }
    if "?" in template:
        attrs[schema.URL_QUERY] = template.partition("?")[2]
    if method:
        attrs[schema.HTTP_REQUEST_METHOD] = method
    if status >= 500:
        attrs[schema.ERROR_TYPE] = str(status)
    content = f"{start.isoformat()}|{endpoint}|{duration_ns}|{status}"
    seen[content] += 1  # identical rows are distinct requests: the n-th of them gets its own ids
    digest = hashlib.blake2b(f"{salt}|{content}|{seen[content]}".encode(), digest_size=24).hexdigest()
    return {
        schema.TIMESTAMP: start, schema.TRACE_ID: digest[:32], schema.SPAN_ID: digest[32:48],
        schema.SPAN_NAME: f"{method} {attrs[schema.URL_TEMPLATE]}" if method else attrs[schema.URL_TEMPLATE],
        schema.SPAN_KIND: "Server",
        schema.RESOURCE_ATTRIBUTES: {schema.SERVICE_NAME_ATTR: service},
        schema.SPAN_ATTRIBUTES: attrs, schema.DURATION: duration_ns,
        schema.STATUS_CODE: "Error" if status >= 500 else "Unset",
    }


_Records = Iterator[tuple[int, Mapping[str, Any] | _BadInput]]


def _records(path: Path) -> tuple[_Records, Callable[[], None]]:
    if path.suffix.lower() == ".parquet":
        table = pq.read_table(path)
        return ((i + 1, row) for i, row in enumerate(table.to_pylist())), lambda: None
    f = open(path, "rb")  # noqa: SIM115 - closed by the returned closer
    return _csv_records(f), f.close


def _csv_records(f: Any) -> _Records:
    """CSV rows by their file line; a line that is not UTF-8 or a field over the limit is one issue."""
    position = {"line": 0}
    bad: list[tuple[int, _BadInput]] = []

    def lines() -> Iterator[str]:
        for number, raw in enumerate(f, start=1):
            position["line"] = number
            text = _decoded(raw)
            if isinstance(text, _BadInput):
                bad.append((number, text))
                continue
            yield text

    csv.field_size_limit(CSV_FIELD_LIMIT_BYTES)
    reader = csv.reader(lines())
    header: list[str] | None = None
    while True:
        try:
            row: list[str] | None = next(reader)
            problem = None
        except StopIteration:
            row, problem = None, None
        except csv.Error as exc:
            row, problem = [], _BadInput(f"not a CSV row: {exc}")
        yield from bad  # lines skipped on the way to this row
        bad.clear()
        if problem is not None:
            yield position["line"], problem
            continue
        if row is None:
            break
        if header is None:
            header = [name.strip() for name in row]
            continue
        if not row:
            continue
        yield position["line"], dict(zip(header, row, strict=False))


def import_server_timings(
    path: Path | str,
    store_path: Path | str,
    duration_unit: str = "ms",
    service_name: str = "epr",
    assume_timezone: dt.tzinfo | None = None,
    batch_spans: int = 50_000,
) -> ImportReport:
    """Import the EPR's own request timings (CSV or Parquet) as Server spans.

    Args:
        path: a ``.csv`` or ``.parquet`` file with columns ``timestamp`` (ISO 8601 with offset, or
            a timezone-aware timestamp), ``endpoint`` (``GET /fhir/Patient/{id}`` or a path
            template), ``duration`` and ``status`` (HTTP status code).
        store_path: the store's data directory.
        duration_unit: the unit of ``duration``: ``s``, ``ms``, ``us`` or ``ns``.
        service_name: the ``service.name`` of the spans.
        assume_timezone: the zone of timestamps without an offset; ``None``: such rows are
            skipped as errors.
        batch_spans: spans per write.

    Returns:
        What was imported, and every row skipped with its line number and reason. Importing the
        same file again stores nothing new (``already_stored`` counts the rows).

    Raises:
        ValueError: an unknown ``duration_unit``, or a file lacking a required column.
        OSError: the file cannot be read.
        StoreError: the store cannot be written.
    """
    if duration_unit not in _DURATION_UNITS:
        raise ValueError(f"duration_unit is one of {', '.join(_DURATION_UNITS)}, not {duration_unit!r}")
    path = Path(path)
    records, close = _records(path)
    report = ImportReport()
    batch: list[Row] = []
    stored = _Stored(Path(store_path))
    seen: Counter[str] = Counter()
    checked = False
    try:
        for number, record in records:
            report.lines += 1
            if isinstance(record, _BadInput):
                report.issues.append(ImportIssue(str(path), number, str(record)))
                continue
            if not checked:
                missing = {"timestamp", "endpoint", "duration", "status"} - set(record)
                if missing:
                    raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
                checked = True
            try:
                batch.append(_server_row(record, _DURATION_UNITS[duration_unit], service_name,
                                         assume_timezone, path.name, seen))
            except _BadInput as exc:
                report.issues.append(ImportIssue(str(path), number, str(exc)))
                continue
            if len(batch) >= batch_spans:
                _flush(Path(store_path), batch, report, stored)
    finally:
        close()
    _flush(Path(store_path), batch, report, stored)
    return report
