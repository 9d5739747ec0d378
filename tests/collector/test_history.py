"""Simulated history: the same spans as live runs, timed by the testbed's model instead of measured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.history import (
    ModelledResponse,
    SimulatedProbe,
    history_slots,
    record_history,
    route_key,
    step_route_key,
)
from store import schema
from testbed import load_scenario, modelled_delay, route_for, scenario_for_tests
from testbed.scenario import Scenario

LONDON = ZoneInfo("Europe/London")
NS = 1_000_000_000


def model_of(scenario: Scenario) -> Callable[[str, str, datetime], ModelledResponse]:
    """The testbed's latency model as the collector's delay model."""

    def model(key: str, site: str, at: datetime) -> ModelledResponse:
        delay = modelled_delay(key, site, at, scenario)
        return ModelledResponse(delay.total_s, delay.outage_status, 100)

    return model


class CountingExporter(SpanExporter):
    """Keeps every batch, so a test can see how the spans were grouped."""

    def __init__(self) -> None:
        self.batches: list[list[ReadableSpan]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    @property
    def spans(self) -> list[ReadableSpan]:
        return [span for batch in self.batches for span in batch]


@pytest.fixture
def make_probe(example: Any) -> Iterator[Callable[..., tuple[SimulatedProbe, InMemorySpanExporter]]]:
    made: list[SimulatedProbe] = []

    def make(scenario: Scenario | None = None, **kwargs: Any) -> tuple[SimulatedProbe, InMemorySpanExporter]:
        exporter = InMemorySpanExporter()
        probe = SimulatedProbe(
            example.targets,
            example.sites,
            exporter,
            model_of(load_scenario() if scenario is None else scenario),
            probe_id="history-test",
            patients=example.patients,
            **kwargs,
        )
        made.append(probe)
        return probe, exporter

    yield make
    for probe in made:
        probe.shutdown()


def recorded(probe: SimulatedProbe, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    probe.flush()
    spans = list(exporter.get_finished_spans())
    exporter.clear()
    return spans


def typed(spans: Sequence[ReadableSpan], span_type: str) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == span_type]


def shape(spans: Sequence[ReadableSpan]) -> dict[tuple[str, str], Any]:
    """Per (span type, step or span name): name, kind, attribute keys, parent's (type, name), count."""
    by_id = {s.context.span_id: s for s in spans}

    def label(span: ReadableSpan) -> tuple[str, str]:
        return (str(span.attributes.get(schema.ATTR_SPAN_TYPE)), str(span.attributes.get(schema.ATTR_STEP, span.name)))

    found: dict[tuple[str, str], Any] = {}
    for span in spans:
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        entry = (span.name, span.kind, frozenset(span.attributes), None if parent is None else label(parent))
        found.setdefault(label(span), set()).add(entry)
    counts = Counter(label(span) for span in spans)
    return {key: (entries, counts[key]) for key, entries in found.items()}


# -- route keys ---------------------------------------------------------------------------------


def test_route_keys_are_the_testbeds(example):
    steps = [step for workflow in example.workflows.values() for step in workflow.steps]
    assert {step_route_key(step) for step in steps} >= {"GET /Patient", "GET /Patient/{id}", "POST /Observation"}
    for step in steps:
        path = "/fhir" + step.path_template.render({name: "x-1" for name in step.path_template.variables})
        assert step_route_key(step) == route_for(step.method, path).key
    assert route_key("get", "/Patient/{{ patient_id }}/$everything") == "GET /Patient/{id}/$everything"


# -- the same spans as a live run ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["open-patient-record", "chart-observations", "ward-handover"])
def test_a_simulated_run_has_the_spans_of_a_live_run(name, example, tracer, span_exporter, make_probe):
    workflow = example.workflows[name].model_copy(update={"think_time_s": 0.0})
    live = example.run(workflow, tracer, "ward-7")
    assert live.status == schema.RUN_OK, live.message
    live_spans = span_exporter.get_finished_spans()
    probe, exporter = make_probe(scenario_for_tests(2.0))
    simulated = probe.record_run(workflow, "ward-7", slot=datetime(2026, 11, 3, 9, tzinfo=UTC), start=datetime(2026, 11, 3, 9, 0, 1, tzinfo=UTC))
    assert simulated.status == schema.RUN_OK
    sim_spans = recorded(probe, exporter)

    live_shape, sim_shape = shape(live_spans), shape(sim_spans)
    assert {span_type for span_type, _name in live_shape} >= {"run", "step", "auth"}
    # live runs made here have no slot: the simulated root carries the slot attributes in addition
    (sim_root,) = typed(sim_spans, schema.SPAN_TYPE_RUN)
    slot_keys = {schema.ATTR_SLOT, schema.ATTR_SLOT_OFFSET_S}
    assert slot_keys <= set(sim_root.attributes)
    key = (schema.SPAN_TYPE_RUN, workflow.name)
    ((name_, kind, keys, parent),), count = sim_shape[key]
    sim_shape[key] = ({(name_, kind, keys - slot_keys, parent)}, count)
    assert sim_shape == live_shape
    assert [s.name for s in simulated.steps] == [s.name for s in live.steps]
    assert [len(s.requests) for s in simulated.steps] == [len(s.requests) for s in live.steps]
    assert [s.http_status for s in simulated.steps] == [s.http_status for s in live.steps]
    assert [s.pages for s in simulated.steps] == [s.pages for s in live.steps]


