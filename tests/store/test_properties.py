"""Write-then-read round-trips arbitrary attributes and durations (Hypothesis)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from store import ParquetSpanExporter, connect

T0_NS = 1_795_768_200_000_000_000  # 2026-11-27T08:30:00Z

keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
values = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.text(max_size=5), max_size=3).map(tuple),
)


def _same(stored: str, original: object) -> bool:
    if isinstance(original, bool):
        return stored == ("true" if original else "false")
    if isinstance(original, int):
        return int(stored) == original
    if isinstance(original, float):
        back = float(stored)
        return (math.isnan(back) and math.isnan(original)) or back == original
    if isinstance(original, tuple):
        return tuple(json.loads(stored)) == original
    return stored == original


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.dictionaries(keys, values, max_size=8),
    duration_ns=st.integers(min_value=0, max_value=10**15),
    offset_ns=st.integers(min_value=0, max_value=10**15),
)
def test_write_then_read_round_trips(attributes, duration_ns, offset_ns) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        provider = TracerProvider(resource=Resource.create({"service.name": "p"}))
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(ParquetSpanExporter(data)))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        start = T0_NS + offset_ns
        provider.get_tracer("t").start_span("x", attributes=attributes, start_time=start).end(
            end_time=start + duration_ns
        )
        provider.shutdown()
        [span] = memory.get_finished_spans()
        with connect(data) as con:
            [(stored, duration, epoch_us)] = con.execute(
                'SELECT "SpanAttributes", "Duration", epoch_us("Timestamp") FROM spans'
            ).fetchall()
    assert duration == duration_ns
    assert epoch_us == start // 1000
    assert set(stored) == set(span.attributes)
    for key, original in span.attributes.items():
        assert _same(stored[key], original), (key, stored[key], original)
