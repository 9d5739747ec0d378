"""An observatory on loopback over a temporary store, and the SDK's own OTLP exporter to reach it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from observatory import Ingest, ObservatoryServer, RecentSpans, Tokens, create_app
from store import list_segments, schema

TOKENS = {"ward-7": "ward-7-token", "community-hospital": "community-token"}
EPR_TOKEN = "epr-token"


@dataclass
class Observatory:
    url: str
    store: Path
    ingest: Ingest
    app: object

    def stored(self) -> list[dict]:
        rows = []
        for segment in list_segments(self.store):
            rows += pq.read_table(segment, columns=[schema.TRACE_ID, schema.SPAN_ID, schema.SPAN_NAME,
                                                    schema.SITE, schema.SERVICE_NAME, schema.SPAN_ATTRIBUTES,
                                                    schema.RESOURCE_ATTRIBUTES, schema.STATUS_MESSAGE]).to_pylist()
        return rows


@pytest.fixture
def observatory(tmp_path: Path) -> Iterator[Observatory]:
    store = tmp_path / "central"
    seen = RecentSpans(100_000, 3600)
    seen.load(store)
    ingest = Ingest(store, seen, max_pending_spans=50_000).start()
    app = create_app(Tokens(TOKENS, [("epr", "testbed", EPR_TOKEN)]), ingest, max_body_bytes=1024 * 1024)
    with ObservatoryServer(app, port=0) as server:
        yield Observatory(server.url, store, ingest, app)
    ingest.stop()


def site_provider(url: str, site: str, token: str, **resource: str) -> TracerProvider:
    """A tracer provider as a site's probe has one, exporting with the SDK's OTLP/HTTP exporter."""
    attributes = {"service.name": "wardwatch-probe", schema.ATTR_SITE: site, **resource}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


MakeProvider = Callable[..., TracerProvider]
