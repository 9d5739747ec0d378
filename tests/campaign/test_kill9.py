"""kill -9 the store writer, the compaction and the probe at random moments, 50 times in all.

After every kill: the store opens (``store.connect`` and ``analysis.open_store``); every span whose
write had completed before the kill is present, exactly once; no other span appears; no
temporary (partial) file is listed or read; a compaction run afterwards loses and duplicates
nothing. Delays come from ``random.Random(SEED)``.

Kills: 20 writers, 20 writers that compact after every batch (so kills land inside compaction),
6 in-place upgrades of a schema-1 store (``store.upgrade_store``),
4 real ``wardwatch probe`` processes probing the testbed (with background compaction).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import analysis
import store
from store.layout import TEMP_SUFFIX
from tests.campaign.support import WARDWATCH, child_env, kill_hard, wait_gone, write_config

SEED = 20261127
WRITER_KILLS = 20
COMPACTION_KILLS = 20
UPGRADE_KILLS = 6
PROBE_KILLS = 4
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fork_server() -> Iterator[subprocess.Popen[str]]:
    """The killable writers' fork server (a real child process); stopped after the module."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "killable_writer.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        assert process.stdout is not None
        assert "ready" in json.loads(process.stdout.readline())
        yield process
    finally:
        if process.stdin:
            process.stdin.close()
        kill_hard(process)
        if process.stdout:
            process.stdout.close()


def fork_writer(server: subprocess.Popen[str], **command: object) -> int:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(json.dumps(command) + "\n")
    server.stdin.flush()
    return int(json.loads(server.stdout.readline())["pid"])


def completed_ids(report: Path) -> set[str]:
    """Span ids of the batches the writer said were written (a torn last line says nothing)."""
    if not report.exists():
        return set()
    text = report.read_text(encoding="ascii")
    whole = text[: text.rfind("\n") + 1]
    return {span_id for line in whole.splitlines() for span_id in line.split()}


def stored_span_ids(path: Path, *, both_ways: bool = True) -> list[str]:
    """Every span id the store shows, with repeats; checks the store opens both ways."""
    if both_ways:
        with analysis.open_store(path) as opened:
            assert opened.runs() is not None
    con = store.connect(path)
    try:
        return [row[0] for row in con.execute("SELECT SpanId FROM spans").fetchall()]
    finally:
        con.close()


def check_no_partial_file_is_listed(path: Path) -> int:
    """Every listed segment is a whole Parquet file; returns how many temporary files lie around."""
    listed = store.list_segments(path)
    for segment in listed:
        assert not segment.name.startswith(".") and not segment.name.endswith(TEMP_SUFFIX)
        pq.read_metadata(segment)  # a torn file would fail here
    return sum(1 for p in (path / "spans").rglob(f"*{TEMP_SUFFIX}"))


def check_store(path: Path, written: set[str], possible_prefixes: set[str], *, both_ways: bool = True) -> int:
    ids = stored_span_ids(path, both_ways=both_ways)
    assert len(ids) == len(set(ids)), "a span is stored twice"
    missing = written - set(ids)
    assert not missing, f"{len(missing)} spans written before the kill are gone, e.g. {sorted(missing)[:3]}"
    strangers = {i for i in ids if i[:4] not in possible_prefixes}
    assert not strangers, f"spans no writer wrote: {sorted(strangers)[:3]}"
    return check_no_partial_file_is_listed(path)


@pytest.mark.parametrize(("mode", "kills", "first_kill"), [("write", WRITER_KILLS, 0), ("compact", COMPACTION_KILLS, 1000)])
def test_store_writer_killed_at_random_moments(fork_server, tmp_path: Path, mode: str, kills: int, first_kill: int) -> None:
    rng = random.Random(SEED + first_kill)
    path = tmp_path / "store"
    store.init_store(path)
    written: set[str] = set()
    prefixes: set[str] = set()
    temp_files = 0
    for kill in range(first_kill, first_kill + kills):
        report = tmp_path / f"report-{kill}.txt"
        prefixes.add(f"{kill:04x}")
        pid = fork_writer(fork_server, store=str(path), kill=kill, seed=rng.randrange(1 << 30), mode=mode,
                          report=str(report), grace_s=rng.choice([0.0, 0.2]))
        deadline = time.monotonic() + rng.uniform(0.05, 0.4)
        seen = written
        while mode == "write" and time.monotonic() < deadline:
            # a reader at the same time sees whole files only, and never loses what it saw
            now_seen = set(stored_span_ids(path, both_ways=False))
            assert seen <= now_seen
            seen = now_seen
            time.sleep(0.05)
        time.sleep(max(0.0, deadline - time.monotonic()))
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        written |= completed_ids(report)
        temp_files = check_store(path, written, prefixes, both_ways=kill % 5 == 0)
        if mode == "write":  # a restart compacts what the crash left: nothing lost, nothing twice
            store.compact(path, grace_s=0.0)
            check_store(path, written, prefixes, both_ways=False)
    assert len(written) > 10 * kills  # the writers did write between kills
    # compaction after all these crashes keeps every span exactly once
    for _ in range(2):
        store.compact(path, grace_s=0.0)
    check_store(path, written, prefixes)
    print(f"{mode}: {kills} kills, {len(written)} spans confirmed, {temp_files} temp files left")


