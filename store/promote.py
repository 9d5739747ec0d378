"""Typed columns promoted from the attribute maps when spans are written.

Every query of the analysis reads run status, waiting time, HTTP status, phases and the like.
Reading them out of the ``SpanAttributes`` map means decoding every key and value of every span
(about 8x slower in DuckDB than a typed column), so the writer derives them once, here, from the
maps it stores unchanged beside them. The maps stay the source of truth (as the ClickHouse
exporter's ``otel_traces`` table has them); these columns are a typed copy, null where the
attribute is absent or does not parse, as DuckDB's ``TRY_CAST`` would leave it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from store import schema

__all__ = ["PROMOTED_COLUMNS", "PromotedColumn", "promote"]


@dataclass(frozen=True)
class PromotedColumn:
    """A typed column copied from one attribute key of the span (or resource) attributes."""

    name: str
    arrow_type: pa.DataType
    key: str
    resource: bool = False  # from ResourceAttributes rather than SpanAttributes


_DOUBLE = pa.float64()
_INT = pa.int64()
_STR = pa.string()
_TIMESTAMP = pa.timestamp("ns", tz="UTC")

PROMOTED_COLUMNS: tuple[PromotedColumn, ...] = (
    PromotedColumn(schema.RUN_STATUS, _STR, schema.ATTR_RUN_STATUS),
    PromotedColumn(schema.WAITING_S, _DOUBLE, schema.ATTR_RUN_WAITING_S),
    PromotedColumn(schema.STEP_INDEX, _INT, schema.ATTR_STEP_INDEX),
    PromotedColumn(schema.ERROR_TYPE_COLUMN, _STR, schema.ERROR_TYPE),
    PromotedColumn(schema.HTTP_STATUS_CODE, _INT, schema.HTTP_RESPONSE_STATUS_CODE),
    PromotedColumn(schema.HTTP_METHOD, _STR, schema.HTTP_REQUEST_METHOD),
    PromotedColumn(schema.URL_TEMPLATE_COLUMN, _STR, schema.URL_TEMPLATE),
    PromotedColumn(schema.DNS_S, _DOUBLE, schema.ATTR_DNS_S),
    PromotedColumn(schema.CONNECT_S, _DOUBLE, schema.ATTR_CONNECT_S),
    PromotedColumn(schema.TLS_S, _DOUBLE, schema.ATTR_TLS_S),
    PromotedColumn(schema.TTFB_S, _DOUBLE, schema.ATTR_TTFB_S),
    PromotedColumn(schema.TRANSFER_S, _DOUBLE, schema.ATTR_TRANSFER_S),
    PromotedColumn(schema.RESPONSE_BYTES, _INT, schema.ATTR_RESPONSE_BYTES),
    PromotedColumn(schema.BUNDLE_PAGES, _INT, schema.ATTR_BUNDLE_PAGES),
    PromotedColumn(schema.SLOT, _TIMESTAMP, schema.ATTR_SLOT),
    PromotedColumn(schema.SLOT_OFFSET_S, _DOUBLE, schema.ATTR_SLOT_OFFSET_S),
    PromotedColumn(schema.MISSED_REASON, _STR, schema.ATTR_MISSED_REASON),
    PromotedColumn(schema.SIMULATED, pa.bool_(), schema.ATTR_SIMULATED, resource=True),
    PromotedColumn(schema.SITE_TIMEZONE, _STR, schema.ATTR_SITE_TIMEZONE, resource=True),
    PromotedColumn(schema.PROBE_ID, _STR, schema.ATTR_PROBE_ID, resource=True),
)


def _lookup(maps: pa.ChunkedArray, key: str) -> pa.ChunkedArray:
    """The value of ``key`` in each map (null where absent); the last value if it repeats."""
    if len(maps) == 0:
        return pa.chunked_array([], type=_STR)
    return pc.map_lookup(maps, pa.scalar(key, _STR), "last")


def _parse_each(values: pa.ChunkedArray, parse: Callable[[str], object], arrow_type: pa.DataType) -> pa.Array:
    """Row by row, for the rare batch where a vectorised cast fails on some value."""
    out = []
    for value in values.to_pylist():
        try:
            out.append(None if value is None else parse(value.strip()))
        except (ValueError, OverflowError):
            out.append(None)
    return pa.array(out, type=arrow_type)


def _as_int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _typed(values: pa.ChunkedArray, column: PromotedColumn) -> pa.ChunkedArray | pa.Array:
    arrow_type = column.arrow_type
    if column.resource and pa.types.is_boolean(arrow_type):
        return pc.fill_null(pc.equal(values, "true"), False)
    if pa.types.is_string(arrow_type):
        if column.name == schema.ERROR_TYPE_COLUMN:  # "" means no error, as in the views
            return pc.if_else(pc.equal(values, ""), pa.scalar(None, _STR), values)
        return values
    try:
        return pc.cast(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_floating(arrow_type):
        return _parse_each(values, float, arrow_type)
    if pa.types.is_integer(arrow_type):
        return _parse_each(values, _as_int, arrow_type)
    return _parse_each(values, lambda text: pc.cast(pa.scalar(text), arrow_type).as_py(), arrow_type)


def promote(table: pa.Table) -> pa.Table:
    """``table`` with every column of :data:`PROMOTED_COLUMNS` (re)computed from its maps.

    Columns are appended (or replaced) in the order of :data:`PROMOTED_COLUMNS`.
    """
    span_maps = table.column(schema.SPAN_ATTRIBUTES)
    resource_maps = table.column(schema.RESOURCE_ATTRIBUTES)
    for column in PROMOTED_COLUMNS:
        raw = _lookup(resource_maps if column.resource else span_maps, column.key)
        values = _typed(raw, column)
        index = table.schema.get_field_index(column.name)
        field = pa.field(column.name, column.arrow_type)
        if index >= 0:
            table = table.set_column(index, field, values)
        else:
            table = table.append_column(field, values)
    return table
