"""Simulated history: runs whose timings are given by a model instead of measured.

The demo needs weeks of data on its first start. :class:`SimulatedProbe` records a run of a
workflow at a site as the same trace a live run of :func:`collector.runner.run_workflow` records:
a root span (``run``, kind Internal), one ``step`` child (kind Client) per step, ``request``
grandchildren where a step makes several requests (``for_each``, Bundle paging), an ``auth`` span
when the probe's shared token has to be fetched, and ``missed_slot`` spans. Same names, kinds and
attribute keys; the resource comes from :func:`collector.telemetry.tracer_provider_for_site` with
``simulated=True``, so every reader can tell simulated history from measurements.

The collector knows nothing of the testbed: the timing of each request comes from a
:data:`DelayModel`, ``(route key, site, instant) -> ModelledResponse``. A route key is the
method and the path template relative to the target's base with every placeholder as ``{id}``
(``GET /Patient/{id}``; see :func:`step_route_key`); the token endpoint's key is ``POST`` and
its URL path (``POST /auth/token``).

What a simulated request does, compared with a live one:

- its whole delay is time to first byte (no DNS, connect, TLS or transfer time is modelled), and
  a step's duration is the sum of its requests' delays, exactly as a live step's is the sum of
  its requests' phases;
- a modelled status (an outage's 503) fails the step as the live runner classifies it
  (:func:`collector.errors.classify_status`: ``http_5xx``), with ``on_error: stop`` ending the run;
  a failure of the token endpoint is an ``auth`` failure, as live;
- a delay beyond the step timeout (or the run's remaining time) is a ``timeout`` after that long;
- responses always pass the step's assertions (the model has no bodies), so ``extract`` always
  succeeds when the request does; credentials and header templates are not resolved (a missing
  secret does not fail a simulated run);
- data-dependent request counts are fixed: a ``for_each`` step sends ``for_each_items`` requests
  (default: the step's ``max_items``, which the testbed's Ward 7 list reaches), a step following
  Bundle ``next`` links reads ``bundle_pages`` pages (default 1, as the testbed's synthetic
  patients' notes fit one page);
- the OAuth2 token is shared by every site of the probe, as :class:`collector.probe.Probe` shares
  its :class:`collector.auth.TokenCache`, and refreshed as that cache refreshes it. For this to be
  faithful, record runs in the order of their start (:func:`record_history` does).

Think time is added to the wall time and left out of the waiting time, as live.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from collector.auth import token_reuse_s
from collector.config import (
    ITEM_VARIABLE,
    PATIENT_VARIABLES,
    RUN_VARIABLES,
    OAuth2ClientCredentialsConfig,
    SiteConfig,
    StepConfig,
    TargetConfig,
    WorkflowConfig,
    step_templates,
)
from collector.errors import ErrorType, StepFailure, classify_status
from collector.runner import RunResult, StepResult
from collector.schedule import next_slot_index
from collector.spans import STEP_FAILED, STEP_OK, STEP_SKIPPED, iso_utc, set_phase_attributes
from collector.telemetry import INSTRUMENTATION_SCOPE, tracer_provider_for_site
from collector.templating import Template
from collector.timing import RequestTiming
from store import schema
from store.redact import redacted_query

__all__ = [
    "DelayModel",
    "HistoryExportError",
    "HistoryStats",
    "ModelledResponse",
    "SimulatedProbe",
    "history_slots",
    "record_history",
    "route_key",
    "spans_per_run",
    "step_route_key",
]

_NS_PER_S = 1_000_000_000
# Spans held before an export is forced, whatever the day: bounds memory on long histories.
_MAX_BUFFERED_SPANS = 250_000


class HistoryExportError(RuntimeError):
    """The exporter could not take a batch of simulated spans (it logs why)."""


class ModelledResponse(NamedTuple):
    """What the model says one request does.

    Attributes:
        delay_s: from sending the request to the end of the response, seconds.
        status: the HTTP status; None means success, as the step expects it (its first
            ``expect_status``, else 200).
        response_bytes: the size of the response body.
    """

    delay_s: float
    status: int | None = None
    response_bytes: int = 0


DelayModel = Callable[[str, str, datetime], ModelledResponse]
"""``(route key, site name, aware UTC instant the request is sent) -> ModelledResponse``.

