"""Keeping a store small and fast: compaction of small segments, retention of old partitions.

Compaction merges the small live segments of a partition into one ``c-...parquet`` segment whose
Parquet footer lists every segment it replaces (transitively), written under a temporary name and
renamed into place. Readers leave out replaced segments from the moment the merged one is
visible, so no reader sees a span twice; the replaced files are deleted only ``grace_s`` later,
so a reader that listed the files just before the rename still finds them. The maintenance thread
deletes them as soon as their grace has passed (not at its next compaction pass), and when it
stops it moves those still in their grace out of sight (``.<name>.replaced``, deleted later): a
plain ``read_parquet('spans/**/*.parquet')`` then counts each span once. A lock file keeps two
compactions of one store from merging the same segments twice. Exact duplicate spans (same trace
and span id, e.g. a file imported twice) are merged into one.

Retention renames a partition older than the retention out of the readers' sight
(``.drop-date=...``) in one step, then deletes it: a reader sees a day whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import schema
from store.config import StoreConfig
from store.errors import StoreError
from store.layout import (
    COMPACTED_PREFIX,
    PARTITION_KEY,
    REPLACES_KEY,
    SEGMENT_SUFFIX,
    SPAN_ARROW_SCHEMA,
    SPANS_DIR,
    TEMP_SUFFIX,
    UPGRADABLE_VERSIONS,
    WRITTEN_ARROW_SCHEMA,
    check_store,
    new_segment_name,
    read_schema_version,
    write_schema_version,
)
from store.promote import promote
from store.segments import list_segments, read_replaces
from store.writer import write_segment

__all__ = [
    "CompactionReport",
    "Maintenance",
    "apply_retention",
    "compact",
    "drop_spans",
    "remove_replaced",
    "upgrade_store",
]

_log = logging.getLogger(__name__)

DEFAULT_SMALL_BYTES = 16 * 1024 * 1024
DEFAULT_GRACE_S = 60.0
LOCK_FILE = ".maintenance.lock"
DROP_PREFIX = ".drop-"
ASIDE_SUFFIX = ".replaced"  # a replaced segment moved out of a glob's sight, awaiting deletion


@dataclass
class CompactionReport:
    """What one compaction pass did.

    Attributes:
        merged: the merged segments written.
        inputs: how many segments they replace.
        spans_in: spans read from the inputs.
        spans_out: spans written (fewer only by exact duplicates).
        deleted: replaced or stale temporary files deleted.
        skipped: ``True`` when another process held the maintenance lock.
    """

    merged: list[Path] = field(default_factory=list)
    inputs: int = 0
    spans_in: int = 0
    spans_out: int = 0
    deleted: list[Path] = field(default_factory=list)
    skipped: bool = False


@contextmanager
def _maintenance_lock(path: Path) -> Iterator[bool]:
    """Hold the store's maintenance lock if no one else does; yields whether it was taken."""
    fd = os.open(Path(path) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _partitions(path: Path) -> list[Path]:
    spans = Path(path) / SPANS_DIR
    if not spans.is_dir():
        return []
    return sorted(p for p in spans.iterdir() if p.is_dir() and p.name.startswith(f"{PARTITION_KEY}="))


def _read_segment(segment: Path) -> pa.Table:
    # ParquetFile reads the one file: no partition column is inferred from the hive path.
    table = pq.ParquetFile(segment).read()
    return table.select(SPAN_ARROW_SCHEMA.names).cast(SPAN_ARROW_SCHEMA)


def _dedupe(table: pa.Table) -> pa.Table:
    keyed = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    firsts = keyed.group_by([schema.TRACE_ID, schema.SPAN_ID], use_threads=False).aggregate(
        [("__row", "min")]
    )
    indices = pc.sort_indices(firsts.column("__row_min"))
    return table.take(pc.take(firsts.column("__row_min"), indices))


def _delete_dead(partition: Path, live: list[Path], grace_s: float, now_s: float,
                 move_aside: bool = False) -> list[Path]:
    """Delete segments replaced by a live merged segment older than ``grace_s`` (with
    ``move_aside``, rename those still in their grace out of sight), and stale temps."""
    deleted: list[Path] = []
    live_names = {p.name for p in live}
    for merged in (p for p in live if p.name.startswith(COMPACTED_PREFIX)):
        try:
            in_grace = now_s - merged.stat().st_mtime < grace_s
            if in_grace and not move_aside:
                continue
            replaced = read_replaces(merged)
        except FileNotFoundError:
            continue
        for name in sorted(replaced - live_names):
            victim = partition / name
            try:
                if in_grace:
                    victim.rename(partition / f".{name}{ASIDE_SUFFIX}")
                else:
                    victim.unlink()
            except FileNotFoundError:
                continue
            deleted.append(victim)
    for entry in partition.iterdir():
        try:
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                if now_s - entry.stat().st_mtime >= max(grace_s, 3600.0):
                    entry.unlink()
                    deleted.append(entry)
            elif entry.name.startswith(".") and entry.name.endswith(ASIDE_SUFFIX):
                if now_s - entry.stat().st_ctime >= grace_s:  # ctime: when it was moved aside
                    entry.unlink()
                    deleted.append(entry)
        except FileNotFoundError:
            continue
    return deleted


def remove_replaced(path: Path, grace_s: float = DEFAULT_GRACE_S, *, move_aside: bool = False) -> list[Path]:
    """Delete the segments compaction replaced once ``grace_s`` has passed since; no merging.

    Cheap (footers only), so it can run often: replaced segments are what make a plain
    ``read_parquet('spans/**/*.parquet')`` count spans twice.

    Args:
        path: the store's data directory.
        grace_s: how long a replaced segment stays for readers that listed it before the merge.
        move_aside: rename replaced segments still in their grace to ``.<name>.replaced`` (out of
            every ``*.parquet`` glob, deleted by a later pass) instead of leaving them.

    Returns:
        The files deleted or moved aside (none when another process holds the maintenance lock).
    """
    path = Path(path)
    removed: list[Path] = []
    if not (path / SPANS_DIR).is_dir():
        return removed
    with _maintenance_lock(path) as locked:
        if not locked:
            return removed
        now_s = time.time()
        live_all = list_segments(path)
        for partition in _partitions(path):
            live = [p for p in live_all if p.parent == partition]
            removed += _delete_dead(partition, live, grace_s, now_s, move_aside)
    return removed


def compact(
    path: Path,
    small_bytes: int = DEFAULT_SMALL_BYTES,
    min_segments: int = 2,
    grace_s: float = DEFAULT_GRACE_S,
) -> CompactionReport:
    """Merge each partition's small live segments, and delete what is safely dead.

    Size-tiered, so that a pass costs what was written since the last one, not the whole day:
    the plain segments written since are merged together with those merged segments that are no
    larger than what is merged with them so far (smallest first). A day's merged segments thus
    stay few (about log2 of the day's size over a batch's) and each span is rewritten about that
    many times over the day, never once per pass.

    Args:
        path: the store's data directory.
        small_bytes: segments smaller than this are merged.
        min_segments: a partition is merged only when it has at least this many small segments.
        grace_s: how long replaced segments stay after their merged segment appeared, for readers
            that listed the files just before it did.

    Raises:
        StoreError: ``path`` is not a store of this schema version, or a segment is unreadable.
    """
    path = Path(path)
    check_store(path)
    report = CompactionReport()
    with _maintenance_lock(path) as locked:
        if not locked:
            report.skipped = True
            return report
        now_s = time.time()
        live_all = list_segments(path)
        for partition in _partitions(path):
            live = [p for p in live_all if p.parent == partition]
            report.deleted += _delete_dead(partition, live, grace_s, now_s)
            inputs = _tiered([p for p in live if _size(p) < small_bytes])
            if len(inputs) < min_segments:
                continue
            _merge(partition, inputs, report)
    pa.default_memory_pool().release_unused()  # a long-lived probe returns to its baseline
    return report


def _tiered(small: list[Path]) -> list[Path]:
    """The segments to merge: every plain one, and each merged one (fewest spans first) holding
    no more spans than those chosen before it. Spans, not bytes: a small segment is mostly
    Parquet's fixed overhead, a merged one compresses well."""
    chosen = [p for p in small if not p.name.startswith(COMPACTED_PREFIX)]
    total = sum(_spans_in(p) for p in chosen)
    merged = [(_spans_in(p), p) for p in small if p.name.startswith(COMPACTED_PREFIX)]
    for spans, segment in sorted(merged, key=lambda m: (m[0], m[1].name)):
        if spans > total:
            break
        chosen.append(segment)
        total += spans
    return chosen


def _spans_in(segment: Path) -> int:
    try:
        return pq.read_metadata(segment).num_rows
    except FileNotFoundError:
        return 1 << 62  # gone: never an input
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read the footer of {segment}: {exc}") from exc


def _size(segment: Path) -> int:
    try:
        return segment.stat().st_size
    except FileNotFoundError:
        return 1 << 62  # gone: never an input


def _merge(partition: Path, inputs: list[Path], report: CompactionReport) -> None:
    try:
        tables = [_read_segment(p) for p in inputs]
        replaces: set[str] = set()
        for p in inputs:
            replaces.add(p.name)
            if p.name.startswith(COMPACTED_PREFIX):
                replaces |= read_replaces(p)  # transitively: a reader may miss the middle one
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot compact {partition}: {exc}") from exc
    merged = pa.concat_tables(tables)
    spans_in = merged.num_rows
    merged = _dedupe(merged).sort_by(schema.TIMESTAMP)
    merged = merged.replace_schema_metadata(
        {REPLACES_KEY: json.dumps(sorted(replaces)).encode("utf-8")}
    )
    written = write_segment(partition, merged, new_segment_name(prefix=COMPACTED_PREFIX))
    report.merged.append(written)
    report.inputs += len(inputs)
    report.spans_in += spans_in
    report.spans_out += merged.num_rows


def drop_spans(path: Path, segment: Path, column: str, value: object) -> Path | None:
    """Replace one live segment by a merged segment without the spans whose ``column`` equals
    ``value``; the merged segment (none if no span is left) replaces the original at once for
    readers, as compaction's do, and the original is deleted.

    For removing what a store should no longer hold (the demo's simulated history) where
    compaction merged it with spans that stay.

    Returns:
        The new segment, or ``None`` when every span was dropped (the segment is just deleted).

    Raises:
        StoreError: another process is compacting, or the segment cannot be read or written.
    """
    with _maintenance_lock(path) as locked:
        if not locked:
            raise StoreError(f"{path} is being compacted by another process: try again shortly")
        try:
            table = _read_segment(segment)
            kept = table.filter(pc.invert(pc.fill_null(pc.equal(table.column(column), value), False)))
            written = None
            if kept.num_rows:
                replaces = {segment.name}
                if segment.name.startswith(COMPACTED_PREFIX):
                    replaces |= read_replaces(segment)
                kept = kept.replace_schema_metadata(
                    {REPLACES_KEY: json.dumps(sorted(replaces)).encode("utf-8")}
                )
                written = write_segment(
                    segment.parent, kept, new_segment_name(prefix=COMPACTED_PREFIX)
                )
            segment.unlink()
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot rewrite {segment}: {exc}") from exc
    return written


def upgrade_store(path: Path) -> int:
    """Rewrite an older store (see ``store.layout.UPGRADABLE_VERSIONS``) to this schema version.

    Every segment is rewritten in place (atomically, under its own name, keeping what a merged
    segment replaces) with the typed columns of ``store.promote`` derived from its attribute
    maps; then ``store.json`` records the new version. Safe to run again after a crash: a
    segment already rewritten is rewritten to the same content. Holds the maintenance lock, so
    no compaction runs meanwhile; stop probes that write to the store first.

    Returns:
        The number of segments rewritten (0 for a store already of this version).

    Raises:
        StoreError: the store is of a version this code cannot upgrade, or a segment cannot be
            read or written.
    """
    path = Path(path)
    version = read_schema_version(path)
    if version == schema.SCHEMA_VERSION:
        return 0
    if version not in UPGRADABLE_VERSIONS:
        raise StoreError(f"{path} holds store schema version {version}, which cannot be upgraded")
    rewritten = 0
    with _maintenance_lock(path) as locked:
        if not locked:
            raise StoreError(f"{path} is being compacted by another process: try again shortly")
        for partition in _partitions(path):
            for segment in sorted(partition.glob(f"*{SEGMENT_SUFFIX}")):
                if segment.name.startswith("."):
                    continue
                try:
                    table = pq.ParquetFile(segment).read()
                    metadata = table.schema.metadata
                    table = promote(table.select(WRITTEN_ARROW_SCHEMA.names))
                    table = table.cast(SPAN_ARROW_SCHEMA)
                    write_segment(partition, table.replace_schema_metadata(metadata), segment.name)
                except (OSError, pa.ArrowException) as exc:
                    raise StoreError(f"cannot upgrade {segment}: {exc}") from exc
                rewritten += 1
        write_schema_version(path)
    return rewritten


def apply_retention(
    path: Path, retention_days: int, today: dt.date | None = None
) -> list[str]:
    """Drop the partitions of UTC dates more than ``retention_days`` before ``today`` (UTC).

    With ``retention_days=30`` on 2026-11-27, ``date=2026-10-28`` is the oldest kept.

    Returns:
        The names of the partitions dropped.

    Raises:
        ValueError: ``retention_days`` is not positive.
        StoreError: ``path`` is not a store of this schema version.
    """
    if retention_days <= 0:
        raise ValueError(f"retention_days must be > 0, got {retention_days}")
    path = Path(path)
    check_store(path)
    oldest = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=retention_days)
    dropped = []
    spans = path / SPANS_DIR
    for partition in _partitions(path):
        try:
            day = dt.date.fromisoformat(partition.name.split("=", 1)[1])
        except ValueError:
            continue
        if day >= oldest:
            continue
        hidden = spans / f"{DROP_PREFIX}{partition.name}"
        os.replace(partition, hidden)  # one step out of the readers' sight
        shutil.rmtree(hidden)
        dropped.append(partition.name)
    for leftover in spans.glob(f"{DROP_PREFIX}*") if spans.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)  # from a drop interrupted by a crash
    return dropped


