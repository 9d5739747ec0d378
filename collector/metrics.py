"""Probe metrics through the OpenTelemetry SDK: durations in seconds, runs by status, missed slots.

Instruments (attribute keys from ``store.schema``):

- ``wardwatch.workflow.duration`` (histogram, s): a run's waiting time; workflow, site, run status.
- ``wardwatch.step.duration`` (histogram, s): a step's duration; workflow, site, step, error.type.
- ``wardwatch.runs`` (counter): runs; workflow, site, run status.
- ``wardwatch.slots.missed`` (counter): slots without a run; workflow, site, reason.

Histogram bucket boundaries are the human thresholds (0.1 s, 1 s, 10 s and steps between) plus
every configured objective threshold, so "share of runs under T" is exact at each T.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.metrics import MeterProvider

from collector.runner import RunResult
from store import schema

__all__ = ["DEFAULT_BOUNDARIES_S", "ProbeMetrics", "bucket_boundaries_s"]

METER_NAME = "wardwatch.collector"
DEFAULT_BOUNDARIES_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)


def bucket_boundaries_s(thresholds_s: Iterable[float] = ()) -> tuple[float, ...]:
    """The default boundaries merged with ``thresholds_s`` (each must be positive), ascending.

    Raises:
        ValueError: a threshold is not a positive number.
    """
    extra = [float(value) for value in thresholds_s]
    for value in extra:
        if not value > 0:
            raise ValueError(f"a bucket boundary must be positive, not {value!r}")
    return tuple(sorted(set(DEFAULT_BOUNDARIES_S) | set(extra)))


class ProbeMetrics:
    """The probe's instruments on ``meter_provider``.

    Args:
        meter_provider: where measurements go (its readers export them).
        thresholds_s: objective thresholds to add to the histogram bucket boundaries.
    """

    def __init__(self, meter_provider: MeterProvider, *, thresholds_s: Sequence[float] = ()) -> None:
        meter = meter_provider.get_meter(METER_NAME)
        boundaries = list(bucket_boundaries_s(thresholds_s))
        self.boundaries_s = tuple(boundaries)
        self._workflow_duration = meter.create_histogram(
            "wardwatch.workflow.duration",
            unit="s",
            description="A workflow run's waiting time (sum of its steps; think time excluded).",
            explicit_bucket_boundaries_advisory=boundaries,
        )
        self._step_duration = meter.create_histogram(
            "wardwatch.step.duration",
            unit="s",
            description="A workflow step's duration (sum of its HTTP requests' phases).",
            explicit_bucket_boundaries_advisory=boundaries,
        )
        self._runs = meter.create_counter("wardwatch.runs", unit="{run}", description="Workflow runs, by status.")
        self._missed = meter.create_counter(
            "wardwatch.slots.missed", unit="{slot}", description="Slots that passed without a run, by reason."
        )

    def record_run(self, result: RunResult) -> None:
        """Record one run and its steps (skipped steps are not durations)."""
        run_attributes = {
            schema.ATTR_WORKFLOW: result.workflow,
            schema.ATTR_SITE: result.site,
            schema.ATTR_RUN_STATUS: result.status,
        }
        self._runs.add(1, run_attributes)
        self._workflow_duration.record(result.waiting_s, run_attributes)
        for step in result.steps:
            if step.status == "skipped":
                continue
            attributes = {schema.ATTR_WORKFLOW: result.workflow, schema.ATTR_SITE: result.site, schema.ATTR_STEP: step.name}
            if step.error_type is not None:
                attributes[schema.ERROR_TYPE] = step.error_type
            self._step_duration.record(step.duration_s, attributes)

    def record_missed(self, workflow: str, site: str, reason: str, count: int = 1) -> None:
        """Record ``count`` missed slots of one job."""
        self._missed.add(
            count, {schema.ATTR_WORKFLOW: workflow, schema.ATTR_SITE: site, schema.ATTR_MISSED_REASON: reason}
        )