def test_simulated_spans_carry_the_site_resource_marked_simulated(example, make_probe):
    probe, exporter = make_probe()
    probe.record_run(example.workflows["chart-observations"], "community-hospital", slot=None, start=datetime(2026, 11, 3, 9, tzinfo=UTC))
    spans = recorded(probe, exporter)
    for span in spans:
        resource = dict(span.resource.attributes)
        assert resource[schema.ATTR_SIMULATED] == "true"
        assert resource[schema.ATTR_SITE] == "community-hospital"
        assert resource[schema.ATTR_SITE_TIMEZONE] == "Europe/London"
        assert resource[schema.SERVICE_NAME_ATTR] == "wardwatch-probe"
    assert len({span.context.trace_id for span in spans}) == 1


# -- timings are the model's ---------------------------------------------------------------------


def durations(spans: Sequence[ReadableSpan], span_type: str = schema.SPAN_TYPE_STEP) -> dict[str, float]:
    return {s.attributes[schema.ATTR_STEP]: (s.end_time - s.start_time) / NS for s in typed(spans, span_type)}


def test_each_request_takes_the_modelled_delay_at_its_start(example, make_probe):
    scenario = load_scenario()
    probe, exporter = make_probe(scenario)
    workflow = example.workflows["open-patient-record"]
    start = datetime(2026, 11, 3, 9, 0, tzinfo=LONDON)  # a Tuesday, on the ward round
    result = probe.record_run(workflow, "community-hospital", slot=start, start=start)
    spans = recorded(probe, exporter)
    steps = {s.attributes[schema.ATTR_STEP]: s for s in typed(spans, schema.SPAN_TYPE_STEP)}
    for step in workflow.steps:
        span = steps[step.name]
        at = datetime.fromtimestamp(span.start_time // 1000 / 1e6, tz=UTC)
        expected = modelled_delay(step_route_key(step), "community-hospital", at, scenario)
        assert (span.end_time - span.start_time) / NS == pytest.approx(expected.total_s, abs=1e-6)
        assert span.attributes[schema.ATTR_TTFB_S] == pytest.approx(expected.total_s, abs=1e-6)
        assert expected.contribution_s("network") == pytest.approx(0.080)
    notes = modelled_delay("GET /DocumentReference", "community-hospital", start, scenario)
    assert "ward-round-notes" in notes.names
    (root,) = typed(spans, schema.SPAN_TYPE_RUN)
    assert root.attributes[schema.ATTR_RUN_WAITING_S] == pytest.approx(sum(durations(spans).values()), abs=1e-6)
    assert result.waiting_s == pytest.approx(root.attributes[schema.ATTR_RUN_WAITING_S])


def test_notes_on_a_ward_round_are_slower_than_in_the_afternoon(example, make_probe):
    probe, exporter = make_probe()
    workflow = example.workflows["open-patient-record"]
    notes_s = []
    for hour, minute in ((9, 0), (14, 10)):  # 14:10 is between the clinic's stalls
        start = datetime(2026, 11, 3, hour, minute, tzinfo=LONDON)
        probe.record_run(workflow, "ward-7", slot=start, start=start)
        notes_s.append(durations(recorded(probe, exporter))["notes"])
    ward_round_s, afternoon_s = notes_s
    contention_s = modelled_delay("GET /DocumentReference", "ward-7", datetime(2026, 11, 3, 9, tzinfo=LONDON), load_scenario()).contribution_s("ward-round-notes")
    assert contention_s > 0.5
    assert ward_round_s > afternoon_s + contention_s


def test_the_community_hospital_pays_its_wan_delay_on_every_request(example, make_probe):
    scenario = scenario_for_tests(10.0, network_ms={"community-hospital": 80.0, "ward-7": 2.0})
    probe, exporter = make_probe(scenario)
    workflow = example.workflows["ward-handover"]
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    probe.record_run(workflow, "ward-7", slot=start, start=start)
    ward = durations(recorded(probe, exporter))
    assert ward["latest-vitals"] == pytest.approx(40 * 0.012)
    probe.record_run(example.workflows["open-patient-record"], "community-hospital", slot=start, start=start)
    wan = durations(recorded(probe, exporter))
    assert all(value == pytest.approx(0.090) for value in wan.values()), wan


def test_think_time_is_in_the_wall_time_not_the_waiting_time(example, make_probe):
    probe, exporter = make_probe(scenario_for_tests(10.0))
    workflow = example.workflows["open-patient-record"].model_copy(update={"think_time_s": 0.5})
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    result = probe.record_run(workflow, "ward-7", slot=start, start=start)
    spans = recorded(probe, exporter)
    (root,) = typed(spans, schema.SPAN_TYPE_RUN)
    (auth,) = typed(spans, schema.SPAN_TYPE_AUTH)
    steps = len(workflow.steps)
    assert result.waiting_s == pytest.approx(steps * 0.010)
    assert result.wall_s == pytest.approx(steps * 0.010 + (steps - 1) * 0.5 + 0.010)
    assert (root.end_time - root.start_time) / NS == pytest.approx(result.wall_s)
    assert auth.end_time <= min(s.start_time for s in typed(spans, schema.SPAN_TYPE_STEP))


def test_the_token_is_shared_across_sites_and_renewed_as_the_cache_renews_it(example, make_probe):
    probe, exporter = make_probe(scenario_for_tests(10.0), token_lifetime_s=300.0)
    workflow = example.workflows["chart-observations"]
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    auth_spans = []
    for minute, site in ((0, "ward-7"), (1, "community-hospital"), (4, "ward-7"), (5, "ward-7")):
        moment = start + timedelta(minutes=minute)
        probe.record_run(workflow, site, slot=moment, start=moment)
        auth_spans.append(len(typed(recorded(probe, exporter), schema.SPAN_TYPE_AUTH)))
    # fetched at 09:00; reused at 09:01 from another site and at 09:04; renewed 30 s before expiry
    assert auth_spans == [1, 0, 0, 1]


# -- failures are the live ones ------------------------------------------------------------------


def test_the_outage_fails_runs_with_http_5xx_and_stops_them(example, make_probe):
    scenario = load_scenario()
    (outage,) = scenario.outages
    probe, exporter = make_probe(scenario)
    workflow = example.workflows["open-patient-record"]
    before = outage.start - timedelta(minutes=2)  # the token is fetched before the outage
    assert probe.record_run(workflow, "ward-7", slot=before, start=before).status == schema.RUN_OK
    recorded(probe, exporter)
    during = outage.start + timedelta(minutes=1)
    result = probe.record_run(workflow, "ward-7", slot=during, start=during)
    spans = recorded(probe, exporter)
    assert result.status == schema.RUN_FAILED and result.error_type == "http_5xx"
    assert result.message == "GET /fhir/Patient returned 503 Service Unavailable"
    (root,) = typed(spans, schema.SPAN_TYPE_RUN)
    assert root.attributes[schema.ATTR_RUN_STATUS] == schema.RUN_FAILED
    assert root.attributes[schema.ERROR_TYPE] == "http_5xx"
    assert root.status.description == result.message
    (step,) = typed(spans, schema.SPAN_TYPE_STEP)  # on_error: stop, so no later step ran
    assert step.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 503
    assert step.attributes[schema.ERROR_TYPE] == "http_5xx"
    assert schema.ATTR_BUNDLE_PAGES not in step.attributes
    assert not typed(spans, schema.SPAN_TYPE_AUTH)


def test_a_token_due_during_the_outage_is_an_auth_failure(example, make_probe):
    scenario = load_scenario()
    (outage,) = scenario.outages
    probe, exporter = make_probe(scenario)
    during = outage.start + timedelta(minutes=1)
    result = probe.record_run(example.workflows["chart-observations"], "ward-7", slot=during, start=during)
    spans = recorded(probe, exporter)
    assert result.status == schema.RUN_FAILED and result.error_type == "auth"
    (auth,) = typed(spans, schema.SPAN_TYPE_AUTH)
    assert auth.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 503
    (step,) = typed(spans, schema.SPAN_TYPE_STEP)
    assert step.end_time == step.start_time and step.attributes[schema.ERROR_TYPE] == "auth"
    # the failed fetch was not cached: the next run asks again
    probe.record_run(example.workflows["chart-observations"], "ward-7", slot=during, start=during + timedelta(minutes=1))
    assert len(typed(recorded(probe, exporter), schema.SPAN_TYPE_AUTH)) == 1


def test_a_delay_beyond_the_step_timeout_times_the_run_out(example, make_probe):
    slow = scenario_for_tests(10.0, service_ms={"GET /Encounter": 30_000.0})
    probe, exporter = make_probe(slow)
    workflow = example.workflows["open-patient-record"]
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    result = probe.record_run(workflow, "ward-7", slot=start, start=start)
    spans = recorded(probe, exporter)
    assert result.status == schema.RUN_TIMED_OUT and result.error_type == "timeout"
    assert result.message == "GET /fhir/Encounter timed out while waiting for the response"
    encounters = durations(spans)["encounters"]
    assert encounters == pytest.approx(workflow.step_timeout_s)
    assert [s.name for s in result.steps][-1] == "encounters"


def test_on_error_continue_skips_only_the_steps_that_need_a_lost_value(example, make_probe):
    scenario = load_scenario()
    (outage,) = scenario.outages
    probe, exporter = make_probe(scenario.with_overrides(outages=[{**outage.model_dump(), "endpoints": ["GET /Patient"]}]))
    workflow = example.workflows["open-patient-record"].model_copy(update={"on_error": "continue"})
    during = outage.start + timedelta(minutes=1)
    result = probe.record_run(workflow, "ward-7", slot=during, start=during)
    statuses = [s.status for s in result.steps]
    assert statuses[0] == "failed" and set(statuses[1:]) == {"skipped"}  # all need patient_id
    assert len(typed(recorded(probe, exporter), schema.SPAN_TYPE_STEP)) == 1


# -- a history on the cadence --------------------------------------------------------------------


def test_history_slots_are_whole_multiples_of_the_interval():
    start = datetime(2026, 11, 3, 9, 0, 30, tzinfo=UTC)
    slots = list(history_slots(300.0, start, start + timedelta(minutes=15)))
    assert [s.strftime("%H:%M:%S") for s in slots] == ["09:05:00", "09:10:00", "09:15:00"]


def test_record_history_runs_every_slot_with_jitter_and_one_export_per_day(example):
    exporter = CountingExporter()
    probe = SimulatedProbe(
        example.targets, example.sites, exporter, model_of(scenario_for_tests(10.0)), probe_id="t", patients=example.patients
    )
    jobs = [(example.workflows["chart-observations"], "ward-7"), (example.workflows["ward-handover"], "ward-7")]
    start = datetime(2026, 11, 2, 22, tzinfo=UTC)
    end = datetime(2026, 11, 4, 2, tzinfo=UTC)
    stats = record_history(probe, jobs, start, end, seed=7, interval_s=1800)
    probe.shutdown()
    hours = (end - start).total_seconds() / 3600
    assert stats.runs == 2 * hours * 2 and stats.missed_slots == 0
    assert stats.runs_by_status == {"ok": stats.runs}
    assert stats.spans == len(exporter.spans)
    roots = typed(exporter.spans, schema.SPAN_TYPE_RUN)
    assert len(roots) == stats.runs
    for root in roots:
        workflow = example.workflows[root.attributes[schema.ATTR_WORKFLOW]]
        assert 0 <= root.attributes[schema.ATTR_SLOT_OFFSET_S] < workflow.jitter_s
        slot = datetime.fromisoformat(root.attributes[schema.ATTR_SLOT])
        assert slot.timestamp() % 1800 == 0
    # one batch per UTC day touched: each batch's spans start on one day
    days = [{s.start_time // (86_400 * NS) for s in batch} for batch in exporter.batches]
    assert all(len(d) == 1 for d in days) and len(days) == 3

    again = CountingExporter()
    probe = SimulatedProbe(example.targets, example.sites, again, model_of(scenario_for_tests(10.0)), probe_id="t", patients=example.patients)
    record_history(probe, jobs, start, end, seed=7, interval_s=1800)
    probe.shutdown()
    starts = sorted(s.start_time for s in typed(exporter.spans, schema.SPAN_TYPE_RUN))
    assert starts == sorted(s.start_time for s in typed(again.spans, schema.SPAN_TYPE_RUN))


def test_slots_that_pass_during_a_long_run_are_missed_and_the_latest_runs_late(example):
    exporter = CountingExporter()
    slow = scenario_for_tests(10.0, service_ms={"POST /Observation": 9_000.0})
    probe = SimulatedProbe(example.targets, example.sites, exporter, model_of(slow), probe_id="t", patients=example.patients)
    workflow = example.workflows["chart-observations"].model_copy(
        update={"interval_s": 3.0, "jitter_s": 0.0, "think_time_s": 0.0}
    )
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    stats = record_history(probe, [(workflow, "ward-7")], start, start + timedelta(seconds=30))
    probe.shutdown()
    roots = sorted(typed(exporter.spans, schema.SPAN_TYPE_RUN), key=lambda s: s.start_time)
    missed = typed(exporter.spans, schema.SPAN_TYPE_MISSED_SLOT)
    assert stats.missed_slots == len(missed) > 0
    assert {s.attributes[schema.ATTR_MISSED_REASON] for s in missed} == {schema.MISSED_BUSY}
    for earlier, later in zip(roots, roots[1:], strict=False):
        assert later.start_time == earlier.end_time  # each late slot starts as the last run ends
        assert later.attributes[schema.ATTR_SLOT_OFFSET_S] > 0
    ran = {r.attributes[schema.ATTR_SLOT] for r in roots}
    skipped = {m.attributes[schema.ATTR_SLOT] for m in missed}
    assert not ran & skipped and len(ran | skipped) == 10


@pytest.mark.parametrize(
    ("endpoints", "error_type"),
    [(["GET /Patient"], "http_5xx"), (None, "auth")],  # None: the token endpoint is down too
)
def test_an_outage_fails_a_live_and_a_simulated_run_alike(endpoints, error_type, example_factory, tracer, span_exporter, make_probe):
    from testbed import TestbedServer

    now = datetime.now(UTC)
    outage = {"name": "down", "start": now - timedelta(hours=1), "end": now + timedelta(hours=1), "endpoints": endpoints}
    scenario = scenario_for_tests(2.0).with_overrides(outages=[outage])
    workflow_name = "open-patient-record"
    with TestbedServer(scenario, shutdown_timeout_s=1.0) as server:
        live_example = example_factory(server.base_url)
        live = live_example.run(workflow_name, tracer, "ward-7")
    live_spans = span_exporter.get_finished_spans()
    probe, exporter = make_probe(scenario)
    simulated = probe.record_run(live_example.workflows[workflow_name], "ward-7", slot=None, start=now)
    sim_spans = recorded(probe, exporter)

    assert (simulated.status, simulated.error_type, simulated.message) == (live.status, live.error_type, live.message)
    assert live.error_type == error_type
    assert shape(sim_spans) == shape(live_spans)
    for span_type in (schema.SPAN_TYPE_RUN, schema.SPAN_TYPE_STEP, schema.SPAN_TYPE_AUTH):
        def outcome(spans: Sequence[ReadableSpan]) -> list[tuple[Any, ...]]:
            return [
                (s.status.status_code, s.status.description, s.attributes.get(schema.ERROR_TYPE), s.attributes.get(schema.HTTP_RESPONSE_STATUS_CODE))
                for s in typed(spans, span_type)
            ]

        assert outcome(sim_spans) == outcome(live_spans), span_type


def test_a_model_may_answer_with_a_plain_tuple(example):
    exporter = InMemorySpanExporter()
    probe = SimulatedProbe(example.targets, example.sites, exporter, lambda key, site, at: (0.25, None), probe_id="t", patients=example.patients)
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    result = probe.record_run(example.workflows["chart-observations"].model_copy(update={"think_time_s": 0.0}), "ward-7", slot=start, start=start)
    probe.shutdown()
    assert result.status == schema.RUN_OK
    assert result.waiting_s == pytest.approx(4 * 0.25) and result.wall_s == pytest.approx(5 * 0.25)  # and the token
    assert [s.http_status for s in result.steps] == [200, 200, 201, 200]


def test_an_exporter_failure_is_raised_not_swallowed(example):
    from collector.history import HistoryExportError

    class Failing(CountingExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.FAILURE

    probe = SimulatedProbe(example.targets, example.sites, Failing(), lambda *a: (0.1, None), probe_id="t")
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    probe.record_run(example.workflows["chart-observations"], "ward-7", slot=start, start=start)
    with pytest.raises(HistoryExportError, match="could not write"):
        probe.flush()
