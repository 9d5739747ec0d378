"""The on-disk layout of a store, its marker file and the Arrow schema of a segment.

```
<path>/store.json                                  {"schema_version": N}
<path>/spans/date=YYYY-MM-DD/<segment>.parquet     one file per flushed batch (or compaction)
<path>/spans/date=YYYY-MM-DD/.<segment>.tmp        being written; readers never look at these
```
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pyarrow as pa

from store import schema
from store.errors import StoreError
from store.promote import PROMOTED_COLUMNS

__all__ = [
    "COMPACTED_PREFIX",
    "EVENT_ARROW_TYPE",
    "MARKER_FILE",
    "REPLACES_KEY",
    "SEGMENT_SUFFIX",
    "SPANS_DIR",
    "SPAN_ARROW_SCHEMA",
    "UPGRADABLE_VERSIONS",
    "WRITTEN_ARROW_SCHEMA",
    "write_schema_version",
    "TEMP_SUFFIX",
    "check_store",
    "check_writable",
    "duckdb_type",
    "init_store",
    "new_segment_name",
    "partition_dir",
    "partition_name",
    "read_schema_version",
]

MARKER_FILE = "store.json"
SPANS_DIR = "spans"
SEGMENT_SUFFIX = ".parquet"
TEMP_SUFFIX = ".tmp"
PARTITION_KEY = "date"
COMPACTED_PREFIX = "c-"  # a merged segment; its footer lists the segments it replaces
REPLACES_KEY = b"wardwatch.replaces"  # Parquet key-value metadata: JSON list of segment names

_MAP = pa.map_(pa.string(), pa.string())
_TIMESTAMP = pa.timestamp("ns", tz="UTC")

EVENT_ARROW_TYPE = pa.struct(
    [
        pa.field("Timestamp", _TIMESTAMP),
        pa.field("Name", pa.string()),
        pa.field("Attributes", _MAP),
    ]
)

SPAN_ARROW_SCHEMA = pa.schema(
    [
        pa.field(schema.TIMESTAMP, _TIMESTAMP, nullable=False),
        pa.field(schema.TRACE_ID, pa.string(), nullable=False),
        pa.field(schema.SPAN_ID, pa.string(), nullable=False),
        pa.field(schema.PARENT_SPAN_ID, pa.string(), nullable=False),
        pa.field(schema.TRACE_STATE, pa.string()),
        pa.field(schema.SPAN_NAME, pa.string()),
        pa.field(schema.SPAN_KIND, pa.string()),
        pa.field(schema.SERVICE_NAME, pa.string()),
        pa.field(schema.RESOURCE_ATTRIBUTES, _MAP),
        pa.field(schema.SCOPE_NAME, pa.string()),
        pa.field(schema.SCOPE_VERSION, pa.string()),
        pa.field(schema.SPAN_ATTRIBUTES, _MAP),
        pa.field(schema.DURATION, pa.int64(), nullable=False),
        pa.field(schema.STATUS_CODE, pa.string()),
        pa.field(schema.STATUS_MESSAGE, pa.string()),
        pa.field(schema.EVENTS, pa.list_(EVENT_ARROW_TYPE)),
        pa.field(schema.WORKFLOW, pa.string()),
        pa.field(schema.SITE, pa.string()),
        pa.field(schema.STEP, pa.string()),
        pa.field(schema.SPAN_TYPE, pa.string()),
        *(pa.field(c.name, c.arrow_type) for c in PROMOTED_COLUMNS),
    ]
)

# The columns a writer supplies: all but the typed ones ``store.promote`` derives from the maps.
WRITTEN_ARROW_SCHEMA = pa.schema(
    [f for f in SPAN_ARROW_SCHEMA if f.name not in {c.name for c in PROMOTED_COLUMNS}]
)


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type that DuckDB gives a Parquet column of ``arrow_type`` written by this store."""
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP_NS"
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_map(arrow_type):
        return f"MAP({duckdb_type(arrow_type.key_type)}, {duckdb_type(arrow_type.item_type)})"
    if pa.types.is_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in arrow_type)
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB type mapping for {arrow_type}")


