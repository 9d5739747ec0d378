"""OTLP request bodies into the store's rows: protobuf or JSON, optionally gzip, bounded.

Bodies are parsed with the opentelemetry-proto messages (``ParseFromString``; JSON through
protobuf's ``json_format`` after turning OTLP/JSON's hex ids into the bytes protobuf expects).
Every problem is a :class:`BadRequest` with a reason a sender can act on; nothing is guessed.

What is stored is redacted as the probe records it (``store.redact``): URL paths as templates,
query values ``REDACTED``, free-text status and exception messages dropped. The probe's own spans
are templates already (redacting them again changes nothing); an EPR's server spans are not.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from store import redact, schema
from store.layout import WRITTEN_ARROW_SCHEMA

__all__ = [
    "JSON",
    "PROTOBUF",
    "BadRequest",
    "DecodedSpans",
    "TooLarge",
    "decode_metrics",
    "decode_traces",
    "inflate",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS = ("Unset", "Ok", "Error")
_END_NS = 2**63 - 1  # what a timestamp[ns] column holds (year 2262)
# Attributes whose values may hold patient data, and how each is made safe.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class BadRequest(ValueError):
    """The body cannot be used (400); the message says why."""


class TooLarge(ValueError):
    """The body, or what it inflates to, is over the limit (413)."""


def inflate(body: bytes, encoding: str, limit_bytes: int) -> bytes:
    """The body without its ``Content-Encoding`` (``gzip``, ``deflate`` or none), at most ``limit_bytes``.

    Inflation stops at the limit, so a gzip bomb costs ``limit_bytes`` of memory, not its size.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit_bytes:
            raise TooLarge(f"body of {len(body)} bytes is over the limit of {limit_bytes}")
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported (gzip, deflate or none)")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {encoding} body is corrupt: {exc}") from exc
    if len(out) > limit_bytes:
        raise TooLarge(f"body inflates to more than the limit of {limit_bytes} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is cut off")
    return out


def _parse(body: bytes, content_type: str, message: Any) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise BadRequest(f"not an OTLP protobuf message: {exc}") from exc
        return message
    if kind == JSON:
        try:
            document = json.loads(body)
            json_format.ParseDict(_ids_as_base64(document), message, ignore_unknown_fields=True)
        except (ValueError, RecursionError, json_format.ParseError, TypeError) as exc:
            raise BadRequest(f"not OTLP/JSON: {str(exc)[:300]}") from exc
        return message
    raise BadRequest(f"Content-Type {content_type!r} is not supported ({PROTOBUF} or {JSON})")


def _ids_as_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError as exc:
                    raise BadRequest(f"{key} {value[:40]!r} is not hexadecimal") from exc
            else:
                value = _ids_as_base64(value)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_ids_as_base64(v) for v in node]
    return node


def _render(value: AnyValue) -> str:
    """An attribute value as the store keeps it (``store.writer.render_attribute_value``'s forms)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "array_value":
        return json.dumps([_plain(v) for v in value.array_value.values], separators=(",", ":"))
    if which == "kvlist_value":
        return json.dumps({kv.key: _plain(kv.value) for kv in value.kvlist_value.values}, separators=(",", ":"))
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return ""


def _plain(value: AnyValue) -> object:
    which = value.WhichOneof("value")
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return _render(value)
    return getattr(value, which) if which else None


def _attributes(items: Any) -> dict[str, str]:
    return {kv.key: _render(kv.value) for kv in items}


# A span's attributes, redacted, by each KeyValue's encoded bytes: probes send the same keys and
# values again and again (templates, methods, statuses, sites), and one C call to encode a pair and
# one lookup cost about half of reading its value's type and rendering it in Python. Bounded: the
# memo starts again when full (numbers that never repeat only pass through it).
_PAIRS: dict[bytes, tuple[str, str] | None] = {}
_PAIRS_MAX = 65_536
_NAMES: dict[str, str] = {}  # span names, redacted (bounded the same way)


def _span_attributes(items: Any) -> dict[str, str]:
    """``redact.redact_attributes`` of the rendered attributes, pair by pair through the memo."""
    out: dict[str, str] = {}
    pairs = _PAIRS
    for kv in items:
        encoded = kv.SerializeToString()
        try:
            pair = pairs[encoded]
        except KeyError:
            if len(pairs) >= _PAIRS_MAX:
                pairs.clear()
            redacted = redact.redact_attributes({kv.key: _render(kv.value)})
            pair = pairs[encoded] = next(iter(redacted.items()), None)
        if pair is not None:  # None: a key dropped whatever its value (a message, a user id)
            out[pair[0]] = pair[1]
    return out


def _span_name(name: str) -> str:
    redacted = _NAMES.get(name)
    if redacted is None:
        if len(_NAMES) >= _PAIRS_MAX:
            _NAMES.clear()
        redacted = _NAMES[name] = redact.redact_span_name(name)
    return redacted


_COLUMNS = tuple(WRITTEN_ARROW_SCHEMA.names)


@dataclass
class DecodedSpans:
    """The spans of one request as the store's columns, with what the sender claimed about itself.

    Attributes:
        columns: per column of ``store.layout.WRITTEN_ARROW_SCHEMA``, one value per span (the
            values ``store.write_spans`` takes as rows), redacted. Built as columns, not rows:
            an Arrow table from columns costs a fraction of one from row dicts.
        keys: per span, its trace id + span id as bytes (the dedupe key).
        sites: the ``wardwatch.site`` values the spans carry (resource or span attribute).
        services: the ``service.name`` of each resource.
        site_less: some resource names no site.
    """

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in _COLUMNS})
    keys: list[bytes] = field(default_factory=list)
    sites: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    site_less: bool = False

    def __len__(self) -> int:
        return len(self.keys)

    def table(self) -> pa.Table:
        """The spans as a table of ``WRITTEN_ARROW_SCHEMA`` (what ``store.write_spans`` takes)."""
        return pa.Table.from_pydict(self.columns, schema=WRITTEN_ARROW_SCHEMA)

    def stamp_source(self, target: str | None) -> None:
        """An EPR's spans say where they came from: imported over OTLP, and the configured target."""
        attributes = self.columns[schema.SPAN_ATTRIBUTES]
        for i, pairs in enumerate(attributes):
            if not any(key == schema.ATTR_SOURCE for key, _ in pairs):
                attributes[i] = [*pairs, (schema.ATTR_SOURCE, schema.SOURCE_OTLP)]
        if target:
            resources = self.columns[schema.RESOURCE_ATTRIBUTES]
            for i, pairs in enumerate(resources):
                resources[i] = [*pairs, (schema.ATTR_TARGET, target)]


