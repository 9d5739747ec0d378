"""The probe: every workflow at every one of its sites, on a fixed cadence of slots.

Each (workflow, site) pair is a *job* with slots at whole multiples of the workflow's
``interval_s`` since the Unix epoch (so a restarted probe keeps the same slots). A run starts at
its slot plus a random offset in ``[0, jitter_s)``, both recorded on the run's span. A slot that
passes while the job is still busy with an earlier run is recorded as a ``missed_slot`` span with
reason ``busy``; the latest passed slot is run late instead (its offset says how late). Nothing
is silently dropped, so a slow target is not under-sampled (coordinated omission).

With a state directory, the probe keeps a state file (:mod:`collector.schedule`); after a
restart, the slots that passed while it was down are recorded as ``missed_slot`` spans with reason
``probe_down`` and the last heartbeat before the gap (``wardwatch.missed.since``). The gap starts
after the last slot the store itself holds (``recorded_slots``) where it knows one: after
``kill -9`` the state file may name slots whose runs' spans were still in memory, never stored. "Probe down"
and "target down" stay different facts: a down target gives failed runs, not missed slots.

Several sites run in one process for the demo (each with its own tracer provider, so its spans
carry its resource attributes); in production one process runs one site.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import SpanKind, Tracer

from collector.auth import TokenCache
from collector.client import ClientFactory, ProbeClients
from collector.config import BrowserWorkflowConfig, SiteConfig, TargetConfig, TestPatientConfig, WorkflowConfig
from collector.metrics import ProbeMetrics
from collector.runner import RunResult, run_workflow
from collector.schedule import StateFile, next_slot_index, slots_missed_while_down
from collector.telemetry import INSTRUMENTATION_SCOPE, probe_resource, tracer_provider_for_site
from store import schema

__all__ = ["MISSED_BUSY", "MISSED_PROBE_DOWN", "Job", "Probe", "UnknownNameError"]

logger = logging.getLogger(__name__)

MISSED_BUSY = schema.MISSED_BUSY
MISSED_PROBE_DOWN = schema.MISSED_PROBE_DOWN
# After a long outage of the probe, at most this many missed slots per job are recorded one by one;
# the rest are counted in the metric and logged, so a year-long gap cannot flood the store.
MAX_MISSED_SPANS_PER_JOB = 100_000
_NS_PER_S = 1_000_000_000


class UnknownNameError(ValueError):
    """A site or workflow name given to the probe is not in its configuration."""


@dataclass(frozen=True, slots=True)
class Job:
    """One workflow at one site."""

    workflow: WorkflowConfig | BrowserWorkflowConfig
    site: SiteConfig

    @property
    def key(self) -> str:
        """``workflow@site``: the job's name in logs and in the state file."""
        return f"{self.workflow.name}@{self.site.name}"


