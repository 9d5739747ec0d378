"""One writer, several producers, readers in other processes at the same time."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from store import ParquetSpanExporter, connect, schema, write_spans

REPO = Path(__file__).resolve().parents[2]
T0_NS = int(dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_providers_of_several_sites_share_one_exporter(tmp_path: Path) -> None:
    data = tmp_path / "data"
    exporter = ParquetSpanExporter(data)
    sites = [f"Site {i}" for i in range(4)]
    providers = []
    for site in sites:
        provider = TracerProvider(resource=Resource.create({schema.ATTR_SITE: site}))
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_export_batch_size=7, schedule_delay_millis=5)
        )
        providers.append(provider)
    per_site = 60

    def produce(provider: TracerProvider) -> None:
        tracer = provider.get_tracer("t")
        for i in range(per_site):
            tracer.start_span(f"s{i}", start_time=T0_NS + i).end(end_time=T0_NS + i + 10)

    threads = [threading.Thread(target=produce, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for provider in providers:
        provider.shutdown()
    with connect(data) as con:
        counts = con.execute(
            'SELECT "Site", count(*), count(DISTINCT "SpanId") FROM spans GROUP BY 1 ORDER BY 1'
        ).fetchall()
    assert counts == [(site, per_site, per_site) for site in sites]


def _wait_until_ready(ready: Path, readers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 30
    while len(list(ready.iterdir())) < len(readers):
        assert time.monotonic() < deadline, "readers did not start"
        assert all(r.poll() is None for r in readers), "a reader died"
        time.sleep(0.01)


_READER = """
import json, sys, time
from pathlib import Path
from store import connect
path, batch, total = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
import os
(Path(sys.argv[4]) / str(os.getpid())).touch()  # ready: the writer may start
seen = []
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with connect(path) as con:
        n, distinct = con.execute('SELECT count(*), count(DISTINCT "SpanId") FROM spans').fetchall()[0]
    seen.append([n, distinct])
    if n >= total:
        break
print(json.dumps(seen))
"""


def test_readers_in_other_processes_see_only_whole_segments(tmp_path: Path) -> None:
    data = tmp_path / "data"
    batch, batches = 50, 40
    ParquetSpanExporter(data)  # makes the store, so readers can start before the first segment
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
    try:
        _wait_until_ready(ready, readers)
        for b in range(batches):
            rows = [
                {
                    schema.TIMESTAMP: T0_NS + b * 1000 + i,
                    schema.TRACE_ID: f"{b:032x}",
                    schema.SPAN_ID: f"{b:08x}{i:08x}",
                }
                for i in range(batch)
            ]
            write_spans(data, rows)
        outputs = [r.communicate(timeout=60) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.communicate()
    for (out, err), reader in zip(outputs, readers, strict=True):
        assert reader.returncode == 0, err
        seen = json.loads(out)
        assert seen[-1] == [batch * batches, batch * batches]
        for n, distinct in seen:
            assert n == distinct  # never a span twice
            assert n % batch == 0  # never part of a segment
        assert [n for n, _ in seen] == sorted(n for n, _ in seen)
        assert len({n for n, _ in seen}) > 1  # it did read while the store changed