A plain ``(delay_s, status)`` tuple is accepted as well (no response bytes)."""


def route_key(method: str, path: str) -> str:
    """The route key of a request: ``METHOD /path`` with every placeholder as ``{id}``.

    Args:
        method: the HTTP method.
        path: a path template (``/Patient/{{ patient_id }}``) relative to the target's base URL.
    """
    template = Template.parse(path)
    spelled = "".join(part if index % 2 == 0 else "{id}" for index, part in enumerate(template.parts))
    return f"{method.upper()} {spelled}"


def step_route_key(step: StepConfig) -> str:
    """The route key of a step's requests, e.g. ``GET /Patient/{id}`` for ``/Patient/{{ patient_id }}``."""
    return route_key(step.method, step.path)


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """What :func:`record_history` recorded.

    Attributes:
        runs: runs recorded.
        missed_slots: slots recorded as missed (busy).
        spans: spans exported.
        runs_by_status: runs per ``wardwatch.run.status``.
    """

    runs: int
    missed_slots: int
    spans: int
    runs_by_status: Mapping[str, int]


class _SpanBuffer(SpanProcessor):
    """Holds finished spans until :meth:`SimulatedProbe.flush` exports them in one batch."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class _Target:
    """What the spans say of a target, computed once."""

    base_path: str
    server_address: str
    server_port: int
    token_key: str | None  # route key of the token endpoint (OAuth2 targets only)
    token_template: str
    token_address: str
    token_port: int


def _describe_target(target: TargetConfig) -> _Target:
    parts = urlsplit(target.base_url)
    auth = target.auth
    token_key = token_path = token_address = None
    token_port = 0
    if isinstance(auth, OAuth2ClientCredentialsConfig):
        token_parts = urlsplit(auth.token_url)
        token_path = token_parts.path or "/"
        token_key = f"POST {token_path}"
        token_address = token_parts.hostname or ""
        token_port = token_parts.port or (443 if token_parts.scheme == "https" else 80)
    return _Target(
        base_path=parts.path.rstrip("/"),
        server_address=parts.hostname or "",
        server_port=parts.port or (443 if parts.scheme == "https" else 80),
        token_key=token_key,
        token_template=token_path or "",
        token_address=token_address or "",
        token_port=token_port,
    )


@dataclass(frozen=True, slots=True)
class _StepPlan:
    """What every simulated run of one step shares, worked out once."""

    key: str  # route key
    url_template: str
    what: str  # METHOD url template, as the runner names a request in messages
    needs: frozenset[str]  # variables the step's templates use (``item`` excepted in for_each)
    query: Mapping[str, str]  # url.query with every value redacted, as the runner records it
    search: bool  # the response is a Bundle (counts as a page)
    requests: int
    own_spans: bool  # each request gets a ``request`` span


def _query_attribute(step: StepConfig) -> dict[str, str]:
    """``url.query`` as the runner spells it: the parameter names, every value redacted."""
    if not step.query:
        return {}
    return {schema.URL_QUERY: redacted_query(step.query)}


def _is_search(step: StepConfig) -> bool:
    """Whether the step's response is a FHIR Bundle: a GET of a type, not of one resource."""
    template = Template.parse(step.path)
    last = step.path.rstrip("/").rsplit("/", 1)[-1]
    return step.method == "GET" and not template.variables and last not in ("metadata", "")


