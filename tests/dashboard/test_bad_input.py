"""Malformed or unknown filter values in a URL: the page falls back to the default and says so,
never a server error. Pages are asked for as the browser asks for them (Dash's page router
callback, posted to a dashboard serving on loopback)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest

from analysis.config import PeriodConfig
from dashboard import DashboardContext, DashboardServer, create_app
from dashboard.context import SiteInfo, WorkflowInfo
from dashboard.filters import Filters

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A store with a few runs (written with the test probe of tests/conftest.py's shape).
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from store import ParquetSpanExporter, schema
    from tests.conftest import Probe

    path = tmp_path_factory.mktemp("bad-input") / "data"
    provider = TracerProvider(resource=Resource.create({schema.ATTR_SITE: "ward-7",
                                                        schema.ATTR_SITE_TIMEZONE: "Europe/London"}))
    exporter = ParquetSpanExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    probe = Probe(provider, exporter, None)  # type: ignore[arg-type]
    for minutes_ago in (90, 60, 30):
        probe.run(int((NOW - dt.timedelta(minutes=minutes_ago)).timestamp()) * 1_000_000_000)
    provider.shutdown()
    context = DashboardContext(
        data_dir=path,
        sites=(SiteInfo("ward-7", "Ward 7", "Europe/London"),),
        workflows=(WorkflowInfo("open_patient_record", threshold_s=1.0),),
        periods=(PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30)),),
        now=lambda: NOW,
    )
    with DashboardServer(create_app(context), port=0) as server:
        yield server.url.rstrip("/")


def route(url: str, path: str, search: str) -> httpx.Response:
    """The page at ``path?search`` as Dash's router renders it for the browser."""
    payload = {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                   {"id": "_pages_location", "property": "search", "value": search}],
        "changedPropIds": ["_pages_location.pathname"],
    }
    httpx.get(url + "/", timeout=30)  # the router's callback is registered on the first request
    return httpx.post(url + "/_dash-update-component", json=payload, timeout=60)


@pytest.mark.parametrize("path, search, note", [
    ("/", "?window=2026-13", "window '2026-13' is neither"),
    ("/", "?window=2026-00", "window '2026-00' is neither"),
    ("/", "?window=0000-01", "window '0000-01' is neither"),
    ("/", "?window=9999-12", "window '9999-12' is neither"),
    ("/", "?window=1d&window=7d", "window was given more than once"),
    ("/workflow", "?period=nope", "no period is called 'nope'"),
    ("/time-of-day", "?site=nowhere", "no site is called 'nowhere'"),
    ("/sites", "?workflow=nothing&window=2026-13", "no workflow is called 'nothing'"),
    ("/runs", "?site=a&site=b", "site was given more than once"),
])
def test_a_bad_filter_falls_back_to_the_default_with_a_visible_note(dashboard: str, path: str, search: str,
                                                                   note: str) -> None:
    response = route(dashboard, path, search)
    assert response.status_code == 200, response.text[:500]
    text = json.dumps(response.json(), ensure_ascii=False)
    assert note in text
    assert "filter-note" in text


def test_a_good_filter_has_no_note(dashboard: str) -> None:
    response = route(dashboard, "/workflow", "?window=28d&period=ward+rounds&site=ward-7")
    assert response.status_code == 200
    assert "filter-note" not in response.text


@pytest.mark.parametrize("window", ["2026-13", "2026-00", "0000-01", "9999-12", "2262-01", "26-01", "2026-1", ""])
def test_a_month_that_does_not_exist_or_lies_out_of_range_is_not_a_window(window: str) -> None:
    filters = Filters.from_query({"window": window})
    assert filters.window == "7d"
    assert bool(filters.notes) == (window != "")
    Filters.from_query({"window": "2261-12"}).bounds(NOW, "Europe/London")  # the last month there is


def test_a_repeated_key_in_a_search_string_is_a_note_not_a_choice() -> None:
    filters = Filters.from_search("?window=1d&window=7d&site=ward-7")
    assert (filters.window, filters.site) == ("7d", "ward-7")
    assert filters.notes and "window" in filters.notes[0]
    assert Filters.from_search({"a": 1}).notes == ()  # not a string: no filters at all


def test_notes_are_not_part_of_the_url() -> None:
    filters = Filters.from_query({"window": "2026-13", "site": "ward-7"})
    assert filters.query_string() == "?window=7d&site=ward-7"
    assert filters == Filters(site="ward-7")


def poll_findings(url: str, window: object) -> httpx.Response:
    """The overview's findings poll as the browser sends it, with ``window`` as its stored filters."""
    payload = {
        "output": "..findings.children...findings-poll.disabled..",
        "outputs": [{"id": "findings", "property": "children"}, {"id": "findings-poll", "property": "disabled"}],
        "inputs": [{"id": "findings-poll", "property": "n_intervals", "value": 1}],
        "state": [{"id": "findings-window", "property": "data", "value": window}],
        "changedPropIds": ["findings-poll.n_intervals"],
    }
    httpx.get(url + "/", timeout=30)
    return httpx.post(url + "/_dash-update-component", json=payload, timeout=60)


@pytest.mark.parametrize("window", [{"a": 1}, ["?window=1d"], 7, "?window=2026-13", "?window=7d"])
def test_the_findings_poll_takes_any_stored_window_and_answers(dashboard: str, window: object) -> None:
    text = ""
    for _ in range(100):  # the findings are looked for off the request: poll as the page does
        response = poll_findings(dashboard, window)
        assert response.status_code == 200, response.text[:500]
        text = response.text
        if "reading every run and request" not in text:
            break
    # answered for the default window (the store's one site last ran 30 minutes ago, so it may be
    # told as gone quiet: a finding, not an error)
    assert "in the last 7 days" in text and "could not be computed" not in text


@pytest.mark.parametrize("month", [{"a": 1}, ["2026-10"], "2026-13", None])
def test_the_report_callbacks_take_any_stored_month_and_answer(dashboard: str, month: object) -> None:
    httpx.get(dashboard + "/", timeout=30)
    for output, outputs, trigger in (
        ("..report-view.children...report-poll.disabled..",
         [("report-view", "children"), ("report-poll", "disabled")], ("report-build", "n_clicks")),
        (None, None, ("report-poll", "n_intervals")),
    ):
        if output is None:  # the poll's outputs carry Dash's hash for duplicate outputs: as the page sends them
            deps = httpx.get(dashboard + "/_dash-dependencies", timeout=30).json()
            output = next(d["output"] for d in deps if "report-data.data" in d["output"])
            outputs = [tuple(part.split("@")[0].split(".")) for part in output.strip(".").split("...")]
        payload = {
            "output": output,
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": trigger[0], "property": trigger[1], "value": 1}],
            "state": [{"id": "report-month", "property": "data", "value": month}],
            "changedPropIds": [".".join(trigger)],
        }
        response = httpx.post(dashboard + "/_dash-update-component", json=payload, timeout=60)
        assert response.status_code == 200, (output, response.text[:300])


def test_a_window_without_runs_says_there_is_not_enough_data_rather_than_no_findings(dashboard: str) -> None:
    text = ""
    for _ in range(100):
        response = poll_findings(dashboard, "?window=2025-01")
        assert response.status_code == 200
        text = response.text
        if "reading every run and request" not in text:
            break
    assert "No runs in the calendar month 2025-01: not enough data" in text
    assert "No findings" not in text
