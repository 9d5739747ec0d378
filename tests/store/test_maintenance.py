"""Compaction keeps every span exactly once while readers read; retention drops whole days."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import connect, init_store, list_segments, schema, write_spans
from store.maintenance import Maintenance, _maintenance_lock, apply_retention, compact
from store.reader import read_replaces

REPO = Path(__file__).resolve().parents[2]
DAY1 = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def _rows(start: dt.datetime, batch: int, size: int, trace: str = "t") -> list[dict]:
    return [
        {
            schema.TIMESTAMP: start + dt.timedelta(seconds=batch, microseconds=i),
            schema.TRACE_ID: f"{trace}{batch:031x}"[:32].ljust(32, "0"),
            schema.SPAN_ID: f"{start.month:02x}{start.day:02x}{batch:06x}{i:06x}",
            schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, "i": i},
        }
        for i in range(size)
    ]


def _count(data: Path) -> tuple[int, int]:
    with connect(data) as con:
        return con.execute(
            'SELECT count(*), count(DISTINCT ("TraceId", "SpanId")) FROM spans'
        ).fetchall()[0]


def test_compaction_merges_small_segments_and_keeps_every_span(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for b in range(6):
        write_spans(data, _rows(DAY1, b, 5) + _rows(DAY2, b, 3))
    before = {p.name for p in list_segments(data)}
    assert len(before) == 12 and _count(data) == (48, 48)

    report = compact(data, grace_s=0)
    assert report.inputs == 12 and report.spans_in == report.spans_out == 48
    assert len(report.merged) == 2
    live = list_segments(data)
    assert sorted(p.name[:2] for p in live) == ["c-", "c-"]
    # The replaced segments are still on disk (for readers that listed them), but not live.
    on_disk = {p.name for p in (data / "spans").rglob("*.parquet")}
    assert before <= on_disk
    assert _count(data) == (48, 48)
    for merged in live:
        assert read_replaces(merged) <= before

    second = compact(data, grace_s=0)  # the next pass deletes what the first one replaced
    assert {p.name for p in second.deleted} == before
    assert second.merged == []  # one segment per partition: nothing left to merge
    assert _count(data) == (48, 48)


def test_a_merged_segment_lists_what_it_replaces_transitively(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for b in range(3):
        write_spans(data, _rows(DAY1, b, 2))
    first_inputs = {p.name for p in list_segments(data)}
    [first] = compact(data, grace_s=3600).merged
    for b in range(10, 13):  # as much again: the first merged segment is merged with them
        write_spans(data, _rows(DAY1, b, 2))
    [second] = compact(data, grace_s=3600).merged
    assert first.name in read_replaces(second)
    assert first_inputs <= read_replaces(second)
    # Even if the reader finds the first merged segment gone, the originals stay excluded.
    first.unlink()
    assert list_segments(data) == [second]
    assert _count(data) == (12, 12)


def test_a_pass_merges_what_is_new_not_the_whole_day_again(tmp_path: Path) -> None:
    """Size-tiered: a merged segment joins a merge only when what is merged with it is as large."""
    data = tmp_path / "data"
    for b in range(8):
        write_spans(data, _rows(DAY1, b, 200))
    [day] = compact(data, grace_s=0).merged
    write_spans(data, _rows(DAY1, 100, 2))
    assert compact(data, grace_s=0).merged == []  # one new segment: nothing to merge yet
    write_spans(data, _rows(DAY1, 101, 2))
    report = compact(data, grace_s=0)
    assert (report.inputs, report.spans_in) == (2, 4)  # the two new ones, not the day's 1,600
    assert day in list_segments(data)
    assert _count(data) == (1604, 1604)


def test_compaction_merges_exact_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_spans(data, _rows(DAY1, 0, 4))
    write_spans(data, _rows(DAY1, 0, 4))  # the same file imported twice
    assert _count(data) == (8, 4)
    report = compact(data, grace_s=0)
    assert (report.spans_in, report.spans_out) == (8, 4)
    assert _count(data) == (4, 4)


def test_a_held_lock_skips_compaction(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_spans(data, _rows(DAY1, 0, 1))
    write_spans(data, _rows(DAY1, 1, 1))
    with _maintenance_lock(data) as locked:
        assert locked
        assert compact(data).skipped is True
    assert compact(data, grace_s=0).merged


def test_a_stale_temp_file_is_cleaned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [segment] = write_spans(data, _rows(DAY1, 0, 1))
    stale = segment.parent / ".crashed.parquet.tmp"
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert stale in compact(data, grace_s=0).deleted


def _wait_until_ready(ready: Path, readers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 30
    while len(list(ready.iterdir())) < len(readers):
        assert time.monotonic() < deadline, "readers did not start"
        assert all(r.poll() is None for r in readers), "a reader died"
        time.sleep(0.01)


_READER = """
import json, sys, time
from pathlib import Path
from store import StoreError, connect
path, batch, total = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
import os
(Path(sys.argv[4]) / str(os.getpid())).touch()  # ready: the writer may start
seen, errors = [], []
deadline = time.monotonic() + 40
while time.monotonic() < deadline:
    try:
        with connect(path) as con:
            n, distinct = con.execute(
                'SELECT count(*), count(DISTINCT ("TraceId", "SpanId")) FROM spans').fetchall()[0]
    except Exception as exc:
        errors.append(repr(exc))
        continue
    seen.append([n, distinct])
    if n >= total:
        break
