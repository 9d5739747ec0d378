"""Which spans were stored recently: a retried batch is stored once (trace id + span id).

OTLP senders retry a batch whose answer they did not get, so a receiver that promises "once"
must drop what it stored already. The memory is bounded twice, by count and by age (oldest
forgotten first); at start it is filled again from the segments written within the window, so
a batch stored just before a crash and sent again after the restart is still recognised.
A key costs about 100 bytes (the default million: about 100 MB).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import schema
from store.segments import list_segments

__all__ = ["RecentSpans"]


class RecentSpans:
    """A bounded set of (trace id + span id) keys, forgotten oldest first. Not thread-safe."""

    def __init__(self, max_keys: int, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_keys = max_keys
        self.window_s = window_s
        self._clock = clock
        self._keys: set[bytes] = set()
        self._batches: deque[tuple[float, tuple[bytes, ...]]] = deque()  # (added at, keys), oldest first

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        return key in self._keys

    def fresh(self, keys: Sequence[bytes]) -> list[int]:
        """Indices of the keys neither remembered nor repeated earlier in ``keys``."""
        self._forget(self._clock())
        seen = self._keys
        out, within = [], set()
        for i, key in enumerate(keys):
            if key not in seen and key not in within:
                within.add(key)
                out.append(i)
        return out

    def add(self, keys: Iterable[bytes], at: float | None = None) -> None:
        """Remember ``keys`` (stored at ``at``, default now)."""
        batch = tuple(k for k in keys if k not in self._keys)
        if not batch:
            return
        self._keys.update(batch)
        self._batches.append((self._clock() if at is None else at, batch))
        self._forget(self._clock())

    def _forget(self, now: float) -> None:
        while self._batches and (len(self._keys) > self.max_keys or self._batches[0][0] < now - self.window_s):
            _, batch = self._batches.popleft()
            self._keys.difference_update(batch)

    def load(self, store_path: Path) -> int:
        """Remember the spans of the segments written within the window, newest first, up to the
        bound (compaction rewrites segments, so a merged one counts as written when it was merged).
        Returns how many keys were loaded."""
        now = self._clock()
        dated = []
        for segment in list_segments(store_path):
            try:
                mtime = segment.stat().st_mtime
            except FileNotFoundError:  # merged away meanwhile
                continue
            if mtime >= now - self.window_s:
                dated.append((mtime, segment))
        loaded: list[tuple[float, list[bytes]]] = []
        total = 0
        for mtime, segment in sorted(dated, reverse=True):
            if total >= self.max_keys:
                break
            try:
                table = pq.read_table(segment, columns=[schema.TRACE_ID, schema.SPAN_ID])
            except FileNotFoundError:
                continue
            ids = pc.binary_join_element_wise(table[schema.TRACE_ID], table[schema.SPAN_ID], "").to_pylist()
            keys = [bytes.fromhex(i) for i in ids if i and len(i) == 48]
            loaded.append((mtime, keys))
            total += len(keys)
        for mtime, keys in reversed(loaded):  # oldest first, as they would have arrived
            self.add(keys, at=mtime)
        return len(self._keys)
