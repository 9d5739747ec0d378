"""The demo's simulated history: written to a real store, read back through the analysis frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import analysis
from store import schema, write_spans
from testbed import load_scenario
from wardwatch.config import WardwatchConfig, load_config
from wardwatch.simulate import (
    HISTORY_MARKER,
    history_exists,
    history_intervals,
    read_history_summary,
    remove_history,
    scenario_in_window,
    simulate_history,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
END = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> WardwatchConfig:
    return load_config(EXAMPLE)


def only(config: WardwatchConfig, *names: str) -> WardwatchConfig:
    return config.model_copy(update={"workflows": [w for w in config.workflows if w.name in names]})


def test_the_demo_cadence_gives_each_job_a_similar_span_budget(config):
    assert history_intervals(config) == {
        "open-patient-record": 900.0,  # 9 spans a run: every quarter hour
        "chart-observations": 600.0,  # 5 spans
        "ward-handover": 7200.0,  # 43 spans (40 patients on the handover list)
    }
    assert history_intervals(config, seconds_per_span=1.0) == {w.name: w.interval_s for w in config.workflows if w.kind == "http"}


def test_two_days_of_history_read_back_as_simulated_runs_on_the_cadence(config, tmp_path):
    progress: list[tuple[int, int]] = []
    assert not history_exists(tmp_path)
    summary = simulate_history(config, days=2, end=END, store_path=tmp_path, workers=1, progress=lambda *a: progress.append(a))
    assert progress == [(0, 2), (1, 2), (2, 2)]

    runs = analysis.open_store(tmp_path).runs()
    assert runs["simulated"].all()
    counts = runs.groupby(["workflow", "site"]).size().to_dict()
    per_job = {name: int(2 * 86_400 / interval) for name, interval in history_intervals(config).items()}
    expected = {
        (workflow.name, site): per_job[workflow.name]
        for workflow in config.workflows
        for site in workflow.sites
        if workflow.kind == "http"  # browser runs are measured live, never simulated
    }
    assert counts == expected
    assert summary.runs == len(runs) == sum(expected.values())
    assert runs["start"].min() >= END - timedelta(days=2) and runs["start"].max() < END
    slots = pd.to_datetime(runs["slot"], utc=True)
    assert ((runs["start"] - slots).dt.total_seconds().between(0, 20)).all()
    assert (runs["waiting_s"] <= runs["wall_s"] + 1e-6).all()  # equal when there is no think time

    assert history_exists(tmp_path)
    assert read_history_summary(tmp_path) == summary
    assert summary.files == len(list((tmp_path / "spans").rglob("*.parquet"))) <= 3  # a file per UTC day
    assert summary.parquet_bytes > 0 and summary.spans > summary.runs


def test_parallel_workers_build_the_same_history(config, tmp_path):
    small = only(config, "chart-observations")
    simulate_history(small, days=2, end=END, store_path=tmp_path / "one", workers=1, seed=3)
    simulate_history(small, days=2, end=END, store_path=tmp_path / "two", workers=2, seed=3)
    columns = ["workflow", "site", "slot", "start", "status", "waiting_s", "wall_s"]
    one, two = (analysis.open_store(tmp_path / name).runs()[columns] for name in ("one", "two"))
    assert len(one) == 2 * 2 * 144
    pd.testing.assert_frame_equal(
        one.sort_values(columns[:3]).reset_index(drop=True), two.sort_values(columns[:3]).reset_index(drop=True)
    )


def test_the_outage_gives_failed_runs(config, tmp_path):
    (outage,) = load_scenario().outages
    simulate_history(only(config, "open-patient-record"), days=1, end=outage.end + timedelta(hours=6), store_path=tmp_path, workers=1)
    runs = analysis.open_store(tmp_path).runs()
    failed = runs[runs["status"] == schema.RUN_FAILED]
    assert len(failed) == 3  # the quarter-hour slot inside the outage, at each site
    assert set(failed["error_type"]) <= {"http_5xx", "auth"}
    assert failed["start"].between(outage.start, outage.end).all()
    assert (runs[runs["status"] == schema.RUN_OK]["start"].between(outage.start, outage.end) == False).all()  # noqa: E712


def test_remove_history_keeps_live_measurements(config, tmp_path):
    live_row = {
        schema.TIMESTAMP: END - timedelta(hours=1),
        schema.TRACE_ID: "1" * 32,
        schema.SPAN_ID: "2" * 16,
        schema.SPAN_NAME: "chart-observations",
        schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SIMULATED: "false", schema.ATTR_SITE: "ward-7"},
        schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: "chart-observations"},
    }
    (live_file,) = write_spans(tmp_path, [live_row])
    summary = simulate_history(only(config, "chart-observations"), days=1, end=END, store_path=tmp_path, workers=1)
    assert (tmp_path / HISTORY_MARKER).exists()
    assert remove_history(tmp_path) == summary.files
    assert not history_exists(tmp_path)
    assert [p.name for p in (tmp_path / "spans").rglob("*.parquet")] == [live_file.name]


def test_the_scenarios_release_and_outage_move_into_the_window_by_whole_weeks():
    scenario = load_scenario()
    end = datetime(2026, 11, 27, 10, tzinfo=UTC)
    moved = scenario_in_window(scenario, end - timedelta(days=28), end)
    (change,), (outage,) = moved.changes, moved.outages
    (change_was,), (outage_was,) = scenario.changes, scenario.outages
    shift = change.at - change_was.at
    assert shift.days % 7 == 0 and shift.seconds == 0 and shift > timedelta(0)
    assert (outage.start - outage_was.start, outage.end - outage_was.end) == (shift, shift)
    assert end - timedelta(days=28) < change.at < outage.start < end
    assert moved.periods == scenario.periods and moved.sites == scenario.sites
    # a window shorter than the events' spread: nothing moves past its end
    short = scenario_in_window(scenario, end - timedelta(days=2), end)
    assert short.outages[0].end < end and short.changes[0].at < end
    assert short.outages[0].start > end - timedelta(days=7)
    # already inside: unchanged
    inside = scenario_in_window(scenario, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 29, tzinfo=UTC))
    assert inside is scenario


def test_bad_arguments_are_refused(config, tmp_path):
    with pytest.raises(ValueError, match="days"):
        simulate_history(config, days=0, store_path=tmp_path)
    with pytest.raises(ValueError, match="aware"):
        simulate_history(config, days=1, end=datetime(2026, 11, 20), store_path=tmp_path)


def test_a_new_build_replaces_the_previous_history_and_an_exporter_gets_every_span(config, tmp_path):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    small = only(config, "chart-observations")
    simulate_history(small, days=1, end=END, store_path=tmp_path, workers=1)
    (tmp_path / HISTORY_MARKER).unlink()  # as if the first build had been interrupted
    again = simulate_history(small, days=1, end=END, store_path=tmp_path, workers=1)
    assert len(analysis.open_store(tmp_path).runs()) == again.runs == 2 * 144

    exporter = InMemorySpanExporter()
    summary = simulate_history(small, days=1, end=END, exporter=exporter, store_path=tmp_path / "unused")
    spans = exporter.get_finished_spans()
    assert len(spans) == summary.spans and summary.files == 0
    assert {span.resource.attributes[schema.ATTR_SIMULATED] for span in spans} == {"true"}
    assert not (tmp_path / "unused").exists()


def test_remove_history_also_removes_compacted_simulated_segments(config, tmp_path):
    from store import compact

    small = only(config, "chart-observations")
    (live_file,) = write_spans(tmp_path, [{
        schema.TIMESTAMP: END - timedelta(days=3),
        schema.TRACE_ID: "1" * 32,
        schema.SPAN_ID: "2" * 16,
        schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SIMULATED: "false"},
    }])
    simulate_history(small, days=1, end=END, store_path=tmp_path, workers=1, seed=1)
    simulate_history(small, days=1, end=END, store_path=tmp_path / "other", workers=1, seed=2)
    for segment in (tmp_path / "other" / "spans").rglob("*.parquet"):  # two segments in a partition
        target = tmp_path / "spans" / segment.parent.name
        target.mkdir(exist_ok=True)
        segment.rename(target / f"x-{segment.name}")
    report = compact(tmp_path, grace_s=3600)  # the replaced segments stay on disk, hidden
    assert report.skipped is False
    remove_history(tmp_path)
    assert [p.name for p in (tmp_path / "spans").rglob("*.parquet")] == [live_file.name]



def test_remove_history_drops_simulated_spans_that_compaction_merged_with_live_ones(config, tmp_path):
    from store import compact, connect

    summary = simulate_history(only(config, "chart-observations"), days=1, end=END, store_path=tmp_path, workers=1)
    day = sorted((tmp_path / "spans").iterdir())[-1].name.removeprefix("date=")
    write_spans(tmp_path, [{
        schema.TIMESTAMP: datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC),
        schema.TRACE_ID: "1" * 32,
        schema.SPAN_ID: "2" * 16,
        schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SIMULATED: "false"},
        schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN},
    }])
    assert compact(tmp_path, small_bytes=1 << 30, grace_s=3600).merged  # live and simulated in one file
    assert remove_history(tmp_path) >= summary.files - 1
    with connect(tmp_path) as con:
        assert con.execute('SELECT "TraceId", "Simulated" FROM spans').fetchall() == [("1" * 32, False)]
