"""The demo's simulated history: weeks of runs from the testbed's latency model, in the store.

Every workflow at every one of its sites is recorded on its cadence over the past ``days`` days by
:class:`collector.history.SimulatedProbe` (the collector's span shapes, a resource marked
``wardwatch.simulated = "true"``), timed by :func:`testbed.latency.modelled_delay` with the
packaged default scenario (its dated release and outage moved into the window, see
:func:`scenario_in_window`) or another, and written through the store's
:class:`store.ParquetSpanExporter` one UTC day per batch: one Parquet file per day (two where runs
cross midnight), not thousands of small ones.

The days are built in parallel worker processes (one per core by default, at most eight), each day
on its own: the probe's shared token starts afresh each day, and a run still going at midnight
cannot make the next day's first slot busy. The fault rules of the scenario (random 5xx, resets)
are not simulated; outages, periods, changes, the load curve and the jitter are.

The configured changes at the packaged scenario's release times are recorded in the store's
data directory at the times the history moved them to (:func:`record_moved_changes`,
``analysis.changelog``), so the report, the dashboard and the notebooks all compare before and
after the release the history holds.

A finished history leaves ``simulated-history.json`` in the store directory (:func:`history_exists`
finds it, so the demo reuses the data on its next start); :func:`remove_history` deletes it and
every segment that holds only simulated spans, for a fresh build.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from opentelemetry.sdk.trace.export import SpanExporter

from analysis.changelog import record_change
from analysis.config import ChangeEventConfig
from collector.config import SiteConfig, TargetConfig, WorkflowConfig
from collector.history import DelayModel, ModelledResponse, SimulatedProbe, record_history, spans_per_run
from store import ParquetSpanExporter, drop_spans, list_segments, schema
from testbed import Scenario, load_scenario, modelled_delay
from wardwatch.config import WardwatchConfig

__all__ = [
    "DEMO_SECONDS_PER_SPAN",
    "HISTORY_MARKER",
    "HistorySummary",
    "history_intervals",
    "history_exists",
    "moved_changes",
    "read_history_summary",
    "record_moved_changes",
    "remove_history",
    "scenario_in_window",
    "simulate_history",
    "testbed_delay_model",
]

HISTORY_MARKER = "simulated-history.json"
# The history's span budget: each (workflow, site) job gets about one span per this many seconds
# of history, so a workflow of many requests runs less often than one of few. 100 s gives
# examples/testbed.yaml a run every 15 min of open-patient-record (9 spans) at each site (one run
# in every quarter-hour window, and in the scenario's 15-minute outage), every 10 min of
# chart-observations (5), every 2 h of ward-handover (43): about 16,500 runs and 133,000 spans
# for 28 days. Recording costs about 0.4 ms of CPU per span (a third of it in the store's
# exporter, a fifth in the latency model), so about a minute of CPU, half a minute on two cores.
DEMO_SECONDS_PER_SPAN = 100.0
# History cadences are rounded up to one of these (and to a multiple of the live cadence), so
# slots line up with the live probe's and with quarter-hour windows.
NICE_INTERVALS_S = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0)
SIMULATED_PROBE_ID = "simulated-history"
_MARKER_VERSION = 1

# Typical response sizes of the testbed's synthetic records, by route key (measured once from live
# runs of examples/testbed.yaml); the model times requests but has no bodies.
_TYPICAL_RESPONSE_BYTES: Mapping[str, int] = {
    "GET /Patient": 770,
    "GET /Patient/{id}": 400,
    "GET /Encounter": 1_300,
    "GET /Observation": 3_700,
    "POST /Observation": 540,
    "GET /MedicationRequest": 1_000,
    "GET /AllergyIntolerance": 1_000,
    "GET /DocumentReference": 3_900,
}
_DEFAULT_RESPONSE_BYTES = 1_000
_ERROR_RESPONSE_BYTES = 200  # an OperationOutcome


@dataclass(frozen=True)
class HistorySummary:
    """What :func:`simulate_history` built.

    Attributes:
        start: the first moment of the history (UTC).
        end: where it stops (UTC, exclusive): live runs take over from here.
        days: its length in days.
        interval_s: the history's cadence floor, one or per workflow (0: every workflow's own).
        seed: the seed of the start offsets.
        scenario: the latency model's scenario name.
        runs: runs recorded.
        missed_slots: slots recorded as missed (busy).
        spans: spans written.
        runs_by_status: runs per status (``ok``, ``failed``, ``timed_out``).
        elapsed_s: how long the build took.
        parquet_bytes: size of the Parquet files written (0 when not written to a store path).
        files: Parquet files written (0 when not written to a store path).
    """

    start: datetime
    end: datetime
    days: int
    interval_s: float | Mapping[str, float]
    seed: int
    scenario: str
    runs: int
    missed_slots: int
    spans: int
    runs_by_status: Mapping[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    parquet_bytes: int = 0
    files: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes in ISO 8601)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat()
        data["runs_by_status"] = dict(self.runs_by_status)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistorySummary:
        """The inverse of :meth:`to_json`.

        Raises:
            KeyError, ValueError, TypeError: ``data`` is not a summary.
        """
        values = dict(data)
        values["start"] = datetime.fromisoformat(values["start"])
        values["end"] = datetime.fromisoformat(values["end"])
        return cls(**values)


def testbed_delay_model(scenario: Scenario) -> DelayModel:
    """The testbed's latency model as the collector's :data:`~collector.history.DelayModel`.

    The delay is the model's total (service plus the site's network delay); during an outage the
    status is the outage's. Response sizes are typical sizes of the testbed's records.
    """

    def model(route_key: str, site: str, at: datetime) -> ModelledResponse:
        delay = modelled_delay(route_key, site, at, scenario)
        if delay.outage_status is not None:
            return ModelledResponse(delay.total_s, delay.outage_status, _ERROR_RESPONSE_BYTES)
        return ModelledResponse(delay.total_s, None, _TYPICAL_RESPONSE_BYTES.get(route_key, _DEFAULT_RESPONSE_BYTES))

    return model


def scenario_in_window(scenario: Scenario, start: datetime, end: datetime) -> Scenario:
    """``scenario`` with its dated events (changes, outages) moved into ``[start, end)`` if they miss it.

    The packaged scenario dates its release and its outage; a history ending today would
    otherwise start after both, and the demo would show no change and no outage. Every dated
    event moves by the same whole number of weeks (keeping weekday, time of day and spacing),
    the one that centres them in the window but leaves none at or after ``end`` (a window shorter
    than the events' spread keeps the latest); a scenario whose events already lie inside the
    window, or that has none, is returned as it is. Give the live testbed the same scenario, so
    history and live runs agree.

    Args:
        scenario: the scenario.
        start: the history's first moment (aware).
        end: where it stops (aware).
    """
    instants = [change.at for change in scenario.changes] + [
        moment for outage in scenario.outages for moment in (outage.start, outage.end)
    ]
    if not instants or all(start <= moment < end for moment in instants):
        return scenario
    week = timedelta(days=7)
    middle = min(instants) + (max(instants) - min(instants)) / 2
    shift = week * round((start + (end - start) / 2 - middle) / week)
    while max(instants) + shift >= end:  # never into the future of the history (and of live runs)
        shift -= week
    changes = [
        change.model_copy(update={"at": change.at + shift, "until": None if change.until is None else change.until + shift})
        for change in scenario.changes
    ]
    outages = [
        outage.model_copy(update={"start": outage.start + shift, "end": outage.end + shift})
        for outage in scenario.outages
    ]
    return scenario.with_overrides(changes=[c.model_dump() for c in changes], outages=[o.model_dump() for o in outages])


def moved_changes(
    configured: Sequence[ChangeEventConfig], packaged: Scenario, moved: Scenario
) -> list[ChangeEventConfig]:
    """The configured changes at a release time of the ``packaged`` scenario, at the time ``moved``
    (the same scenario, by :func:`scenario_in_window`) gives that release; the others are left out.
    """
    moves = {
        before.at: after.at
        for before in packaged.changes
        for after in moved.changes
        if after.name == before.name and after.at != before.at
    }
    return [change.model_copy(update={"at": moves[change.at]}) for change in configured if change.at in moves]


def record_moved_changes(
    config: WardwatchConfig, moved: Scenario, store_path: Path | None = None
) -> list[ChangeEventConfig]:
    """Record in the store's data directory the configured changes the history moved with its
    release (see :func:`moved_changes`), so every reader sees the release where the history put it.
    """
    changes = moved_changes(config.changes, load_scenario(), moved)
    for change in changes:
        record_change(config.store.path if store_path is None else store_path, change)
    return changes


def history_intervals(config: WardwatchConfig, *, seconds_per_span: float = DEMO_SECONDS_PER_SPAN) -> dict[str, float]:
    """Each workflow's history cadence: about one span per ``seconds_per_span`` per site, never
    denser than its live cadence.

    The interval is ``spans_per_run * seconds_per_span`` rounded up to the first of
    :data:`NICE_INTERVALS_S` that is a multiple of the workflow's own interval (or to a multiple
    of its own interval beyond them).
    """
    intervals = {}
    for workflow in _http_workflows(config):
        wanted_s = spans_per_run(workflow) * seconds_per_span
        own_s = workflow.interval_s
        chosen = next(
            (nice for nice in NICE_INTERVALS_S if nice >= wanted_s and nice >= own_s and _multiple(nice, own_s)),
            own_s * max(1, -(-wanted_s // own_s)),
        )
        intervals[workflow.name] = float(chosen)
    return intervals


def _multiple(value: float, of: float) -> bool:
    ratio = value / of
    return abs(ratio - round(ratio)) < 1e-9


def _http_workflows(config: WardwatchConfig) -> list[WorkflowConfig]:
    """The workflows the history is simulated for: HTTP ones (browser runs are measured live only)."""
    return [workflow for workflow in config.workflows if isinstance(workflow, WorkflowConfig)]


def _jobs(config: WardwatchConfig) -> list[tuple[WorkflowConfig, str]]:
    """Every (workflow, site) pair, as the live probe forms them."""
    site_names = [site.name for site in config.sites]
    return [
        (workflow, site)
        for workflow in _http_workflows(config)
        for site in (workflow.sites or tuple(site_names))
        if site in site_names
    ]


@dataclass(frozen=True)
class _Chunk:
    """One day (or part of one) of history, built on its own: picklable for a worker process."""

    targets: Mapping[str, TargetConfig]
    sites: Sequence[SiteConfig]
    patients_configured: bool
    jobs: Sequence[tuple[WorkflowConfig, str]]
    scenario: Scenario
    store_path: Path
    start: datetime
    end: datetime
    seed: int
    interval_s: float | Mapping[str, float] | None


def _probe(chunk: _Chunk, exporter: SpanExporter) -> SimulatedProbe:
    return SimulatedProbe(
        chunk.targets,
        chunk.sites,
        exporter,
        testbed_delay_model(chunk.scenario),
        probe_id=SIMULATED_PROBE_ID,
        patients=(True,) if chunk.patients_configured else (),
        token_lifetime_s=float(chunk.scenario.auth.token_lifetime_s),
    )


def _build_chunk(chunk: _Chunk, exporter: SpanExporter | None = None) -> tuple[int, int, int, dict[str, int]]:
    """Record one chunk; (runs, missed slots, spans, runs by status). Runs in a worker process."""
    probe = _probe(chunk, ParquetSpanExporter(chunk.store_path) if exporter is None else exporter)
    try:
        stats = record_history(
            probe, chunk.jobs, chunk.start, chunk.end, seed=chunk.seed, interval_s=chunk.interval_s
        )
    finally:
        probe.shutdown(export=False)  # record_history exported everything; after a failure, nothing more
    return stats.runs, stats.missed_slots, stats.spans, dict(stats.runs_by_status)


def simulate_history(
    config: WardwatchConfig,
    *,
    days: int = 28,
    end: datetime | None = None,
    store_path: Path | None = None,
    exporter: SpanExporter | None = None,
    scenario: Scenario | None = None,
    progress: Callable[[int, int], None] | None = None,
    interval_s: float | Mapping[str, float] | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> HistorySummary:
    """Simulate ``days`` days of every configured workflow at each of its sites, up to ``end``.

    Args:
        config: the workflows, sites, targets and store (``examples/testbed.yaml`` for the demo).
        days: how many days of history, ending at ``end``.
        end: where the history stops (aware; default: now, so live runs continue it).
        store_path: the store to write to (default ``config.store.path``); ignored when
            ``exporter`` is given.
        exporter: write through this exporter instead, in this process (tests: an in-memory one).
        scenario: the latency model's scenario (default: the testbed's packaged default, its
            release and outage moved into the window by :func:`scenario_in_window`; give the
            live testbed ``scenario_in_window(load_scenario(), summary.start, summary.end)``).
        progress: called with (days done, days in all) as each day is finished.
        interval_s: each job runs at most once per this many seconds (the workflow's own cadence
            where that is coarser), one value or one per workflow name; 0 keeps every workflow's
            own cadence (live density: about 14 times the spans, minutes instead of seconds);
            None (default) uses :func:`history_intervals`.
        seed: the same seed gives the same runs and timings (not the same trace ids).
        workers: processes building days in parallel (default: one per core, at most 8); 1 builds
            in this process.

    Returns:
        A summary; with a store path it is also written as ``simulated-history.json`` there,
        after every span is stored.

    Writing to a store path replaces any simulated history already there (finished, or left
    half-built by an interrupted build); live measurements stay. To reuse a finished history
    instead, check :func:`history_exists` first. The worker processes are spawned, so it may be
    called from a process that runs threads (a notebook, a test run, the demo).

    Raises:
        ValueError: ``days`` is not positive or ``end`` is naive.
        StoreError: the store cannot be opened.
        HistoryExportError: spans could not be written (the exporter logs why); no marker is
            written, so the next build starts afresh.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    if end is not None and (end.tzinfo is None or end.utcoffset() is None):
        raise ValueError("end must be time-zone aware")
    started = time.perf_counter()
    end_utc = (datetime.now(UTC) if end is None else end).astimezone(UTC)
    start_utc = end_utc - timedelta(days=days)
    scenario = scenario_in_window(load_scenario(), start_utc, end_utc) if scenario is None else scenario
    path = Path(config.store.path if store_path is None else store_path)
    if exporter is None:
        ParquetSpanExporter(path)  # make it a store (or refuse one of another version) up front
        remove_history(path)  # a finished or interrupted earlier build: never two histories
    before = {str(p) for p in list_segments(path)} if exporter is None else set()
    jobs = _jobs(config)
    if interval_s is None:
        interval_s = history_intervals(config)
    chunks = [
        _Chunk(
            targets=config.targets,
            sites=config.sites,
            patients_configured=bool(config.patients),
            jobs=jobs,
            scenario=scenario,
            store_path=path,
            start=max(start_utc, day),
            end=min(end_utc, day + timedelta(days=1)),
            seed=seed,
            interval_s=interval_s,
        )
        for day in _utc_days(start_utc, end_utc)
    ]
    totals = [0, 0, 0]
    by_status: dict[str, int] = {}

    def add(result: tuple[int, int, int, dict[str, int]], done: int) -> None:
        for index in range(3):
            totals[index] += result[index]
        for status, count in result[3].items():
            by_status[status] = by_status.get(status, 0) + count
        if progress is not None:
            progress(done, len(chunks))

    if progress is not None:
        progress(0, len(chunks))
    workers = min(8, os.cpu_count() or 1, len(chunks)) if workers is None else workers
    if exporter is not None or workers <= 1:
        for done, chunk in enumerate(chunks, start=1):
            add(_build_chunk(chunk, exporter), done)
    else:
        # Spawned, never forked: a process forked while another thread holds a lock (DuckDB's,
        # pyarrow's, a dashboard's or an evaluator's thread) can die in its first day's work.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            futures = [pool.submit(_build_chunk, chunk) for chunk in chunks]
            for done, future in enumerate(as_completed(futures), start=1):
                add(future.result(), done)
        except BaseException:
            # Ctrl-C or a failed day: drop the days not started; no marker, so the next build
            # starts afresh (and removes what this one wrote).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    written = [p for p in list_segments(path) if str(p) not in before] if exporter is None else []
    summary = HistorySummary(
        start=start_utc,
        end=end_utc,
        days=days,
        interval_s=dict(interval_s) if isinstance(interval_s, Mapping) else interval_s,
        seed=seed,
        scenario=scenario.name,
        runs=totals[0],
        missed_slots=totals[1],
        spans=totals[2],
        runs_by_status=by_status,
        elapsed_s=time.perf_counter() - started,
        parquet_bytes=sum(p.stat().st_size for p in written),
        files=len(written),
    )
    if exporter is None:
        record_moved_changes(config, scenario, path)
        _write_marker(path, summary)
    return summary