class SimulatedProbe:
    """A probe whose runs are computed, not measured: same spans, simulated resource.

    Args:
        targets: the configured targets, by name.
        sites: the sites whose runs are recorded (one tracer provider each).
        exporter: where :meth:`flush` sends the spans (the Parquet store); never shut down here.
        delay_model: the timing and status of each request.
        probe_id: the resource's probe id.
        patients: the test patients (only whether there are any matters: it decides which
            variables exist, hence which steps a live run would skip).
        for_each_items: requests a ``for_each`` step sends; None means the step's ``max_items``.
        bundle_pages: pages a step that follows Bundle ``next`` links reads (at most
            ``1 + follow_next_pages``).
        token_lifetime_s: lifetime the token endpoint grants (the testbed's ``token_lifetime_s``);
            the token is refreshed as :class:`collector.auth.TokenCache` refreshes it.

    Attributes:
        spans_exported: spans handed to the exporter so far.
    """

    def __init__(
        self,
        targets: Mapping[str, TargetConfig],
        sites: Sequence[SiteConfig],
        exporter: SpanExporter,
        delay_model: DelayModel,
        *,
        probe_id: str,
        patients: Sequence[object] = (),
        for_each_items: int | None = None,
        bundle_pages: int = 1,
        token_lifetime_s: float = 300.0,
    ) -> None:
        if bundle_pages < 1:
            raise ValueError("bundle_pages must be at least 1")
        if for_each_items is not None and for_each_items < 0:
            raise ValueError("for_each_items must not be negative")
        if token_lifetime_s <= 0:
            raise ValueError("token_lifetime_s must be positive")
        self._targets = {name: _describe_target(target) for name, target in targets.items()}
        self._exporter = exporter
        self._model = delay_model
        self._for_each_items = for_each_items
        self._bundle_pages = bundle_pages
        self._token_reuse_ns = int(token_reuse_s(token_lifetime_s) * _NS_PER_S)
        self._token_until_ns: dict[str, int] = {}
        self._variables = frozenset(RUN_VARIABLES + (PATIENT_VARIABLES if patients else ()))
        self._buffer = _SpanBuffer()
        self._plans: dict[int, tuple[StepConfig, _StepPlan]] = {}
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[str, Tracer] = {}
        for site in sites:
            provider = tracer_provider_for_site(site, (), probe_id=probe_id, simulated=True)
            provider.add_span_processor(self._buffer)
            self._providers[site.name] = provider
            self._tracers[site.name] = provider.get_tracer(INSTRUMENTATION_SCOPE)
        self.spans_exported = 0

    # -- runs ------------------------------------------------------------------------------------

    def record_run(self, workflow: WorkflowConfig, site: str, *, slot: datetime | None, start: datetime) -> RunResult:
        """Record one run of ``workflow`` at ``site`` that started at ``start`` (for ``slot``).

        Args:
            workflow: the workflow, as configured.
            site: the site's name (one of ``sites``).
            slot: the scheduled moment, recorded with the start's offset from it.
            start: when the run started; aware.

        Returns:
            The run's result, as :func:`collector.runner.run_workflow` returns it (request timings'
            ``start_ns`` are wall-clock nanoseconds here).

        Raises:
            KeyError: ``site`` or the workflow's target is unknown.
        """
        return _SimulatedRun(self, workflow, site, self._targets[workflow.target], slot, start).record()

    def record_missed_slot(self, workflow: WorkflowConfig, site: str, slot: datetime, reason: str) -> None:
        """Record a slot that passed without a run, as :meth:`collector.probe.Probe.record_missed_slot`.

        Args:
            workflow: whose slot it was.
            site: the site's name.
            slot: the scheduled moment (aware).
            reason: ``schema.MISSED_BUSY`` or ``schema.MISSED_PROBE_DOWN``.
        """
        slot_ns = _ns(slot)
        attributes = {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT,
            schema.ATTR_WORKFLOW: workflow.name,
            schema.ATTR_SITE: site,
            schema.ATTR_SLOT: iso_utc(slot),
            schema.ATTR_MISSED_REASON: reason,
            schema.USER_AGENT_SYNTHETIC_TYPE: "test",
        }
        span = self._tracers[site].start_span("missed slot", kind=SpanKind.INTERNAL, start_time=slot_ns, attributes=attributes)
        span.end(end_time=slot_ns)

    # -- export ----------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Spans recorded and not exported yet."""
        return len(self._buffer.spans)

    def flush(self, before: datetime | None = None) -> int:
        """Export the buffered spans that start before ``before`` (all of them when None), in one batch.

        Exporting a whole UTC day at once makes one Parquet file for that day.

        Returns:
            The number of spans exported.

        Raises:
            HistoryExportError: the exporter reported a failure.
        """
        spans = self._buffer.spans
        if before is None:
            ready, kept = spans, []
        else:
            limit_ns = _ns(before)
            ready = [span for span in spans if (span.start_time or 0) < limit_ns]
            kept = [span for span in spans if (span.start_time or 0) >= limit_ns]
        self._buffer.spans = kept
        if not ready:
            return 0
        result = self._exporter.export(ready)
        if result != SpanExportResult.SUCCESS:
            raise HistoryExportError(f"the exporter could not write {len(ready)} simulated spans")
        self.spans_exported += len(ready)
        return len(ready)

    def shutdown(self, *, export: bool = True) -> None:
        """Export what is left (unless ``export`` is False: after a failure, drop it) and shut the
        tracer providers down (not the exporter)."""
        if export:
            self.flush()
        else:
            self._buffer.spans = []
        for provider in self._providers.values():
            provider.shutdown()

    # -- for _SimulatedRun ---------------------------------------------------------------------

    def _ask(self, key: str, site: str, at_ns: int) -> ModelledResponse:
        """The model's answer for a request sent at ``at_ns``; a plain (delay, status) tuple is accepted."""
        answer = self._model(key, site, _at(at_ns))
        return answer if isinstance(answer, ModelledResponse) else ModelledResponse(*answer)

    def _tracer(self, site: str) -> Tracer:
        return self._tracers[site]

    def _plan(self, step: StepConfig, target: _Target) -> _StepPlan:
        cached = self._plans.get(id(step))
        if cached is not None and cached[0] is step:
            return cached[1]
        if step.for_each is not None:
            count = step.max_items if self._for_each_items is None else min(self._for_each_items, step.max_items)
            requests, own_spans = count, True
        elif step.follow_next_pages > 0:
            requests, own_spans = min(self._bundle_pages, 1 + step.follow_next_pages), True
        else:
            requests, own_spans = 1, False
        needs = {
            name
            for _loc, template in step_templates(step)
            for name in template.variables
            if not (name == ITEM_VARIABLE and step.for_each is not None)
        }
        if step.for_each is not None:
            needs.add(step.for_each)
        url_template = target.base_path + step.path_template.as_url_template()
        plan = _StepPlan(
            key=step_route_key(step),
            url_template=url_template,
            what=f"{step.method} {url_template}",
            needs=frozenset(needs),
            query=_query_attribute(step),
            search=_is_search(step) and step.for_each is None,
            requests=requests,
            own_spans=own_spans,
        )
        self._plans[id(step)] = (step, plan)
        return plan

    def _token_needed(self, target_name: str, at_ns: int) -> bool:
        until_ns = self._token_until_ns.get(target_name)
        return until_ns is None or at_ns >= until_ns

    def _token_fetched(self, target_name: str, started_ns: int) -> None:
        self._token_until_ns[target_name] = started_ns + self._token_reuse_ns

    def _buffer_full(self) -> bool:
        return len(self._buffer.spans) >= _MAX_BUFFERED_SPANS


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("simulated moments must be time-zone aware")
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(ns: int) -> datetime:
    """``ns`` since the epoch as an aware UTC datetime (to the microsecond, rounded down)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


class _SimulatedRun:
    """One run on a simulated clock: ``self.now_ns`` moves by each delay and think time."""

    def __init__(
        self,
        probe: SimulatedProbe,
        workflow: WorkflowConfig,
        site: str,
        target: _Target,
        slot: datetime | None,
        start: datetime,
    ) -> None:
        self.probe = probe
        self.workflow = workflow
        self.site = site
        self.target = target
        self.slot = slot
        self.start = start.astimezone(UTC)
        self.start_ns = _ns(start)
        self.now_ns = self.start_ns
        self.deadline_ns = self.start_ns + int(workflow.timeout_s * _NS_PER_S)
        self.tracer = probe._tracer(site)
        self.common = {
            schema.ATTR_WORKFLOW: workflow.name,
            schema.ATTR_SITE: site,
            schema.USER_AGENT_SYNTHETIC_TYPE: "test",
        }
        self.root_context: Context | None = None

    def remaining_ns(self) -> int:
        return self.deadline_ns - self.now_ns

    def record(self) -> RunResult:
        workflow = self.workflow
        root_attributes: dict[str, Any] = {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, **self.common}
        if self.slot is not None:
            root_attributes[schema.ATTR_SLOT] = iso_utc(self.slot)
            root_attributes[schema.ATTR_SLOT_OFFSET_S] = (self.start - self.slot).total_seconds()
        root = self.tracer.start_span(
            workflow.name, kind=SpanKind.INTERNAL, start_time=self.start_ns, attributes=root_attributes
        )
        self.root_context = trace.set_span_in_context(root)
        steps, first_failure, run_timed_out = self._steps()
        waiting_s = sum(step.duration_s for step in steps)
        if first_failure is not None:
            status = schema.RUN_TIMED_OUT if first_failure.error_type == ErrorType.TIMEOUT else schema.RUN_FAILED
        elif run_timed_out:
            status = schema.RUN_TIMED_OUT
            first_failure = StepFailure(
                ErrorType.TIMEOUT, f"the run did not finish within its timeout of {workflow.timeout_s:g} s"
            )
        else:
            status = schema.RUN_OK
        root.set_attribute(schema.ATTR_RUN_STATUS, status)
        root.set_attribute(schema.ATTR_RUN_WAITING_S, waiting_s)
        if first_failure is not None:
            root.set_attribute(schema.ERROR_TYPE, first_failure.error_type.value)
            root.set_status(Status(StatusCode.ERROR, first_failure.message))
        root.end(end_time=self.now_ns)
        return RunResult(
            workflow=workflow.name,
            site=self.site,
            status=status,
            error_type=None if first_failure is None else first_failure.error_type.value,
            message=None if first_failure is None else first_failure.message,
            waiting_s=waiting_s,
            wall_s=(self.now_ns - self.start_ns) / _NS_PER_S,
            start=self.start,
            slot=self.slot,
            trace_id=format(root.get_span_context().trace_id, "032x"),
            steps=tuple(steps),
        )

    def _steps(self) -> tuple[list[StepResult], StepFailure | None, bool]:
        """As the runner's ``_run_steps``: (results, first failure, run timed out)."""
        workflow = self.workflow
        results: list[StepResult] = []
        first_failure: StepFailure | None = None
        variables = set(self.probe._variables)
        for index, step in enumerate(workflow.steps):
            if self.remaining_ns() <= 0:
                return results, first_failure, True
            plan = self.probe._plan(step, self.target)
            missing = plan.needs - variables
            if missing:
                results.append(
                    StepResult(step.name, index, STEP_SKIPPED, message=f"skipped: {', '.join(sorted(missing))} not available")
                )
                continue
            result, failure = self._step(step, index, plan)
            results.append(result)
            if failure is not None:
                first_failure = first_failure or failure
                if workflow.on_error == "stop":
                    return results, first_failure, False
            else:
                variables.update(step.extract)
            if index < len(workflow.steps) - 1:
                think_s = workflow.think_time_s if step.think_time_s is None else step.think_time_s
                if think_s > 0:
                    self.now_ns += min(int(think_s * _NS_PER_S), max(self.remaining_ns(), 0))
        return results, first_failure, False

    # -- one step --------------------------------------------------------------------------------

    def _step(self, step: StepConfig, index: int, plan: _StepPlan) -> tuple[StepResult, StepFailure | None]:
        failure: StepFailure | None = None
        target_name = self.workflow.target
        token_key = self.target.token_key
        if token_key is not None and self.probe._token_needed(target_name, self.now_ns):
            failure = self._fetch_token(token_key)
        url_template = plan.url_template
        step_start_ns = self.now_ns
        step_attributes = {
            **self.common,
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
            schema.ATTR_STEP: step.name,
            schema.ATTR_STEP_INDEX: index,
            schema.HTTP_REQUEST_METHOD: step.method,
            schema.URL_TEMPLATE: url_template,
            **plan.query,
            schema.SERVER_ADDRESS: self.target.server_address,
            schema.SERVER_PORT: self.target.server_port,
        }
        span = self.tracer.start_span(
            step.name, context=self.root_context, kind=SpanKind.CLIENT, start_time=step_start_ns, attributes=step_attributes
        )
        timings: list[RequestTiming] = []
        http_status: int | None = None
        response_bytes = 0
        pages = 0
        if failure is None:
            for _ in range(plan.requests):
                outcome = self._request(span, step, index, plan)
                timings.append(outcome.timing)
                if outcome.status is not None:
                    http_status = outcome.status
                    response_bytes += outcome.response_bytes
                failure = outcome.failure
                if failure is not None:
                    break
                if plan.search:
                    pages += 1
        duration_ns = sum(timing.total_ns for timing in timings)
        set_phase_attributes(span, timings)
        if http_status is not None:
            span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, http_status)
        span.set_attribute(schema.ATTR_RESPONSE_BYTES, response_bytes)
        if pages:
            span.set_attribute(schema.ATTR_BUNDLE_PAGES, pages)
        if failure is not None:
            span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
            span.set_status(Status(StatusCode.ERROR, failure.message))
        span.end(end_time=step_start_ns + duration_ns)
        result = StepResult(
            name=step.name,
            index=index,
            status=STEP_OK if failure is None else STEP_FAILED,
            error_type=None if failure is None else failure.error_type.value,
            message=None if failure is None else failure.message,
            duration_s=duration_ns / _NS_PER_S,
            http_status=http_status,
            requests=tuple(timings),
            response_bytes=response_bytes,
            pages=pages,
        )
        return result, failure

    def _request(self, step_span: Span, step: StepConfig, index: int, plan: _StepPlan) -> _Outcome:
        """One modelled request from the current moment; the clock moves past it."""
        what = plan.what
        start_ns = self.now_ns
        remaining_ns = self.remaining_ns()
        if remaining_ns <= 0:
            failure = StepFailure(ErrorType.TIMEOUT, f"{what}: the run's timeout of {self.workflow.timeout_s:g} s passed")
            return _Outcome(RequestTiming(start_ns=start_ns), None, 0, failure)
        step_timeout_ns = int(self.workflow.step_timeout_s * _NS_PER_S)
        timeout_ns = min(step_timeout_ns, remaining_ns)
        modelled = self.probe._ask(plan.key, self.site, start_ns)
        delay_ns = max(0, round(modelled.delay_s * _NS_PER_S))
        status: int | None
        if delay_ns > timeout_ns:
            delay_ns, status, size = timeout_ns, None, 0
            if timeout_ns < step_timeout_ns:
                message = f"{what}: cut at the run's timeout of {self.workflow.timeout_s:g} s"
            else:
                message = f"{what} timed out while waiting for the response"
            failure: StepFailure | None = StepFailure(ErrorType.TIMEOUT, message)
        else:
            expected = step.expect_status[0] if step.expect_status else 200
            status = expected if modelled.status is None else modelled.status
            size = modelled.response_bytes
            failure = classify_status(status, step.expect_status, what)
        timing = RequestTiming(start_ns=start_ns, ttfb_ns=delay_ns, failed_phase="ttfb" if status is None else None)
        if plan.own_spans:
            span = self.tracer.start_span(
                what,
                context=trace.set_span_in_context(step_span),
                kind=SpanKind.CLIENT,
                start_time=start_ns,
                attributes={
                    **self.common,
                    schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_REQUEST,
                    schema.ATTR_STEP: step.name,
                    schema.ATTR_STEP_INDEX: index,
                    schema.HTTP_REQUEST_METHOD: step.method,
                    schema.URL_TEMPLATE: plan.url_template,
                    **plan.query,
                    schema.SERVER_ADDRESS: self.target.server_address,
                    schema.SERVER_PORT: self.target.server_port,
                },
            )
            if status is not None:
                span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, status)
                span.set_attribute(schema.ATTR_RESPONSE_BYTES, size)
            set_phase_attributes(span, [timing])
            if failure is not None:
                span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
                span.set_status(Status(StatusCode.ERROR, failure.message))
            span.end(end_time=start_ns + delay_ns)
        self.now_ns = start_ns + delay_ns
        return _Outcome(timing, status, size, failure)

    def _fetch_token(self, token_key: str) -> StepFailure | None:
        """The ``auth`` span of a token request; the shared token is renewed when it succeeds."""
        target = self.target
        what = f"POST {target.token_template}"
        start_ns = self.now_ns
        span = self.tracer.start_span(
            what,
            context=self.root_context,
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                **self.common,
                schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_AUTH,
                schema.HTTP_REQUEST_METHOD: "POST",
                schema.URL_TEMPLATE: target.token_template,
                schema.SERVER_ADDRESS: target.token_address,
                schema.SERVER_PORT: target.token_port,
            },
        )
        step_timeout_ns = int(self.workflow.step_timeout_s * _NS_PER_S)
        timeout_ns = max(min(step_timeout_ns, self.remaining_ns()), 1_000_000)
        modelled = self.probe._ask(token_key, self.site, start_ns)
        delay_ns = max(0, round(modelled.delay_s * _NS_PER_S))
        failure: StepFailure | None = None
        if delay_ns > timeout_ns:
            delay_ns = timeout_ns
            failure = StepFailure(ErrorType.TIMEOUT, f"{what} timed out while waiting for the response")
        else:
            status = 200 if modelled.status is None else modelled.status
            span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, status)
            if status != 200:
                failure = StepFailure(ErrorType.AUTH, f"{what}: no token: the token endpoint answered {status}")
        set_phase_attributes(span, [RequestTiming(start_ns=start_ns, ttfb_ns=delay_ns)])
        if failure is not None:
            span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
            span.set_status(Status(StatusCode.ERROR, failure.message))
        else:
            self.probe._token_fetched(self.workflow.target, start_ns)
        span.end(end_time=start_ns + delay_ns)
        self.now_ns = start_ns + delay_ns
        return failure


