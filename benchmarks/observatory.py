"""Observatory ingest: spans per second over OTLP/HTTP protobuf into the store, beside
``store.write_spans`` of the same spans in the same run.

The spans are the ingest benchmark's probe-shaped spans, made once with the SDK. The observatory
runs in this process on loopback (receiver, dedupe, the one writer with its fsynced segments);
four client threads send requests of 512 spans (the SDK's batch) encoded by the SDK's own encoder,
each waiting for its 200, as site probes do. The direct write gets the rows the receiver would
build, in batches of 512 (a probe writing its own store) and of 50,000 (one large write).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.ingest import _make_spans, _resource
from benchmarks.results import Figure, Progress, median
from observatory import Ingest, ObservatoryServer, RecentSpans, Tokens, create_app
from store import span_to_row, write_spans

__all__ = ["run"]

NAME = "observatory"
REQUEST_SPANS = 512
CLIENTS = 4
TOKEN = "bench-token"


def _spans(count: int) -> list[Any]:
    provider = TracerProvider(resource=_resource())
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _make_spans(provider, count)
    return list(memory.get_finished_spans())


def _over_otlp(bodies: list[bytes], path: Path) -> float:
    ingest = Ingest(path, RecentSpans(10_000_000, 86_400), max_pending_spans=10_000_000).start()
    app = create_app(Tokens({"ward-7": TOKEN}), ingest, max_body_bytes=64 * 1024 * 1024)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    failures: list[str] = []
    with ObservatoryServer(app, port=0) as server:
        url = f"{server.url}/v1/traces"

        def client(mine: list[bytes]) -> None:
            with httpx.Client(timeout=120) as http:
                for body in mine:
                    answer = http.post(url, content=body, headers=headers)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    ingest.stop()
    if failures:
        raise RuntimeError(f"the observatory refused {len(failures)} requests, e.g. {failures[0]}")
    return elapsed


def _direct(rows: list[dict[str, Any]], path: Path, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        write_spans(path, rows[i:i + batch])
    return time.perf_counter() - start


def run(*, spans: int = 20_000, repeats: int = 3, progress: Progress = lambda _m: None) -> list[Figure]:
    """Median of ``repeats`` interleaved rounds of ``spans`` spans each way."""
    made = _spans(spans)
    bodies = [encode_spans(made[i:i + REQUEST_SPANS]).SerializeToString() for i in range(0, len(made), REQUEST_SPANS)]
    rates: dict[str, list[float]] = {}
    over_otlp = f"observatory over OTLP/HTTP protobuf ({CLIENTS} clients, {REQUEST_SPANS} spans/request)"
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-observatory-") as tmp:
        for round_ in range(repeats):
            progress(f"observatory: round {round_ + 1}/{repeats}, {spans:,} spans each way")
            base = Path(tmp) / f"r{round_}"
            rows = [span_to_row(span) for span in made]
            for batch in (REQUEST_SPANS, 50_000):
                rates.setdefault(f"write_spans(rows) directly, batches of {batch:,}", []).append(
                    spans / _direct(rows, base / f"direct{batch}", batch))
            rates.setdefault(over_otlp, []).append(spans / _over_otlp(bodies, base / "observatory"))
    figures = [Figure(NAME, name, median(values), "spans/s", len(values) * spans,
                      target=">= 50,000 spans/s" if name == over_otlp else "",
                      met=median(values) >= 50_000 if name == over_otlp else None)
               for name, values in rates.items()]
    received = median(rates[over_otlp])
    for batch in (REQUEST_SPANS, 50_000):
        direct = median(rates[f"write_spans(rows) directly, batches of {batch:,}"])
        figures.append(Figure(NAME, f"observatory / direct write in batches of {batch:,} (throughput ratio)",
                              received / direct, "x", repeats, target=">= 0.3x", met=received / direct >= 0.3))
    return figures
