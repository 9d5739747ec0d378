"""Stored span ids are remembered within bounds, and again after a restart (from the segments)."""

from __future__ import annotations

import os
from pathlib import Path

from observatory import Ingest, RecentSpans
from store import list_segments, schema, write_spans


def rows(n: int, offset: int = 0) -> list[dict]:
    return [{schema.TIMESTAMP: 1_790_000_000_000_000_000 + i, schema.TRACE_ID: f"{i + offset + 1:032x}",
             schema.SPAN_ID: f"{i + offset + 1:016x}"} for i in range(n)]


def keys(batch: list[dict]) -> list[bytes]:
    return [bytes.fromhex(r[schema.TRACE_ID] + r[schema.SPAN_ID]) for r in batch]


def test_repeats_within_and_across_batches_are_dropped():
    seen = RecentSpans(100, 3600)
    first = keys(rows(3))
    assert seen.fresh(first + first[:1]) == [0, 1, 2]
    seen.add(first)
    assert seen.fresh(first + keys(rows(1, offset=10))) == [3]


def test_the_memory_is_bounded_by_count_and_by_age():
    now = [1000.0]
    seen = RecentSpans(5, 60, clock=lambda: now[0])
    seen.add(keys(rows(3)))
    seen.add(keys(rows(3, offset=3)))
    assert len(seen) == 3  # the oldest batch forgotten to stay within 5
    now[0] += 61
    assert seen.fresh(keys(rows(3, offset=3))) == [0, 1, 2]  # older than the window
    assert len(seen) == 0


def test_a_restart_remembers_what_the_segments_hold(tmp_path: Path):
    store = tmp_path / "store"
    batch = rows(4)
    ingest = Ingest(store, RecentSpans(100, 3600)).start()
    outcomes = []
    ingest.submit(batch, keys(batch), outcomes.append)
    ingest.stop()
    assert outcomes[0].spans == 4
    # after a restart (a new process): the same batch, retried, is recognised
    seen = RecentSpans(100, 3600)
    assert seen.load(store) == 4
    assert seen.fresh(keys(batch)) == []
    # a segment older than the window is not read
    old = RecentSpans(100, 3600)
    for segment in list_segments(store):
        os.utime(segment, (0, 0))
    assert old.load(store) == 0


def test_a_failed_write_answers_only_the_request_at_fault(tmp_path: Path):
    store = tmp_path / "store"
    write_spans(store, rows(1, offset=100))
    ingest = Ingest(store, RecentSpans(100, 3600))
    outcomes: list = []
    good, bad = rows(2), rows(1, offset=50)
    bad[0][schema.TIMESTAMP] = "not a time"
    ingest.submit(good, keys(good), outcomes.append)
    ingest.submit(bad, keys(bad), outcomes.append)
    ingest.start().stop()
    assert outcomes[0].spans == 2
    assert isinstance(outcomes[1], Exception)