class Probe:
    """Runs workflows against their targets from their sites and records every run as spans.

    Args:
        targets: the ``targets`` section, by name.
        sites: the ``sites`` section.
        patients: the test patients (one is picked per run).
        workflows: the ``workflows`` section; a workflow with no ``sites`` runs at every site.
        exporters: span exporters built by the composition root. The probe owns them from here:
            :meth:`shutdown` flushes and shuts them down.
        environ: where secret references are resolved (default ``os.environ``).
        probe_id: identifies this probe (resource attribute ``wardwatch.probe.id``).
        simulated: mark spans as simulated history (never for live runs).
        rng: jitter and patient picks (default: a fresh ``random.Random()``).
        client_factory: builds each run's HTTP client (default: the phase-timing client).
        metric_readers: readers of the probe's metrics (OTLP, in-memory...); none: no metrics.
        thresholds_s: objective thresholds added to the histograms' bucket boundaries.
        state_dir: where the state file lives; None: no restart detection.
        screenshots_dir: where browser workflows with ``screenshot_on_failure`` keep the failed
            page (``<data directory>/screenshots``); None: no screenshots are taken.
        heartbeat_s: how often the state file's heartbeat is refreshed while running.
        recorded_slots: the latest slot recorded in the store per job key (``workflow@site``, epoch
            seconds), read once at start (:func:`store.writer.last_slots`); None: the state file's.
        clock: wall-clock seconds since the epoch (injectable for scheduling tests).

    Config consistency (targets and sites that exist) is the loader's job
    (:func:`collector.config.check_references`); a workflow naming an unknown target raises
    :class:`UnknownNameError` here.
    """

    def __init__(
        self,
        targets: Mapping[str, TargetConfig],
        sites: Sequence[SiteConfig],
        patients: Sequence[TestPatientConfig],
        workflows: Sequence[WorkflowConfig | BrowserWorkflowConfig],
        exporters: Sequence[SpanExporter],
        *,
        environ: Mapping[str, str] | None = None,
        probe_id: str,
        simulated: bool = False,
        rng: random.Random | None = None,
        client_factory: ClientFactory | None = None,
        metric_readers: Sequence[MetricReader] = (),
        thresholds_s: Sequence[float] = (),
        state_dir: Path | None = None,
        screenshots_dir: Path | None = None,
        heartbeat_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        recorded_slots: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._sites = {site.name: site for site in sites}
        self._patients = tuple(patients)
        self._workflows = {workflow.name: workflow for workflow in workflows}
        self._exporters = tuple(exporters)
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._rng = random.Random() if rng is None else rng
        self._rng_lock = threading.Lock()
        self._client_factory = ProbeClients() if client_factory is None else client_factory
        self._clock = clock
        self._token_cache = TokenCache()
        self._turns = {name: threading.BoundedSemaphore(target.max_concurrent_runs) for name, target in self._targets.items()}
        for workflow in workflows:
            if workflow.target not in self._targets:
                raise UnknownNameError(f"workflow {workflow.name!r} names target {workflow.target!r}, which is not defined")
        self._providers: dict[str, TracerProvider] = {
            site.name: tracer_provider_for_site(site, self._exporters, probe_id=probe_id, simulated=simulated)
            for site in sites
        }
        self._tracers: dict[str, Tracer] = {
            name: provider.get_tracer(INSTRUMENTATION_SCOPE) for name, provider in self._providers.items()
        }
        self._meter_provider: MeterProvider | None = None
        self._metrics: ProbeMetrics | None = None
        if metric_readers:
            self._meter_provider = MeterProvider(
                metric_readers=list(metric_readers), resource=probe_resource(probe_id=probe_id, simulated=simulated)
            )
            self._metrics = ProbeMetrics(self._meter_provider, thresholds_s=thresholds_s)
        self._state = StateFile(state_dir) if state_dir is not None else None
        self._screenshots_dir = screenshots_dir
        self._recorded_slots = recorded_slots
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._shut_down = False
        self._browser: Any = None  # collector.browser.BrowserHost, started by the first browser run
        self._browser_lock = threading.Lock()

    # -- jobs ----------------------------------------------------------------------------------

    def jobs(self, site: str | None = None, workflow: str | None = None) -> list[Job]:
        """The (workflow, site) pairs to run, optionally narrowed to one site and/or workflow.

        Raises:
            UnknownNameError: ``site`` or ``workflow`` is not configured.
        """
        if site is not None and site not in self._sites:
            raise UnknownNameError(f"site {site!r} is not defined (known: {', '.join(self._sites) or 'none'})")
        if workflow is not None and workflow not in self._workflows:
            known = ", ".join(self._workflows) or "none"
            raise UnknownNameError(f"workflow {workflow!r} is not defined (known: {known})")
        found: list[Job] = []
        for spec in self._workflows.values():
            if workflow is not None and spec.name != workflow:
                continue
            for site_name in spec.sites or tuple(self._sites):
                if site is not None and site_name != site:
                    continue
                if site_name in self._sites:
                    found.append(Job(spec, self._sites[site_name]))
        return found

    def run_job(self, job: Job, *, slot: datetime | None = None, stop: threading.Event | None = None) -> RunResult:
        """Run one job once now (its slot, if not given, is the current moment).

        Waits for a turn when the target's ``max_concurrent_runs`` runs are already going.
        """
        with self._rng_lock:
            run_rng = random.Random(self._rng.getrandbits(64))
        if slot is None:
            slot = datetime.fromtimestamp(self._clock(), tz=UTC)
        with self._turns[job.workflow.target]:
            result = self._run(job, slot, run_rng, stop)
        if self._metrics is not None:
            self._metrics.record_run(result)
        if result.status == "ok":
            logger.info("%s: ok, waited %.3f s", job.key, result.waiting_s)
        else:
            # Messages name URL templates and error families only: no patient data, no secrets.
            detail = ": ".join(str(part) for part in (result.error_type, result.message) if part)  # none when interrupted
            logger.info("%s: %s, waited %.3f s%s", job.key, result.status, result.waiting_s, f" ({detail})" if detail else "")
        for cleanup in result.cleanup:
            if cleanup.status == "failed":
                # Findable: what the run wrote may still be in the EPR.
                logger.warning("%s: cleanup step %s failed (%s: %s)", job.key, cleanup.name, cleanup.error_type, cleanup.message)
        return result

    def _run(self, job: Job, slot: datetime, run_rng: random.Random, stop: threading.Event | None) -> RunResult:
        if isinstance(job.workflow, BrowserWorkflowConfig):
            from collector.browser import run_browser_workflow  # Playwright only where a workflow needs it

            return run_browser_workflow(
                job.workflow, self._targets[job.workflow.target], job.site, tracer=self._tracers[job.site.name],
                host=self._browser_host(), patients=self._patients, environ=self._environ, rng=run_rng,
                slot=slot, stop=stop, screenshots_dir=self._screenshots_dir,
            )
        return run_workflow(
            job.workflow,
            self._targets[job.workflow.target],
            job.site,
            tracer=self._tracers[job.site.name],
            target_name=job.workflow.target,
            patients=self._patients,
            environ=self._environ,
            rng=run_rng,
            token_cache=self._token_cache,
            client_factory=self._client_factory,
            slot=slot,
            stop=stop,
        )

    def _browser_host(self) -> Any:
        """The process's one browser (found on the first browser run; BrowserMissingError without it)."""
        from collector.browser import BrowserHost, find_chromium

        with self._browser_lock:
            if self._browser is None:
                self._browser = BrowserHost(find_chromium(self._environ))
            return self._browser

    def run_once(self, site: str | None = None, workflow: str | None = None) -> list[RunResult]:
        """Run every selected job once, one after another; the results in job order.

        Raises:
            UnknownNameError: ``site`` or ``workflow`` is not configured.
        """
        return [self.run_job(job) for job in self.jobs(site, workflow)]

    # -- scheduling ----------------------------------------------------------------------------

    def run_forever(
        self,
        stop: threading.Event | None = None,
        *,
        site: str | None = None,
        workflow: str | None = None,
    ) -> None:
        """Run every selected job at its slots until stopped; returns when every job has ended.

        Each job runs in its own thread. Stopping (``stop`` set, or :meth:`stop` called, e.g. from
        a SIGTERM handler) ends waiting jobs at once; a run in flight stops before its next step
        and is recorded as ``interrupted``. With a state directory, slots missed while the probe
        was down are recorded first. Spans are not flushed here: call :meth:`shutdown`.

        Args:
            stop: an event that stops the probe when set (besides :meth:`stop`).
            site: only this site.
            workflow: only this workflow.

        Raises:
            UnknownNameError: ``site`` or ``workflow`` is not configured.
        """
        jobs = self.jobs(site, workflow)
        events = [self._stop] if stop is None else [self._stop, stop]
        bridge = threading.Thread(target=_link_events, args=(events,), name="wardwatch stop", daemon=True)
        bridge.start()
        # One moment for both: slots before it were missed while down, the first at or after it
        # is run (late, if recording the missed ones took that long), so none falls between.
        start_s = self._clock()
        if self._state is not None:
            self._record_probe_down(self._state, jobs, start_s)
        heart = threading.Thread(target=self._heartbeat_loop, name="wardwatch heartbeat", daemon=True)
        heart.start()
        threads = [
            threading.Thread(
                target=self._job_loop,
                args=(job, next_slot_index(start_s, job.workflow.interval_s)),
                name=f"wardwatch {job.key}",
                daemon=True,
            )
            for job in jobs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._stop.set()
        heart.join()
        bridge.join()

    def stop(self) -> None:
        """Ask :meth:`run_forever` to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or ``run_forever``'s event was set)."""
        return self._stop.is_set()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            if self._state is not None:
                self._state.heartbeat(self._clock())

    def _record_probe_down(self, state_file: StateFile, jobs: Sequence[Job], now_s: float) -> None:
        state = state_file.load()
        stored_slots = dict(self._recorded_slots()) if self._recorded_slots is not None else {}
        since = state.heartbeat
        for job in jobs:
            # The store is the record: slots after its last one have no run and no missed slot.
            last_slot_s = stored_slots.get(job.key)
            if last_slot_s is not None:
                # Stored to the millisecond: back onto this job's slot it was (if it is one).
                nearest_s = round(last_slot_s / job.workflow.interval_s) * job.workflow.interval_s
                if abs(nearest_s - last_slot_s) < 0.002:
                    last_slot_s = nearest_s
            else:
                previous = state.jobs.get(job.key)
                if previous is None:
                    continue
                last_slot_s = previous.last_slot_s
            missed = list(slots_missed_while_down(last_slot_s, now_s, job.workflow.interval_s))
            if not missed:
                continue
            recorded = missed[-MAX_MISSED_SPANS_PER_JOB:]
            if len(recorded) < len(missed):
                logger.warning(
                    "%s: %d slots passed while the probe was down; recording the last %d as spans",
                    job.key, len(missed), len(recorded),
                )
            for slot_s in recorded:
                self.record_missed_slot(
                    job, datetime.fromtimestamp(slot_s, tz=UTC), MISSED_PROBE_DOWN, since=since, count_metric=False
                )
            if self._metrics is not None:
                self._metrics.record_missed(job.workflow.name, job.site.name, MISSED_PROBE_DOWN, len(missed))
            state_file.record_slot(job.key, missed[-1], now_s)

    def _job_loop(self, job: Job, slot_index: int) -> None:
        interval_s = job.workflow.interval_s
        while not self._stop.is_set():
            slot_s = slot_index * interval_s
            with self._rng_lock:
                offset_s = self._rng.uniform(0.0, job.workflow.jitter_s) if job.workflow.jitter_s > 0 else 0.0
            if self._stop.wait(max(0.0, slot_s + offset_s - self._clock())):
                break
            try:
                slot_index = self._run_slot(job, slot_index)
            except Exception as exc:  # noqa: BLE001 - the job thread's boundary: a bug must not end the schedule
                logger.error(
                    "%s: unexpected %s in the probe's schedule; the job keeps its slots\n"
                    "Traceback (most recent call last):\n%s%s",
                    job.key, type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)), type(exc).__qualname__,
                )
                slot_index = max(slot_index + 1, math.floor(self._clock() / interval_s))

    def _run_slot(self, job: Job, slot_index: int) -> int:
        """Run the job for slot ``slot_index``; record the slots that passed meanwhile as missed.

        Returns:
            The next slot to run: the latest that has passed (run late), or the one after this.
            Decided here, with the missed ones, so a slot that passes while they are being
            recorded is run rather than lost between the two.
        """
        interval_s = job.workflow.interval_s
        slot_s = slot_index * interval_s
        self.run_job(job, slot=datetime.fromtimestamp(slot_s, tz=UTC), stop=self._stop)
        if self._state is not None:
            self._state.record_slot(job.key, slot_s, self._clock())
        # Slots that passed while this run was going are missed (busy), except the latest one,
        # which runs now, late (its offset records how late).
        latest_index = math.floor(self._clock() / interval_s)
        for missed_index in range(slot_index + 1, latest_index):
            missed_s = missed_index * interval_s
            self.record_missed_slot(job, datetime.fromtimestamp(missed_s, tz=UTC), MISSED_BUSY)
            if self._state is not None:
                self._state.record_slot(job.key, missed_s, self._clock())
        return max(slot_index + 1, latest_index)

    def record_missed_slot(
        self,
        job: Job,
        slot: datetime,
        reason: str,
        *,
        since: datetime | None = None,
        count_metric: bool = True,
    ) -> None:
        """Record a slot that passed without a run: a zero-length ``missed_slot`` span at the slot.

        Args:
            job: whose slot it was.
            slot: the scheduled moment.
            reason: ``busy`` (an earlier run was still going) or ``probe_down``.
            since: for ``probe_down``, the last moment the probe was known to be alive.
            count_metric: also add it to ``wardwatch.slots.missed``.
        """
        slot_ns = int(slot.timestamp() * _NS_PER_S)
        attributes = {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT,
            schema.ATTR_WORKFLOW: job.workflow.name,
            schema.ATTR_SITE: job.site.name,
            schema.ATTR_SLOT: slot.astimezone(UTC).isoformat(timespec="milliseconds"),
            schema.ATTR_MISSED_REASON: reason,
            schema.USER_AGENT_SYNTHETIC_TYPE: "test",
        }
        if since is not None:
            attributes[schema.ATTR_MISSED_SINCE] = since.astimezone(UTC).isoformat(timespec="milliseconds")
        span = self._tracers[job.site.name].start_span(
            "missed slot", kind=SpanKind.INTERNAL, start_time=slot_ns, attributes=attributes
        )
        span.end(end_time=slot_ns)
        if count_metric and self._metrics is not None:
            self._metrics.record_missed(job.workflow.name, job.site.name, reason)

    # -- lifecycle ----------------------------------------------------------------------------

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export every finished span now; False if some provider did not finish in time."""
        return all(provider.force_flush(int(timeout_s * 1000)) for provider in self._providers.values())

    def shutdown(self) -> None:
        """Stop, flush every span and metric, shut providers and exporters down (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        if self._browser is not None:
            self._browser.close()
        if self._state is not None:
            self._state.heartbeat(self._clock())
        for provider in self._providers.values():
            provider.shutdown()
        for exporter in self._exporters:
            exporter.shutdown()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()


def _link_events(events: Sequence[threading.Event]) -> None:
    """Set every event in ``events`` once any of them is set (polls at 50 ms)."""
    while not any(event.wait(0.05) for event in events):
        pass
    for event in events:
        event.set()