def partition_name(day: dt.date) -> str:
    """The directory name of the partition holding spans that start on UTC date ``day``."""
    return f"{PARTITION_KEY}={day.isoformat()}"


def partition_dir(path: Path, day: dt.date) -> Path:
    """The partition directory under store ``path`` for UTC date ``day``."""
    return Path(path) / SPANS_DIR / partition_name(day)


def new_segment_name(now: dt.datetime | None = None, prefix: str = "") -> str:
    """A unique segment file name that sorts by creation time: ``<prefix><UTC time>-<uuid>.parquet``."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{prefix}{moment:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}{SEGMENT_SUFFIX}"


def _marker_path(path: Path) -> Path:
    return Path(path) / MARKER_FILE


def read_schema_version(path: Path) -> int:
    """The schema version recorded in ``<path>/store.json``.

    Raises:
        StoreError: ``path`` is not a Wardwatch store, or its marker file is unreadable.
    """
    marker = _marker_path(path)
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise StoreError(
            f"{path} is not a Wardwatch store (no {MARKER_FILE}): "
            "run `wardwatch probe` or `wardwatch demo` first, or point store.path at a store"
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot read {marker}: {exc.strerror or exc}") from exc
    try:
        version = json.loads(text)["schema_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{marker} is not a valid store marker (expected schema_version)") from exc
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(f"{marker}: schema_version must be an integer, not {version!r}")
    return version


# Older versions ``store.upgrade_store`` rewrites to this one.
UPGRADABLE_VERSIONS = (1,)


def write_schema_version(path: Path) -> None:
    """Record this code's schema version in ``<path>/store.json`` (atomically)."""
    marker = _marker_path(path)
    tmp = Path(path) / f".{MARKER_FILE}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"schema_version": schema.SCHEMA_VERSION}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, marker)
    except BaseException:
        _remove_quietly(tmp)  # a full disk must not leave the temporary marker behind
        raise


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


# What check_writable writes and removes: a segment's first pages are about this size.
_WRITE_CHECK_BYTES = 64 * 1024


def check_writable(path: Path) -> None:
    """Make ``path`` a store if it is not one, and check that spans can be written into it.

    A probe calls it before it runs anything, so a data directory that cannot take spans (a
    read-only file system, ``/dev/null``, ``/proc/self``, a regular file, a full disk) is one
    clear error at the start rather than runs measured and then lost. It writes and fsyncs a
    small temporary file among the partitions and removes it.

    Raises:
        StoreError: ``path`` cannot be a store of this version, or cannot be written.
    """
    path = Path(path)
    init_store(path)
    trial = path / SPANS_DIR / f".write-check-{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with open(trial, "wb") as f:
            f.write(bytes(_WRITE_CHECK_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StoreError(f"cannot write spans into the store at {path}: {exc.strerror or exc}") from exc
    finally:
        _remove_quietly(trial)


def check_store(path: Path) -> None:
    """Raise :class:`StoreError` unless ``path`` is a store of this code's schema version."""
    version = read_schema_version(path)
    if version in UPGRADABLE_VERSIONS:
        raise StoreError(
            f"{path} holds store schema version {version}, this Wardwatch reads version "
            f"{schema.SCHEMA_VERSION}: upgrade it in place with `wardwatch upgrade-store {path}` "
            "(nothing is lost; stop probes writing to it first)"
        )
    if version != schema.SCHEMA_VERSION:
        raise StoreError(
            f"{path} holds store schema version {version}, this Wardwatch reads version "
            f"{schema.SCHEMA_VERSION}: use a matching Wardwatch or a new store.path"
        )


def init_store(path: Path) -> None:
    """Make ``path`` a store (directories and ``store.json``) if it is not one yet.

    An existing store is checked instead; the marker is written under a temporary name and
    renamed, so a concurrent reader sees either no marker or a whole one.

    Raises:
        StoreError: ``path`` is a store of another schema version, or cannot be created.
    """
    path = Path(path)
    marker = _marker_path(path)
    try:
        (path / SPANS_DIR).mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            write_schema_version(path)
    except OSError as exc:
        raise StoreError(f"cannot create a store at {path}: {exc.strerror or exc}") from exc
    check_store(path)
