"""The span store: OpenTelemetry spans as Parquet partitioned by UTC date, read with DuckDB.

Imports nothing else of Wardwatch's; ``collector`` and ``analysis`` import it.
"""

from store import schema
from store.config import StoreConfig
from store.errors import StoreError
from store.importers import ImportIssue, ImportReport, import_otlp_jsonl, import_server_timings
from store.layout import SPAN_ARROW_SCHEMA, check_store, init_store, read_schema_version
from store.maintenance import CompactionReport, Maintenance, apply_retention, compact
from store.reader import VIEWS, connect, create_views, list_segments, refresh
from store.writer import ParquetSpanExporter, rows_to_table, span_to_row, write_spans

__all__ = [
    "SPAN_ARROW_SCHEMA",
    "VIEWS",
    "CompactionReport",
    "ImportIssue",
    "ImportReport",
    "Maintenance",
    "ParquetSpanExporter",
    "StoreConfig",
    "StoreError",
    "apply_retention",
    "check_store",
    "compact",
    "connect",
    "create_views",
    "import_otlp_jsonl",
    "import_server_timings",
    "init_store",
    "list_segments",
    "read_schema_version",
    "refresh",
    "rows_to_table",
    "schema",
    "span_to_row",
    "write_spans",
]