class _Outcome(NamedTuple):
    timing: RequestTiming
    status: int | None
    response_bytes: int
    failure: StepFailure | None


# -- a history of runs on the cadence ------------------------------------------------------------


def history_slots(interval_s: float, start: datetime, end: datetime) -> Iterable[datetime]:
    """The slots of a job with cadence ``interval_s`` from ``start`` (inclusive) to ``end`` (exclusive).

    Slots are whole multiples of ``interval_s`` seconds since the Unix epoch, as the live probe's.
    """
    index = next_slot_index(_ns(start) / _NS_PER_S, interval_s)
    end_s = _ns(end) / _NS_PER_S
    while index * interval_s < end_s:
        yield datetime.fromtimestamp(index * interval_s, tz=UTC)
        index += 1


def spans_per_run(workflow: WorkflowConfig, *, for_each_items: int | None = None, bundle_pages: int = 1) -> int:
    """Spans an ok run of ``workflow`` records in history: the root, each step, its request spans.

    Token fetches (an ``auth`` span every few minutes per target) are not counted.

    Args:
        workflow: the workflow.
        for_each_items: as :class:`SimulatedProbe`'s.
        bundle_pages: as :class:`SimulatedProbe`'s.
    """
    count = 1
    for step in workflow.steps:
        count += 1
        if step.for_each is not None:
            count += step.max_items if for_each_items is None else min(for_each_items, step.max_items)
        elif step.follow_next_pages > 0:
            count += min(bundle_pages, 1 + step.follow_next_pages)
    return count