class Maintenance:
    """A background thread that compacts the store and applies retention every ``interval_s``.

    Args:
        path: the store's data directory.
        interval_s: seconds between passes.
        retention_days: drop older partitions; ``None`` keeps everything.
        small_bytes: segments smaller than this are merged.
        grace_s: how long replaced segments stay for readers.
        after_pass: called with the store's path after each pass, and once as the thread starts:
            what readers derive from the segments and keep beside them (the analysis'
            pre-aggregates, registered by the composition root; the store knows nothing of them).
            An exception is logged and the next pass calls it again.
    """

    def __init__(
        self,
        path: Path,
        interval_s: float = 300.0,
        retention_days: int | None = None,
        small_bytes: int = DEFAULT_SMALL_BYTES,
        grace_s: float = DEFAULT_GRACE_S,
        after_pass: Sequence[Callable[[Path], object]] = (),
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._path = Path(path)
        self._interval_s = interval_s
        self._retention_days = retention_days
        self._small_bytes = small_bytes
        self._grace_s = grace_s
        self._after_pass = tuple(after_pass)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    @classmethod
    def from_config(cls, config: StoreConfig, after_pass: Sequence[Callable[[Path], object]] = ()) -> Maintenance:
        """Maintenance as the ``store`` section configures it."""
        return cls(config.path, config.compaction_interval_s, config.retention_days, after_pass=after_pass)

    def run_once(self) -> CompactionReport:
        """One pass now: retention, then compaction."""
        if self._retention_days is not None:
            apply_retention(self._path, self._retention_days)
        report = compact(self._path, self._small_bytes, grace_s=self._grace_s)
        self._derive()
        self.passes += 1
        return report

    def _derive(self) -> None:
        for derive in self._after_pass:
            try:
                derive(self._path)
            except Exception:  # a background boundary: the spans are safe, the next pass tries again
                _log.exception("deriving from the store at %s failed", self._path)

    def _loop(self) -> None:
        # Between passes, replaced segments are deleted as their grace ends (a cheap sweep).
        sweep_s = max(self._grace_s / 2, 1.0)
        next_pass = time.monotonic() + self._interval_s
        self._derive()  # what was written before this process started, at once
        while not self._stop.wait(max(0.0, min(next_pass - time.monotonic(), sweep_s))):
            try:
                if time.monotonic() >= next_pass:
                    self.run_once()
                    next_pass = time.monotonic() + self._interval_s
                else:
                    remove_replaced(self._path, self._grace_s)
            except Exception:  # a background boundary: log, keep the probe running
                _log.exception("store maintenance failed at %s", self._path)

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("maintenance already started")
        self._thread = threading.Thread(target=self._loop, name="store-maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread, waiting up to ``timeout_s`` for a pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            try:  # nothing left for a plain Parquet reader to count twice
                remove_replaced(self._path, self._grace_s, move_aside=True)
            except Exception:  # a stopping boundary: log, let the process end
                _log.exception("store maintenance could not clear replaced segments at %s", self._path)
