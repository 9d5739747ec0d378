"""The span store: OpenTelemetry spans as Parquet partitioned by UTC date, read with DuckDB.

Imports nothing else of Wardwatch's; ``collector`` and ``analysis`` import it.

Every public name is imported on first use (PEP 562): a probe that only writes never loads DuckDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store import schema
    from store.config import StoreConfig
    from store.errors import StoreError
    from store.importers import (
        ImportIssue,
        ImportReport,
        import_otlp_jsonl,
        import_server_timings,
    )
    from store.layout import (
        SPAN_ARROW_SCHEMA,
        check_store,
        init_store,
        read_schema_version,
    )
    from store.maintenance import (
        CompactionReport,
        Maintenance,
        apply_retention,
        compact,
        drop_spans,
        remove_replaced,
        upgrade_store,
    )
    from store.reader import VIEWS, connect, create_views, refresh
    from store.segments import list_segments
    from store.writer import (
        ParquetSpanExporter,
        rows_to_table,
        span_to_row,
        write_spans,
    )

# public name -> the module that defines it (a submodule names itself)
_SOURCES = {
    "apply_retention": "store.maintenance",
    "check_store": "store.layout",
    "compact": "store.maintenance",
    "CompactionReport": "store.maintenance",
    "connect": "store.reader",
    "create_views": "store.reader",
    "drop_spans": "store.maintenance",
    "import_otlp_jsonl": "store.importers",
    "import_server_timings": "store.importers",
    "ImportIssue": "store.importers",
    "ImportReport": "store.importers",
    "init_store": "store.layout",
    "list_segments": "store.segments",
    "Maintenance": "store.maintenance",
    "ParquetSpanExporter": "store.writer",
    "read_schema_version": "store.layout",
    "refresh": "store.reader",
    "remove_replaced": "store.maintenance",
    "rows_to_table": "store.writer",
    "schema": "store.schema",
    "SPAN_ARROW_SCHEMA": "store.layout",
    "span_to_row": "store.writer",
    "upgrade_store": "store.maintenance",
    "StoreConfig": "store.config",
    "StoreError": "store.errors",
    "VIEWS": "store.reader",
    "write_spans": "store.writer",
}

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
    "drop_spans",
    "import_otlp_jsonl",
    "import_server_timings",
    "init_store",
    "list_segments",
    "read_schema_version",
    "refresh",
    "remove_replaced",
    "rows_to_table",
    "schema",
    "span_to_row",
    "upgrade_store",
    "write_spans",
]

def __getattr__(name: str) -> Any:
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'store' has no attribute {name!r}") from None
    module = importlib.import_module(source)
    value = module if source == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