def _jitter_s(seed: int, job_key: str, slot: datetime, jitter_s: float) -> float:
    """The start offset of a slot: uniform in ``[0, jitter_s)``, the same for the same seed, job and slot."""
    if jitter_s <= 0:
        return 0.0
    return random.Random(f"{seed}|{job_key}|{slot.isoformat()}").uniform(0.0, jitter_s)


def record_history(
    probe: SimulatedProbe,
    jobs: Sequence[tuple[WorkflowConfig, str]],
    start: datetime,
    end: datetime,
    *,
    seed: int = 0,
    interval_s: float | Mapping[str, float] | None = None,
) -> HistoryStats:
    """Record every job's runs for the slots in ``[start, end)``, in the order they start, and export them.

    Each job (workflow, site name) has slots on its cadence: every ``max(workflow.interval_s,
    interval_s)`` seconds since the epoch (``interval_s`` may differ per workflow). As in the live probe's job loop, a run starts at its
    slot plus an offset in ``[0, jitter_s)`` (drawn from ``(seed, job, slot)``, so the same seed
    gives the same history however it is split into periods), or when the job's previous run
    ends if that is later; the slots that passed during a run, except the latest, are recorded as
    missed (``busy``), and the latest runs late. Spans are exported a UTC day at a time (one
    Parquet file per day with the store's exporter).

    Args:
        probe: records the runs and holds the exporter.
        jobs: (workflow, site name) pairs.
        start: first moment of the history (aware).
        end: the moment the history stops (aware, exclusive): no slot at or after it.
        seed: makes the start offsets reproducible.
        interval_s: a coarser cadence than the workflows' own, for a faster history: one for every
            workflow, or one per workflow name (workflows not named keep their own); None or 0
            keeps every workflow's own cadence.

    Returns:
        What was recorded.
    """
    start_s, end_s = _ns(start) / _NS_PER_S, _ns(end) / _NS_PER_S
    def floor_s(workflow: WorkflowConfig) -> float:
        if isinstance(interval_s, Mapping):
            return float(interval_s.get(workflow.name, 0.0))
        return interval_s or 0.0

    intervals = [max(workflow.interval_s, floor_s(workflow)) for workflow, _site in jobs]
    keys = [f"{workflow.name}@{site}" for workflow, site in jobs]

    def planned_start_ns(job_index: int, slot_index: int, free_ns: int) -> int:
        slot_s = slot_index * intervals[job_index]
        slot = datetime.fromtimestamp(slot_s, tz=UTC)
        offset_s = _jitter_s(seed, keys[job_index], slot, jobs[job_index][0].jitter_s)
        free_us = -(-free_ns // 1000)  # runs start on whole microseconds, as datetimes hold them
        return max(free_us, round((slot_s + offset_s) * 1_000_000)) * 1000

    queue: list[tuple[int, int, int]] = []  # (start ns, job index, slot index)
    for job_index in range(len(jobs)):
        slot_index = next_slot_index(start_s, intervals[job_index])
        if slot_index * intervals[job_index] < end_s:
            heapq.heappush(queue, (planned_start_ns(job_index, slot_index, 0), job_index, slot_index))
    runs = missed = 0
    by_status: dict[str, int] = {}
    exported_before = probe.spans_exported
    day_end_ns = _next_utc_midnight_ns(queue[0][0]) if queue else 0
    while queue:
        run_start_ns, job_index, slot_index = heapq.heappop(queue)
        if run_start_ns >= day_end_ns:
            probe.flush(_at(day_end_ns))
            day_end_ns = _next_utc_midnight_ns(run_start_ns)
        elif probe._buffer_full():
            probe.flush(_at(run_start_ns))
        workflow, site = jobs[job_index]
        interval = intervals[job_index]
        slot = datetime.fromtimestamp(slot_index * interval, tz=UTC)
        result = probe.record_run(workflow, site, slot=slot, start=_at(run_start_ns))
        runs += 1
        by_status[result.status] = by_status.get(result.status, 0) + 1
        end_ns = run_start_ns + round(result.wall_s * _NS_PER_S)
        latest_index = math.floor(end_ns / _NS_PER_S / interval)
        for missed_index in range(slot_index + 1, latest_index):
            if missed_index * interval >= end_s:
                break
            probe.record_missed_slot(workflow, site, datetime.fromtimestamp(missed_index * interval, tz=UTC), schema.MISSED_BUSY)
            missed += 1
        next_index = max(slot_index + 1, latest_index)
        if next_index * interval < end_s:
            heapq.heappush(queue, (planned_start_ns(job_index, next_index, end_ns), job_index, next_index))
    probe.flush()
    return HistoryStats(runs, missed, probe.spans_exported - exported_before, by_status)


def _next_utc_midnight_ns(ns: int) -> int:
    day_ns = 86_400 * _NS_PER_S
    return (ns // day_ns + 1) * day_ns
