"""What the live runner and the simulated history share to build a run's spans, so that a
simulated run and a measured one carry the same attributes in the same form."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry.trace import Span

from collector.timing import RequestTiming
from store import schema

__all__ = ["STEP_FAILED", "STEP_OK", "STEP_SKIPPED", "iso_utc", "set_phase_attributes"]

STEP_OK = "ok"
STEP_FAILED = "failed"
STEP_SKIPPED = "skipped"
_NS_PER_S = 1_000_000_000


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601 to the millisecond (as slots are recorded)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def set_phase_attributes(span: Span, timings: Sequence[RequestTiming]) -> None:
    """Set the phase attributes (``wardwatch.http.dns_s`` ... ``transfer_s``) of ``span``: each the
    sum over ``timings`` (a step's requests), in seconds."""
    span.set_attribute(schema.ATTR_DNS_S, sum(t.dns_ns for t in timings) / _NS_PER_S)
    span.set_attribute(schema.ATTR_CONNECT_S, sum(t.connect_ns for t in timings) / _NS_PER_S)
    span.set_attribute(schema.ATTR_TLS_S, sum(t.tls_ns for t in timings) / _NS_PER_S)
    span.set_attribute(schema.ATTR_TTFB_S, sum(t.ttfb_ns for t in timings) / _NS_PER_S)
    span.set_attribute(schema.ATTR_TRANSFER_S, sum(t.transfer_ns for t in timings) / _NS_PER_S)