def decode_traces(body: bytes, content_type: str) -> DecodedSpans:
    """An ``ExportTraceServiceRequest`` body as the store's columns.

    Raises:
        BadRequest: not parseable, or a span with a bad id or time (the reason names it).
    """
    request = _parse(body, content_type, ExportTraceServiceRequest())
    out = DecodedSpans()
    c = out.columns
    timestamps, trace_ids, span_ids, parents = c[schema.TIMESTAMP], c[schema.TRACE_ID], c[schema.SPAN_ID], c[schema.PARENT_SPAN_ID]
    states, names, kinds, services = c[schema.TRACE_STATE], c[schema.SPAN_NAME], c[schema.SPAN_KIND], c[schema.SERVICE_NAME]
    resources, scope_names, scope_versions = c[schema.RESOURCE_ATTRIBUTES], c[schema.SCOPE_NAME], c[schema.SCOPE_VERSION]
    attributes, durations, codes, messages = c[schema.SPAN_ATTRIBUTES], c[schema.DURATION], c[schema.STATUS_CODE], c[schema.STATUS_MESSAGE]
    events, workflows, sites, steps, types = c[schema.EVENTS], c[schema.WORKFLOW], c[schema.SITE], c[schema.STEP], c[schema.SPAN_TYPE]
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get(schema.SERVICE_NAME_ATTR, "")
        out.services.add(service)
        resource_site = resource.get(schema.ATTR_SITE)
        if resource_site is None:
            out.site_less = True
        else:
            out.sites.add(resource_site)
        resource_pairs = list(resource.items())
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope_name, scope_version = scope_spans.scope.name, scope_spans.scope.version
            for i, span in enumerate(scope_spans.spans):
                out.keys.append(_key(span, r, s, i))
                attrs = _span_attributes(span.attributes)
                site = attrs.get(schema.ATTR_SITE)
                if site is not None:
                    out.sites.add(site)
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                if not 0 < start <= _END_NS or not 0 < end <= _END_NS:
                    raise BadRequest(f"{_where(r, s, i)}: start or end time is not between 1970 and 2262")
                timestamps.append(start)
                trace_ids.append(span.trace_id.hex())
                span_ids.append(span.span_id.hex())
                parents.append(span.parent_span_id.hex())
                states.append(span.trace_state)
                names.append(_span_name(span.name))
                kinds.append(_KINDS[span.kind] if 0 <= span.kind < len(_KINDS) else "Unspecified")
                services.append(service)
                resources.append(resource_pairs)
                scope_names.append(scope_name)
                scope_versions.append(scope_version)
                attributes.append(list(attrs.items()))
                durations.append(max(0, end - start))
                status = span.status
                message = status.message
                messages.append(redact.status_class(message) if message else "")
                codes.append(_STATUS[status.code] if 0 <= status.code < 3 else "Unset")
                events.append([
                    {"Timestamp": e.time_unix_nano, "Name": e.name,
                     "Attributes": list(_span_attributes(e.attributes).items())}
                    for e in span.events
                ] if len(span.events) else [])
                # the typed columns the writer promotes from the same attributes, as its rows get them
                workflows.append(attrs.get(schema.ATTR_WORKFLOW))
                sites.append(site if site is not None else resource_site)
                steps.append(attrs.get(schema.ATTR_STEP))
                types.append(attrs.get(schema.ATTR_SPAN_TYPE))
    return out


def _where(r: int, s: int, i: int) -> str:
    return f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"


def _key(span: Any, r: int, s: int, i: int) -> bytes:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or not any(trace_id):
        raise BadRequest(f"{_where(r, s, i)}: traceId must be 16 bytes, not all zero")
    if len(span_id) != 8 or not any(span_id):
        raise BadRequest(f"{_where(r, s, i)}: spanId must be 8 bytes, not all zero")
    if len(parent) not in (0, 8):
        raise BadRequest(f"{_where(r, s, i)}: parentSpanId must be empty or 8 bytes")
    return trace_id + span_id


def decode_metrics(body: bytes, content_type: str) -> tuple[set[str], bool, int]:
    """An ``ExportMetricsServiceRequest``: the sites it names, whether a resource names none, and
    how many data points it holds (metrics are checked and counted; the store keeps spans only).

    Raises:
        BadRequest: not parseable.
    """
    request = _parse(body, content_type, ExportMetricsServiceRequest())
    sites: set[str] = set()
    site_less = False
    points = 0
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        if schema.ATTR_SITE in resource:
            sites.add(resource[schema.ATTR_SITE])
        else:
            site_less = True
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                which = metric.WhichOneof("data")
                if which:
                    points += len(getattr(metric, which).data_points)
    return sites, site_less, points