def _utc_days(start: datetime, end: datetime) -> list[datetime]:
    """The UTC midnights of the days that ``[start, end)`` touches."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    found = []
    while day < end:
        found.append(day)
        day += timedelta(days=1)
    return found


def _write_marker(path: Path, summary: HistorySummary) -> None:
    marker = path / HISTORY_MARKER
    temporary = path / f".{HISTORY_MARKER}.{os.getpid()}.tmp"
    payload = {"version": _MARKER_VERSION, "summary": summary.to_json()}
    temporary.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(temporary, marker)


def read_history_summary(store_path: Path) -> HistorySummary | None:
    """The summary of the history built in ``store_path``, or None when none was finished there."""
    try:
        payload = json.loads((Path(store_path) / HISTORY_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("version") != _MARKER_VERSION:
        return None
    try:
        return HistorySummary.from_json(payload["summary"])
    except (KeyError, ValueError, TypeError):
        return None


def history_exists(store_path: Path) -> bool:
    """True when a simulated history was finished in the store at ``store_path`` (reuse it)."""
    return read_history_summary(store_path) is not None


def remove_history(store_path: Path) -> int:
    """Delete the history marker and every simulated span; the count of segments deleted or rewritten.

    Live measurements are kept: a segment that compaction merged from simulated and live spans is
    rewritten without its simulated spans (see ``store.drop_spans``). Deleting a merged segment
    makes the segments it replaced visible again, so the store is listed again until no
    simulated span is left. Run it while no other process writes to the store.
    """
    path = Path(store_path)
    (path / HISTORY_MARKER).unlink(missing_ok=True)
    removed = 0
    live_only: set[Path] = set()
    while True:
        changed = False
        for segment in list_segments(path):
            if segment in live_only:
                continue
            simulated = pq.read_table(segment, columns=[schema.SIMULATED]).column(0)
            count = pc.sum(pc.cast(simulated, "int64")).as_py() or 0
            if count == 0:
                live_only.add(segment)
                continue
            if count == len(simulated):
                segment.unlink(missing_ok=True)
            else:
                drop_spans(path, segment, schema.SIMULATED, True)
            removed += 1
            changed = True
        if not changed:
            return removed
