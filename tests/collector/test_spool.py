"""The probe's spool on its own: bounded, oldest runs dropped first and missed-slot markers last,
rows kept in order across a reopen (a new process), refused bodies set aside."""

from __future__ import annotations

from pathlib import Path

from collector.spool import SiteSpool


def test_rows_survive_a_reopen_in_order(tmp_path: Path) -> None:
    spool = SiteSpool(tmp_path / "ward-7.sqlite")
    for i in range(3):
        spool.put(bytes([i]) * 10, spans=2, runs=1, missed_only=False)
    spool.close()
    again = SiteSpool(tmp_path / "ward-7.sqlite")  # as the next probe process opens it
    row_id, body = again.oldest()
    assert body == b"\0" * 10
    again.delete(row_id)
    assert again.oldest()[1] == b"\1" * 10
    backlog = again.backlog()
    assert (backlog.batches, backlog.runs, backlog.spans) == (2, 2, 4)
    assert again.counters() == {"spooled_spans": 6, "sent_spans": 2}


def test_a_full_spool_drops_the_oldest_runs_first_and_missed_slot_markers_last(tmp_path: Path) -> None:
    spool = SiteSpool(tmp_path / "s.sqlite", max_bytes=300)
    spool.put(b"m" * 100, spans=1, runs=0, missed_only=True)  # the oldest: a missed-slot marker
    spool.put(b"a" * 100, spans=5, runs=1, missed_only=False)
    spool.put(b"b" * 100, spans=5, runs=1, missed_only=False)
    assert spool.put(b"c" * 100, spans=5, runs=1, missed_only=False) == 1
    bodies = []
    while (row := spool.oldest()) is not None:
        bodies.append(row[1][:1])
        spool.delete(row[0])
    assert bodies == [b"m", b"b", b"c"]
    assert spool.backlog().dropped_batches == 1


def test_a_refused_body_is_set_aside_not_lost(tmp_path: Path) -> None:
    spool = SiteSpool(tmp_path / "s.sqlite")
    spool.put(b"bad", spans=1, runs=0, missed_only=False)
    spool.put(b"good", spans=1, runs=0, missed_only=False)
    row_id, _ = spool.oldest()
    spool.reject(row_id, 400, "400 not an OTLP protobuf message")
    assert spool.oldest()[1] == b"good"
    assert spool.backlog().rejected_batches == 1
