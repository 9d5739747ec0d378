"""The one writer: requests queue their spans, a thread stores them, each request waits for its own.

Group commit: the writer takes everything queued (up to a batch bound), drops the spans stored
already (:class:`observatory.dedupe.RecentSpans`), writes the rest with ``store.write_spans`` (whole
segments: written under a temporary name, fsynced, renamed, the directory fsynced; typed columns
promoted as for every writer) and only then answers each request. So an acknowledged span is on
disk in a segment that survives kill -9, and a span stored once is never stored again even if its
acknowledgement was lost and the sender retries.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from observatory.dedupe import RecentSpans
from store import rows_to_table, write_spans
from store.layout import WRITTEN_ARROW_SCHEMA

__all__ = ["Busy", "Ingest", "Stored"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """The answer to one request: spans newly stored, and those dropped as already stored."""

    spans: int
    duplicates: int


class Busy(RuntimeError):
    """The writer is behind: more spans wait than the bound allows (429, retry later)."""

    def __init__(self, pending: int, retry_after_s: int) -> None:
        super().__init__(f"{pending} spans are waiting to be written; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


Done = Callable[[Stored | BaseException], None]


@dataclass
class _Item:
    spans: pa.Table | list[dict[str, Any]]  # a table of WRITTEN_ARROW_SCHEMA, or rows
    keys: list[bytes]
    done: Done

    def __len__(self) -> int:
        return len(self.keys)

    def table(self) -> pa.Table:
        if isinstance(self.spans, pa.Table):
            return self.spans
        return rows_to_table(self.spans).select(WRITTEN_ARROW_SCHEMA.names).cast(WRITTEN_ARROW_SCHEMA)


class Ingest:
    """The store's single writer for the observatory. :meth:`start` it, :meth:`stop` it."""

    def __init__(self, store_path: Path, seen: RecentSpans, *, max_pending_spans: int = 500_000,
                 max_batch_spans: int = 100_000, retry_after_s: int = 2) -> None:
        self.store_path = Path(store_path)
        self.seen = seen
        self.max_pending_spans = max_pending_spans
        self.max_batch_spans = max_batch_spans
        self.retry_after_s = retry_after_s
        self._queue: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stored_spans = 0
        self.duplicate_spans = 0
        self.segments_written = 0

    @property
    def pending_spans(self) -> int:
        return self._pending

    def submit(self, spans: pa.Table | list[dict[str, Any]], keys: list[bytes], done: Done) -> None:
        """Queue a request's spans (a table of ``store.layout.WRITTEN_ARROW_SCHEMA``, or rows as
        ``store.write_spans`` takes them) with their dedupe keys, one per span in order; ``done``
        is called from the writer thread with the outcome.

        Raises:
            Busy: the queue is over its bound (nothing was queued).
        """
        with self._cond:
            if self._stopping:
                raise Busy(self._pending, self.retry_after_s)
            if self._pending and self._pending + len(keys) > self.max_pending_spans:
                raise Busy(self._pending, self.retry_after_s)
            self._queue.append(_Item(spans, keys, done))
            self._pending += len(keys)
            self._cond.notify()

    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self._run, name="observatory-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[_Item] = []
                spans = 0
                while self._queue and (not batch or spans + len(self._queue[0]) <= self.max_batch_spans):
                    item = self._queue.popleft()
                    batch.append(item)
                    spans += len(item)
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._pending -= spans

    def _write(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._store(batch)
        except Exception as exc:  # noqa: BLE001 - answered per request; one bad request must not fail the others
            if len(batch) == 1:
                _log.error("could not store %d spans: %s", len(batch[0]), exc)
                batch[0].done(exc)
                return
            for item in batch:  # store them one by one: only the request at fault gets the error
                self._write([item])
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            item.done(outcome)

    def _store(self, batch: list[_Item]) -> list[Stored]:
        keys = [k for item in batch for k in item.keys]
        tables = [item.table() for item in batch]
        fresh = self.seen.fresh(keys)
        kept = set(fresh)
        if fresh:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            if len(fresh) < table.num_rows:
                table = table.take(pa.array(fresh, pa.int64()))
            self.segments_written += len(write_spans(self.store_path, table))
            self.seen.add([keys[i] for i in fresh])
        outcomes, start = [], 0
        for item in batch:
            stored = sum(1 for i in range(start, start + len(item)) if i in kept)
            outcomes.append(Stored(stored, len(item) - stored))
            start += len(item)
        self.stored_spans += len(fresh)
        self.duplicate_spans += len(keys) - len(fresh)
        return outcomes
