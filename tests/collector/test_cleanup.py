"""A workflow's cleanup steps (issue 19 item 3): run after the timed steps against the real testbed,
outside the waiting time, inside the load budget, recorded as ``cleanup`` spans; a cleanup that
fails is findable and does not fail the run."""

from __future__ import annotations

import logging
from typing import Any

from collector.config import WorkflowConfig, requests_per_run
from collector.probe import Job, Probe
from store import schema
from store.writer import ParquetSpanExporter

DELETE_IT = {"name": "delete-observation", "method": "DELETE", "path": "/Observation/{{ observation_id }}"}


def charting(example: Any, cleanup: list[dict[str, Any]], **fields: Any) -> WorkflowConfig:
    raw = next(w for w in example.raw["workflows"] if w["name"] == "chart-observations")
    return WorkflowConfig.model_validate({**raw, "think_time_s": 0, "cleanup": cleanup, **fields})


def by_type(spans: Any, span_type: str) -> list[Any]:
    return [s for s in spans if s.attributes.get(schema.ATTR_SPAN_TYPE) == span_type]


def test_cleanup_deletes_what_the_run_wrote_outside_its_waiting_time(example, tracer, span_exporter, testbed):
    workflow = charting(example, [DELETE_IT])
    result = example.run(workflow, tracer)
    assert result.status == "ok", result.message
    assert [c.status for c in result.cleanup] == ["ok"] and result.cleanup[0].http_status == 200
    # Waiting time: the four timed steps only; the DELETE took time too, and is not in it.
    assert result.waiting_s == sum(step.duration_s for step in result.steps)
    assert result.cleanup[0].duration_s > 0
    spans = span_exporter.get_finished_spans()
    [root] = by_type(spans, schema.SPAN_TYPE_RUN)
    [cleanup] = by_type(spans, schema.SPAN_TYPE_CLEANUP)
    assert cleanup.parent.span_id == root.context.span_id
    assert cleanup.attributes[schema.URL_TEMPLATE] == "/fhir/Observation/{observation_id}"
    assert cleanup.attributes[schema.ATTR_STEP_INDEX] == len(workflow.steps)
    assert root.attributes[schema.ATTR_CLEANUP_STATUS] == "ok"
    assert root.attributes[schema.ATTR_RUN_WAITING_S] == result.waiting_s
    assert len(by_type(spans, schema.SPAN_TYPE_STEP)) == len(workflow.steps)
    [created] = [s for s in spans if s.name == "chart-heart-rate"]
    assert created.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 201


def test_cleanup_requests_count_against_the_load_budget(example):
    assert requests_per_run(charting(example, [DELETE_IT])) == requests_per_run(charting(example, [])) + 1


def test_a_failed_cleanup_is_recorded_and_logged_but_the_run_is_ok(example, tracer, span_exporter, testbed, caplog):
    # Deleting something that is not there: the EPR answers 404.
    workflow = charting(example, [{**DELETE_IT, "path": "/Observation/no-such-observation"}])
    probe = Probe(
        example.targets, example.sites, example.patients, [workflow], [span_exporter],
        environ={"WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}, probe_id="p",
    )
    with caplog.at_level(logging.WARNING, logger="collector.probe"):
        result = probe.run_job(Job(workflow, example.site("ward-7")))
    probe.force_flush()
    assert result.status == "ok" and result.error_type is None, result.message
    assert [(c.status, c.error_type) for c in result.cleanup] == [("failed", "http_4xx")]
    [cleanup] = by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_CLEANUP)
    assert cleanup.attributes[schema.ERROR_TYPE] == "http_4xx"
    [root] = by_type(span_exporter.get_finished_spans(), schema.SPAN_TYPE_RUN)
    assert root.attributes[schema.ATTR_CLEANUP_STATUS] == "failed"
    assert root.attributes[schema.ATTR_RUN_STATUS] == "ok"
    assert any("cleanup step delete-observation failed" in r.getMessage() for r in caplog.records)
    probe.shutdown()


def test_cleanup_runs_after_a_failed_step_and_skips_what_was_never_written(example, tracer, testbed):
    # The read-back fails (an assertion nobody meets) after the write: the write is still undone.
    workflow = charting(example, [DELETE_IT])
    raw_steps = [s.model_dump(by_alias=True, exclude_unset=True) for s in workflow.steps]
    raw_steps[-1]["assert"] = [{"path": "$.entry", "count_gte": 10_000}]
    failing = charting(example, [DELETE_IT], steps=raw_steps)
    result = example.run(failing, tracer)
    assert (result.status, result.error_type) == ("failed", "assertion")
    assert [c.status for c in result.cleanup] == ["ok"]
    # The write itself fails: there is nothing to delete, and the cleanup says it skipped.
    raw_steps = [s.model_dump(by_alias=True, exclude_unset=True) for s in workflow.steps]
    raw_steps[2]["expect_status"] = [299]
    result = example.run(charting(example, [DELETE_IT], steps=raw_steps), tracer)
    assert result.status == "failed"
    assert [c.status for c in result.cleanup] == ["skipped"]


def test_cleanup_spans_are_neither_steps_nor_requests_in_the_store(example, tracer_provider, testbed, tmp_path):
    import analysis
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracer_provider.add_span_processor(SimpleSpanProcessor(ParquetSpanExporter(tmp_path / "data")))
    result = example.run(charting(example, [DELETE_IT]), tracer_provider.get_tracer("t"))
    assert result.status == "ok"
    with analysis.open_store(tmp_path / "data") as opened:
        steps = opened.steps()
        runs = opened.runs()
        requests = opened.requests()
        cleanups = opened.sql(f"select count(*) as n from spans where \"{schema.SPAN_TYPE}\" = 'cleanup'")["n"][0]
    assert "delete-observation" not in set(steps["step"])
    assert "POST" in set(requests["http_method"]) and "DELETE" not in set(requests["http_method"])
    assert cleanups == 1
    assert abs(runs["waiting_s"].iloc[0] - result.waiting_s) < 1e-9