def make_version_1_store(path: Path, prefix: int) -> set[str]:
    """A store of schema version 1 (no typed columns), with plain and merged segments; its span ids."""
    import json

    from store.layout import WRITTEN_ARROW_SCHEMA

    ids: set[str] = set()
    for batch in range(8):
        rows = [{"Timestamp": 1_795_000_000 * 10**9 + (batch * 30 + i) * 10**9 * 3000, "TraceId": f"{prefix:016x}{batch:016x}",
                 "SpanId": f"{prefix:04x}{batch:06x}{i:06x}", "SpanAttributes": {"wardwatch.span.type": "step"}}
                for i in range(30)]
        store.write_spans(path, rows)
        ids |= {r["SpanId"] for r in rows}
        if batch == 4:
            store.compact(path, grace_s=3600.0)  # merged segments, and the replaced ones still there
    for segment in (path / "spans").rglob("*.parquet"):
        table = pq.read_table(segment)
        pq.write_table(table.select(WRITTEN_ARROW_SCHEMA.names).replace_schema_metadata(table.schema.metadata), segment)
    (path / "store.json").write_text(json.dumps({"schema_version": 1}), encoding="utf-8")
    return ids


def test_upgrade_killed_at_random_moments(fork_server, tmp_path: Path) -> None:
    """An in-place upgrade killed -9 leaves a store that says which version it is; running the
    upgrade again gives every span exactly once."""
    import shutil

    rng = random.Random(SEED + 3000)
    interrupted = 0
    template = tmp_path / "version-1"
    written = make_version_1_store(template, 0x3000)
    for kill in range(UPGRADE_KILLS):
        path = tmp_path / f"store-{kill}"
        shutil.copytree(template, path)
        report = tmp_path / f"upgrade-{kill}.txt"
        pid = fork_writer(fork_server, store=str(path), kill=kill, seed=0, mode="upgrade", report=str(report))
        time.sleep(rng.uniform(0.0, 0.5))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had finished
        wait_gone(pid)
        if store.read_schema_version(path) == 1:
            interrupted += 1
            with pytest.raises(store.StoreError, match="upgrade"):
                store.connect(path)  # refused with the way out, not misread
            store.upgrade_store(path)
        check_store(path, written, {f"{0x3000:04x}"})
    print(f"upgrade: {UPGRADE_KILLS} kills, {interrupted} of them mid-upgrade")


def test_probe_killed_at_random_moments(epr, tmp_path: Path) -> None:
    """A real `wardwatch probe` (exports every second, compacts every 0.5 s) killed -9 at a random
    moment after its first export: whatever a reader had seen in the store before the kill is
    still there, exactly once."""
    rng = random.Random(SEED + 2000)
    path = tmp_path / "store"
    config = write_config(tmp_path / "probe.yaml", epr.base_url, path, interval_s=0.3,
                          workflows=["open-patient-record"], compaction_interval_s=0.5)
    seen: set[str] = set()
    for _ in range(PROBE_KILLS):
        process = subprocess.Popen(
            [*WARDWATCH, "probe", "-c", str(config), "--site", "ward-7"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(),
        )
        try:
            assert process.stderr is not None
            started = process.stderr.readline()
            assert "probing" in started, started + process.stderr.read()
            before, first_export = len(seen), time.monotonic() + 15
            while len(seen) == before and time.monotonic() < first_export:
                time.sleep(0.1)
                if (path / "store.json").exists():
                    seen |= set(stored_span_ids(path, both_ways=False))
            assert len(seen) > before, "the probe exported nothing in 15 s"
            deadline = time.monotonic() + rng.uniform(0.0, 1.5)
            while time.monotonic() < deadline:
                seen |= set(stored_span_ids(path, both_ways=False))
                time.sleep(0.1)
        finally:
            kill_hard(process)
            if process.stderr:
                process.stderr.close()
        ids = stored_span_ids(path)
        assert len(ids) == len(set(ids)), "a span is stored twice"
        assert seen <= set(ids), f"{len(seen - set(ids))} spans seen before the kill are gone"
        check_no_partial_file_is_listed(path)
        seen = set(ids)  # so the next life counts only its own exports
    # One more life, stopped cleanly once it has stored a run: it records the last kill's gap.
    process = subprocess.Popen(
        [*WARDWATCH, "probe", "-c", str(config), "--site", "ward-7"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
    )
    try:
        before, deadline = len(seen), time.monotonic() + 15
        while len(set(stored_span_ids(path, both_ways=False))) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        kill_hard(process)
    with analysis.open_store(path) as opened:
        runs = opened.runs()
        missed = opened.missed_slots()
    assert len(runs) >= PROBE_KILLS and set(runs["status"]) <= {"ok", "interrupted"}
    # the restarts noticed the probe had been down
    assert "probe_down" in set(missed["reason"])
    # ... and every slot from the first to the last has a run or a missed slot, exactly one
    # (a run killed before its spans were exported is a missed slot after the restart).
    indices = [round(slot.timestamp() / 0.3) for slot in [*runs["slot"], *missed["slot"]]]
    first, last = min(indices), max(indices)
    assert len(indices) == len(set(indices)), "a slot has both a run and a missed slot, or two of either"
    assert not set(range(first, last + 1)) - set(indices), (
        f"{len(set(range(first, last + 1)) - set(indices))} of {last - first + 1} slots have neither a run nor a missed slot"
    )
    print(f"probe: {PROBE_KILLS} kills, {last - first + 1} slots, {len(runs)} runs, {len(missed)} missed "
          f"({int((missed['reason'] == 'probe_down').sum())} probe_down)")
    store.compact(path, grace_s=0.0)
    assert len(set(stored_span_ids(path))) == len(stored_span_ids(path)) >= len(seen)


def test_the_upgrade_command_the_store_names_exists(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wardwatch.cli import main

    path = tmp_path / "store"
    written = make_version_1_store(path, 0x4000)
    with pytest.raises(store.StoreError, match="wardwatch upgrade-store"):
        store.connect(path)
    result = CliRunner().invoke(main, ["upgrade-store", str(path)])
    assert result.exit_code == 0, result.output
    check_store(path, written, {f"{0x4000:04x}"})
