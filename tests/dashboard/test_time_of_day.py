"""The time-of-day grid for one site fills itself: with a run every 15 minutes a weekday x hour cell
holds 4 runs a week, under the 5 a cell needs, so the page shows 28 days unless the URL chooses a
window, and says how to fill a grid that is mostly blank."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator

import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dashboard import DashboardContext, DashboardServer, create_app
from dashboard.context import SiteInfo, WorkflowInfo
from store import ParquetSpanExporter
from tests.dashboard.test_bad_input import route

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from store import schema
    from tests.conftest import Probe

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({schema.ATTR_SITE: "ward-7",
                                                        schema.ATTR_SITE_TIMEZONE: "Europe/London"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    probe = Probe(provider, None, memory)  # type: ignore[arg-type]
    for quarter in range(1, 28 * 96 + 1):
        probe.run(int((NOW - dt.timedelta(minutes=15 * quarter)).timestamp()) * 1_000_000_000)
    path = tmp_path_factory.mktemp("time-of-day") / "data"
    ParquetSpanExporter(path).export(memory.get_finished_spans())
    provider.shutdown()
    context = DashboardContext(
        data_dir=path, sites=(SiteInfo("ward-7", "Ward 7", "Europe/London"),),
        workflows=(WorkflowInfo("open_patient_record", threshold_s=1.0),), now=lambda: NOW,
    )
    with DashboardServer(create_app(context), port=0) as server:
        yield server.url.rstrip("/")


def heatmap_shown(response_json: dict) -> int:
    """How many cells the page's heatmap shows (not blank)."""
    def find(node: object) -> dict | None:
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == "time-of-day-heatmap":
                return node["props"]["figure"]
            return next((f for f in map(find, node.values()) if f is not None), None)
        if isinstance(node, list):
            return next((f for f in map(find, node) if f is not None), None)
        return None

    z = find(response_json)["data"][0]["z"]
    if isinstance(z, dict):  # Plotly's typed array: {"dtype": "f8", "bdata": base64, "shape": "7, 24"}
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    return int(np.count_nonzero(~np.isnan(np.asarray(z, dtype=float))))


def test_without_a_window_one_site_is_shown_over_28_days_and_fills_the_grid(dashboard: str) -> None:
    response = route(dashboard, "/time-of-day", "?site=ward-7")
    assert response.status_code == 200
    assert "over the last 28 days" in response.text
    assert heatmap_shown(response.json()) == 7 * 24
    assert "sparse-note" not in response.text


def test_a_chosen_window_too_short_to_fill_the_grid_says_how_to_fill_it(dashboard: str) -> None:
    response = route(dashboard, "/time-of-day", "?site=ward-7&window=7d")
    assert response.status_code == 200
    assert heatmap_shown(response.json()) == 0  # 4 runs per cell: all blank
    assert "168 of the 168 hours with runs hold fewer than 5 runs in the last 7 days" in response.text
    assert "/time-of-day?window=28d&workflow=open_patient_record&site=ward-7" in json.dumps(response.json())


def test_the_threshold_says_where_it_comes_from_in_words() -> None:
    """'(T from default)' read as jargon: say that no objective sets it."""
    from dashboard.context import WorkflowInfo

    assert WorkflowInfo("open").threshold_origin == "the default (no objective sets one)"
    assert WorkflowInfo("open", threshold_source="objective 'record within 3 s'").threshold_origin == (
        "objective 'record within 3 s'")


def test_a_p90_of_few_runs_is_marked_as_the_report_marks_it() -> None:
    """'p90 2.3 s (n = 6)': a 90th percentile of 6 runs is its largest but one; say so."""
    from analysis.percentiles import few_samples, percentile

    assert few_samples(6, 0.9) and not few_samples(60, 0.9)
    for n in (1, 6, 9, 10, 29, 30, 100):
        assert few_samples(n, 0.9) == percentile(list(range(n)), 0.9).small_sample
