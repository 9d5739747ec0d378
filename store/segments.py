"""The live segment files of a store: which Parquet files a reader should see now.

Segments merged by compaction are left out as soon as the merged segment is visible: a merged
segment records in its Parquet metadata (``wardwatch.replaces``) every segment it replaces, so a
reader never sees a span twice, whichever moment it lists the files at. No DuckDB here: the writer
side (compaction) uses this too.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path

import pyarrow.parquet as pq

from store.errors import StoreError
from store.layout import (
    COMPACTED_PREFIX,
    PARTITION_KEY,
    REPLACES_KEY,
    SEGMENT_SUFFIX,
    SPANS_DIR,
)

__all__ = ["list_segments", "read_replaces"]


def read_replaces(segment: Path) -> frozenset[str]:
    """The names of the segments a merged segment replaces (empty for a plain segment).

    Raises:
        FileNotFoundError: the segment is gone (itself merged away meanwhile).
        StoreError: the segment's footer is unreadable.
    """
    try:
        metadata = pq.read_metadata(segment).metadata or {}
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read the footer of {segment}: {exc}") from exc
    raw = metadata.get(REPLACES_KEY)
    return frozenset(json.loads(raw)) if raw else frozenset()


def list_segments(
    path: Path, replaces_cache: MutableMapping[str, frozenset[str]] | None = None
) -> list[Path]:
    """The live segment files, sorted: ``spans/date=*/*.parquet``, never temp files, never a
    segment that a visible merged segment replaces.

    Args:
        path: the store's data directory.
        replaces_cache: remembers what each merged segment replaces (segments never change), to
            spare re-reading footers on every call; keyed by path.
    """
    spans = Path(path) / SPANS_DIR
    segments: list[Path] = []
    try:
        partitions = sorted(p for p in spans.iterdir() if p.name.startswith(f"{PARTITION_KEY}="))
    except FileNotFoundError:
        return segments
    cache = replaces_cache if replaces_cache is not None else {}
    for partition in partitions:
        try:
            names = sorted(
                entry.name
                for entry in partition.iterdir()
                if entry.name.endswith(SEGMENT_SUFFIX) and not entry.name.startswith(".")
            )
        except (FileNotFoundError, NotADirectoryError):  # dropped by retention meanwhile
            continue
        replaced: set[str] = set()
        gone: set[str] = set()
        for name in names:
            if not name.startswith(COMPACTED_PREFIX):
                continue
            key = str(partition / name)
            if key not in cache:
                try:
                    cache[key] = read_replaces(partition / name)
                except FileNotFoundError:  # merged into a newer segment, which lists its inputs
                    gone.add(name)
                    continue
            replaced |= cache[key]
        segments.extend(partition / n for n in names if n not in replaced and n not in gone)
    return segments
