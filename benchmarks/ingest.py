"""Ingest: spans per second into the store, and Parquet bytes per span.

Side by side in one run:
- the SDK alone: making step-like spans with no processor (the ceiling the store is held to);
- the probe's path: the same spans through a ``BatchSpanProcessor`` into ``ParquetSpanExporter``
  (one segment per export batch of 512), timed until ``force_flush`` returns;
- ``store.write_spans`` with prepared rows (dicts, as an importer makes them) and with a prepared
  Arrow table, in batches of 512 and of 50,000.
Bytes per span are measured on the exporter's small segments, after ``store.compact`` merged
them, and on large generated segments.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from benchmarks.results import Figure, Progress, median
from benchmarks.synth import span_table
from store import ParquetSpanExporter, compact, rows_to_table, span_to_row, write_spans
from store import schema as s

__all__ = ["run"]

NAME = "ingest"
EXPORT_BATCH = 512


def _resource() -> Resource:
    return Resource.create({s.SERVICE_NAME_ATTR: "wardwatch-probe", s.ATTR_SITE: "ward-7",
                            s.ATTR_SITE_TIMEZONE: "Europe/London", s.ATTR_PROBE_ID: "bench"})


def _make_spans(provider: TracerProvider, count: int) -> None:
    """``count`` spans shaped like a probe's: a run root every eighth span, steps under it."""
    tracer = provider.get_tracer("wardwatch.collector", "0.1.0")
    made = 0
    while made < count:
        root = tracer.start_span("open-patient-record", kind=SpanKind.INTERNAL, attributes={
            s.ATTR_SPAN_TYPE: s.SPAN_TYPE_RUN, s.ATTR_WORKFLOW: "open-patient-record", s.ATTR_SITE: "ward-7",
            s.USER_AGENT_SYNTHETIC_TYPE: "test", s.ATTR_SLOT: "2026-10-01T08:00:00+00:00",
            s.ATTR_SLOT_OFFSET_S: 0.012,
        })
        made += 1
        ctx = trace.set_span_in_context(root)
        for index in range(min(7, count - made)):
            step = tracer.start_span(f"step-{index}", context=ctx, kind=SpanKind.CLIENT, attributes={
                s.ATTR_SPAN_TYPE: s.SPAN_TYPE_STEP, s.ATTR_WORKFLOW: "open-patient-record",
                s.ATTR_SITE: "ward-7", s.ATTR_STEP: f"step-{index}", s.ATTR_STEP_INDEX: index,
                s.HTTP_REQUEST_METHOD: "GET", s.URL_TEMPLATE: "/fhir/Patient/{id}",
                s.SERVER_ADDRESS: "epr.example", s.HTTP_RESPONSE_STATUS_CODE: 200,
                s.USER_AGENT_SYNTHETIC_TYPE: "test", s.ATTR_CONNECT_S: 0.0004, s.ATTR_TTFB_S: 0.1234,
                s.ATTR_TRANSFER_S: 0.0021, s.ATTR_RESPONSE_BYTES: 9306,
            })
            step.end()
            made += 1
        root.set_attribute(s.ATTR_RUN_STATUS, s.RUN_OK)
        root.set_attribute(s.ATTR_RUN_WAITING_S, 1.2345)
        root.end()


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in (path / "spans").rglob("*.parquet"))


def _sdk_only(count: int) -> float:
    provider = TracerProvider(resource=_resource())
    start = time.perf_counter()
    _make_spans(provider, count)
    return time.perf_counter() - start


def _through_exporter(count: int, path: Path) -> float:
    provider = TracerProvider(resource=_resource())
    # The queue holds every span, so none is dropped and the store receives all of them.
    provider.add_span_processor(BatchSpanProcessor(ParquetSpanExporter(path), max_queue_size=count + 1,
                                                   max_export_batch_size=EXPORT_BATCH,
                                                   schedule_delay_millis=1000))
    start = time.perf_counter()
    _make_spans(provider, count)
    provider.force_flush(timeout_millis=600_000)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed


def _rows(count: int) -> list[dict[str, Any]]:
    provider = TracerProvider(resource=_resource())
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _make_spans(provider, count)
    return [span_to_row(span) for span in memory.get_finished_spans()]


def _write_rows(rows: list[dict[str, Any]], path: Path, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        write_spans(path, rows[i:i + batch])
    return time.perf_counter() - start


def _write_table(rows: list[dict[str, Any]], path: Path, batch: int) -> float:
    tables = [rows_to_table(rows[i:i + batch]) for i in range(0, len(rows), batch)]
    start = time.perf_counter()
    for table in tables:
        write_spans(path, table)
    return time.perf_counter() - start


def run(*, spans: int = 20_000, repeats: int = 3, progress: Progress = lambda _m: None) -> list[Figure]:
    """Measure ingest rates (median of ``repeats`` interleaved rounds of ``spans`` spans each) and
    bytes per span."""
    rates: dict[str, list[float]] = {}
    sizes: dict[str, list[float]] = {}
    rows = _rows(spans)
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
        for round_ in range(repeats):
            progress(f"ingest: round {round_ + 1}/{repeats}, {spans:,} spans each way")
            base = Path(tmp) / f"r{round_}"
            rates.setdefault("SDK only (no processor)", []).append(spans / _sdk_only(spans))
            exported = base / "exporter"
            rates.setdefault("BatchSpanProcessor -> ParquetSpanExporter", []).append(
                spans / _through_exporter(spans, exported))
            sizes.setdefault(f"exporter segments ({EXPORT_BATCH} spans)", []).append(
                _store_bytes(exported) / spans)
            compact(exported, grace_s=0.0)
            compact(exported, grace_s=0.0)  # the second pass deletes the replaced segments
            sizes.setdefault("after store.compact", []).append(_store_bytes(exported) / spans)
            for batch in (EXPORT_BATCH, 50_000):
                rates.setdefault(f"write_spans(rows), batches of {batch:,}", []).append(
                    spans / _write_rows(rows, base / f"rows{batch}", batch))
                rates.setdefault(f"write_spans(Arrow table), batches of {batch:,}", []).append(
                    spans / _write_table(rows, base / f"table{batch}", batch))
        big = Path(tmp) / "generated"
        generated = span_table(np.sort(np.random.default_rng(3).integers(0, 80_000 * 10**9, 50_000))
                               + 1_790_000_000 * 10**9, np.random.default_rng(4))
        write_spans(big, generated)
        sizes["generated day segment (400,000 spans, 3 sites x 3 workflows)"] = [
            _store_bytes(big) / generated.num_rows]
    sdk = median(rates["SDK only (no processor)"])
    figures = [Figure(NAME, f"{name}", median(values), "spans/s", len(values) * spans)
               for name, values in rates.items()]
    exporter = median(rates["BatchSpanProcessor -> ParquetSpanExporter"])
    figures.append(Figure(NAME, "exporter path / SDK only (throughput ratio)", exporter / sdk, "x",
                          repeats, note="1.0 would mean the store costs nothing beyond making spans"))
    figures += [Figure(NAME, f"Parquet bytes per span, {name}", median(values), "B/span", len(values))
                for name, values in sizes.items()]
    return figures
