"""A full disk: spans wait in memory (bounded) and are written when space returns; what is dropped
is counted, logged once a minute in one line, and recorded as missed slots (issue 18, item 5)."""

from __future__ import annotations

import errno
import logging
import math
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import analysis
import store.writer
from store import schema
from store.writer import ParquetSpanExporter
from tests.campaign.support import TESTBED_SECRET, TESTBED_SECRET_VARIABLE, write_config
from wardwatch import wiring
from wardwatch.config import load_config

WRITER_LOG = "store.writer"


class Disk:
    """Injects ENOSPC into every segment write while ``full``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.refused = 0
        real = store.writer.write_segment

        def write_segment(directory, table, name=None):  # noqa: ANN001 - the patched function's own signature
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(directory, table, name)

        monkeypatch.setattr(store.writer, "write_segment", write_segment)


def run_spans(tracer, index: int) -> None:  # noqa: ANN001
    """One run as the runner records it: two steps, then the root (ended last)."""
    slot = datetime.fromtimestamp(1_796_000_000 + 60 * index, tz=UTC)
    root = tracer.start_span("open-record", attributes={
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: "open-record",
        schema.ATTR_SITE: "ward-7", schema.ATTR_SLOT: slot.isoformat(timespec="milliseconds"),
        schema.ATTR_RUN_STATUS: "ok",
    })
    from opentelemetry import trace

    for step in ("find-patient", "read-patient"):
        tracer.start_span(step, context=trace.set_span_in_context(root), attributes={
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, schema.ATTR_STEP: step,
            schema.ATTR_WORKFLOW: "open-record", schema.ATTR_SITE: "ward-7",
        }).end()
    root.end()


def stored(path: Path) -> tuple[int, list[str], list[str]]:
    """(spans, runs' slots, missed slots' reasons) in the store."""
    with analysis.open_store(path) as opened:
        spans = opened.sql("select count(*) as n from spans")["n"][0]
        runs = opened.runs()
        missed = opened.missed_slots()
    return int(spans), sorted(str(s) for s in runs["slot"]), sorted(missed["reason"])


def test_batches_wait_while_the_disk_is_full_and_are_written_when_space_returns(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=WRITER_LOG)
    disk = Disk(monkeypatch)
    now = [0.0]
    exporter = ParquetSpanExporter(tmp_path / "data", clock=lambda: now[0])
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    run_spans(tracer, 0)
    disk.full = True
    for index in range(1, 6):
        run_spans(tracer, index)
    assert disk.refused >= 15 and exporter.waiting_spans == 15
    disk.full = False
    run_spans(tracer, 6)
    assert exporter.waiting_spans == 0
    spans, slots, reasons = stored(tmp_path / "data")
    assert (spans, len(slots), reasons) == (21, 7, []), "every span written once, none lost"
    lines = [r for r in caplog.records if r.name == WRITER_LOG]
    assert len(lines) == 2, [r.getMessage() for r in lines]  # the trouble once, its end once
    assert "No space left on device" in lines[0].getMessage() and "can be written again" in lines[1].getMessage()
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    provider.shutdown()


def test_past_the_bound_the_oldest_are_dropped_counted_logged_once_a_minute_and_become_missed_slots(
    tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, logger=WRITER_LOG)
    disk = Disk(monkeypatch)
    now = [0.0]
    exporter = ParquetSpanExporter(tmp_path / "data", max_waiting_spans=6, clock=lambda: now[0])
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    disk.full = True
    for index in range(10):  # 30 spans; 6 fit
        run_spans(tracer, index)
        now[0] += 10.0  # 100 s in all: two log lines, not thirty
    assert exporter.waiting_spans == 6 + 8  # the last two runs whole, the eight dropped runs as missed slots
    assert (exporter.dropped_spans, exporter.dropped_runs) == (24, 8)
    lines = [r.getMessage() for r in caplog.records if r.name == WRITER_LOG]
    assert len(lines) == 2 and all("spans dropped so far" in line for line in lines), lines
    disk.full = False
    assert exporter.force_flush()
    spans, slots, reasons = stored(tmp_path / "data")
    assert (len(slots), reasons) == (2, ["not_stored"] * 8)
    assert spans == 6 + 8
    provider.shutdown()


def test_what_cannot_be_written_by_the_end_is_said_in_one_line(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=WRITER_LOG)
    disk = Disk(monkeypatch)
    exporter = ParquetSpanExporter(tmp_path / "data")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    disk.full = True
    run_spans(provider.get_tracer("test"), 0)
    provider.shutdown()
    exporter.shutdown()
    assert "3 spans could not be written" in caplog.records[-1].getMessage()


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a tmpfs (the injected ENOSPC tests above cover the same code)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_probe_on_a_full_tmpfs_loses_no_slot(epr, tmp_path, caplog):
    """A probe every 0.2 s on a 4 MB tmpfs, full for 3 s once it has stored its first run: every
    slot from its first to the last before the stop has a run or a missed slot, and the log says
    so in a few lines, with no traceback."""
    caplog.set_level(logging.WARNING)
    with tmpfs(tmp_path / "disk", "4m") as disk:
        data = disk / "data"
        config_path = write_config(tmp_path / "probe.yaml", epr.base_url, data, interval_s=0.2,
                                   workflows=["open-patient-record"])
        probe = wiring.build_probe(load_config(config_path), environ={TESTBED_SECRET_VARIABLE: TESTBED_SECRET})
        stop = threading.Event()
        thread = threading.Thread(target=probe.run_forever, args=(stop,), kwargs={"site": "ward-7"}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not list((data / "spans").rglob("*.parquet")):
            assert time.monotonic() < deadline, "the probe stored nothing in 15 s"
            time.sleep(0.05)
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        time.sleep(3.0)
        filler.unlink()
        time.sleep(2.0)
        stopped_s = time.time()
        stop.set()
        thread.join(timeout=30)
        probe.shutdown()
        with analysis.open_store(data) as opened:
            runs = opened.runs()
            missed = opened.missed_slots()
    recorded = [round(slot.timestamp() / 0.2) for slot in [*runs["slot"], *missed["slot"]]]
    expected = set(range(min(recorded), math.floor(stopped_s / 0.2)))
    messages = [r.getMessage() for r in caplog.records]
    print(f"full tmpfs: {len(expected)} slots, {len(runs)} runs, {len(missed)} missed slots, "
          f"{len(expected - set(recorded))} slots with neither, "
          f"{len(messages)} log lines ({sum(r.exc_info is not None for r in caplog.records)} with a traceback)")
    assert len(recorded) == len(set(recorded))
    assert not expected - set(recorded), "a slot has neither a run nor a missed slot"
    assert not any("Traceback" in m for m in messages) and all(r.exc_info is None for r in caplog.records), messages
    assert len(messages) <= 4, messages
