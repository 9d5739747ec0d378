"""Tracer providers for probe sites: site and probe identity as resource attributes.

Exporters (the Parquet store, OTLP, ...) are built by the composition root and handed in. One
exporter may serve several sites' providers: each provider gets a :class:`SharedExporter` view of
it whose ``shutdown`` only flushes, and whoever built the exporters shuts them down once, after
every provider (:class:`collector.probe.Probe` does).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from collector.config import SiteConfig
from store import schema

__all__ = [
    "PROBE_SERVICE_NAME",
    "SharedExporter",
    "probe_resource",
    "site_resource",
    "tracer_provider_for_site",
]

PROBE_SERVICE_NAME = "wardwatch-probe"
INSTRUMENTATION_SCOPE = "wardwatch.collector"


class SharedExporter(SpanExporter):
    """A view of an exporter shared between providers: exports and flushes, never shuts it down."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush only: the exporter's owner shuts it down."""
        self._exporter.force_flush()


def probe_resource(*, probe_id: str, simulated: bool = False) -> Resource:
    """The resource of the probe process itself (metrics): service name, probe id, simulated."""
    return Resource.create(
        {
            schema.SERVICE_NAME_ATTR: PROBE_SERVICE_NAME,
            schema.ATTR_PROBE_ID: probe_id,
            schema.ATTR_SIMULATED: "true" if simulated else "false",
        }
    )


def site_resource(site: SiteConfig, *, probe_id: str, simulated: bool = False) -> Resource:
    """The resource of a probe at ``site``: service name, site, time zone, probe id, simulated."""
    return Resource.create(
        {
            schema.SERVICE_NAME_ATTR: PROBE_SERVICE_NAME,
            schema.ATTR_SITE: site.name,
            schema.ATTR_SITE_TIMEZONE: site.timezone,
            schema.ATTR_PROBE_ID: probe_id,
            schema.ATTR_SIMULATED: "true" if simulated else "false",
        }
    )


def tracer_provider_for_site(
    site: SiteConfig,
    exporters: Sequence[SpanExporter],
    *,
    probe_id: str,
    simulated: bool = False,
    schedule_delay_ms: int = 1000,
) -> TracerProvider:
    """A tracer provider whose spans carry ``site`` and the probe's identity.

    Args:
        site: the site the probe stands at.
        exporters: where spans go; each gets its own :class:`BatchSpanProcessor` through a
            :class:`SharedExporter`, so shutting the provider down flushes but does not close them.
        probe_id: identifies this probe process (host name, or a name from the config).
        simulated: True only for simulated history; live probe runs are real measurements.
        schedule_delay_ms: how long a batch waits before export.

    The provider is not installed globally; get tracers from it with ``get_tracer``.
    """
    provider = TracerProvider(resource=site_resource(site, probe_id=probe_id, simulated=simulated))
    for exporter in exporters:
        provider.add_span_processor(
            BatchSpanProcessor(SharedExporter(exporter), schedule_delay_millis=schedule_delay_ms)
        )
    return provider