print(json.dumps({"seen": seen, "errors": errors}))
"""


def test_readers_in_other_processes_during_writes_and_compactions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_store(data)
    batch, batches = 20, 60
    ready = tmp_path / "ready"
    ready.mkdir()
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, str(data), str(batch), str(batch * batches),
             str(ready)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    merges = deletions = 0
    try:
        for b in range(batches):
            write_spans(data, _rows(DAY2, b, batch))
            if b % 5 == 4:
                report = compact(data, grace_s=1.0)
                merges += len(report.merged)
                deletions += len(report.deleted)
                time.sleep(0.05)
        time.sleep(1.1)
        deletions += len(compact(data, grace_s=1.0).deleted)
        outputs = [r.communicate(timeout=60) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.communicate()
    assert merges >= 10 and deletions > 0
    assert _count(data) == (batch * batches, batch * batches)
    for (out, err), reader in zip(outputs, readers, strict=True):
        assert reader.returncode == 0, err
        result = json.loads(out)
        assert result["errors"] == []
        seen = result["seen"]
        assert seen[-1] == [batch * batches, batch * batches]
        for n, distinct in seen:
            assert n == distinct  # never a span twice
            assert n % batch == 0  # never part of a segment, never a segment missing mid-merge
        counts = [n for n, _ in seen]
        assert counts == sorted(counts)  # never a span lost once seen
        assert len(set(counts)) > 1  # it did read while the store changed


def test_retention_drops_whole_old_days(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for day in (dt.date(2026, 10, 27), dt.date(2026, 10, 28), dt.date(2026, 11, 27)):
        moment = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        write_spans(data, _rows(moment, 0, 2))
    (data / "spans" / ".drop-date=2026-01-01").mkdir()  # left by a crash mid-drop
    dropped = apply_retention(data, 30, today=dt.date(2026, 11, 27))
    assert dropped == ["date=2026-10-27"]
    assert sorted(p.name for p in (data / "spans").iterdir()) == [
        "date=2026-10-28", "date=2026-11-27"
    ]
    assert _count(data) == (4, 4)
    with pytest.raises(ValueError):
        apply_retention(data, 0)


def test_maintenance_thread(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for b in range(4):
        write_spans(data, _rows(DAY1, b, 2))
    maintenance = Maintenance(data, interval_s=0.02, grace_s=0)
    maintenance.start()
    try:
        deadline = time.monotonic() + 10
        while maintenance.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        maintenance.stop()
    assert maintenance.passes >= 2
    assert [p.name[:2] for p in list_segments(data)] == ["c-"]
    assert _count(data) == (8, 8)


span_ids = st.lists(
    st.lists(st.integers(0, 40), min_size=1, max_size=15), min_size=1, max_size=6
)


@settings(max_examples=25, deadline=None)
@given(batches=span_ids, rounds=st.integers(1, 3))
def test_compaction_keeps_every_span_property(batches, rounds) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        expected: set[str] = set()
        per_round = max(1, len(batches) // rounds)
        for start in range(0, len(batches), per_round):
            for ids in batches[start:start + per_round]:
                rows = [
                    {schema.TIMESTAMP: DAY1 + dt.timedelta(seconds=i), schema.TRACE_ID: "a" * 32,
                     schema.SPAN_ID: f"{i:016x}"}
                    for i in ids
                ]
                write_spans(data, rows)
                expected |= {f"{i:016x}" for i in ids}
            compact(data, grace_s=0)
        with connect(data) as con:
            got = [r[0] for r in con.execute('SELECT "SpanId" FROM spans').fetchall()]
        assert set(got) == expected  # every span kept
        written = Counter(f"{i:016x}" for ids in batches for i in ids)
        assert all(n <= written[span] for span, n in Counter(got).items())  # none made up or copied
        live = list_segments(data)
        one_merged_per_day = len({p.parent for p in live}) == len(live)
        if one_merged_per_day and all(p.name.startswith("c-") for p in live):  # each span once
            assert len(got) == len(expected)
