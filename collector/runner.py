"""Run one workflow once, at one site, as one trace: the probe's unit of measurement.

A run is a root span (``wardwatch.span.type = run``, kind Internal) with one child per step
(``step``, kind Client). A step that follows Bundle ``next`` links records one ``request``
grandchild per HTTP request. Fetching an OAuth2 token is an ``auth`` span under the root: its
cost is visible, and it is not part of the user's waiting time.

Durations come from the monotonic clock (:mod:`collector.timing`). A step's duration is the sum
of its requests' phases, and its span's Duration is exactly that; the run's waiting time
(``wardwatch.run.waiting_s``) is the sum of its steps; think time is waited but excluded. Span
timestamps are the run's wall-clock start plus monotonic offsets.

Failures are data: whatever the target does, :func:`run_workflow` returns a :class:`RunResult`
(``ok``, ``failed``, ``timed_out`` or ``interrupted``) and the first failure's ``error.type``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import ssl
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from collector.auth import TOKEN_AUTH_TYPES, AuthError, TokenAuth, TokenCache, static_auth_headers
from collector.client import ClientFactory, make_client
from collector.config import (
    ITEM_VARIABLE,
    SiteConfig,
    StepConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    step_templates,
)
from collector.errors import ErrorType, ResponseTooLargeError, StepFailure, classify_status, classify_transport_error
from collector.jsonpath import JsonPath
from collector.secretref import SecretResolutionError, resolve_secret
from collector.spans import STEP_FAILED, STEP_OK, STEP_SKIPPED, iso_utc, set_phase_attributes
from collector.templating import Template, TemplateError, render_json
from collector.timing import PhaseTimer, RequestTiming
from store import schema
from store.redact import redacted_query

__all__ = ["RunResult", "StepResult", "run_workflow"]

logger = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
# What a header value may hold: visible ASCII, spaces and tabs. A CR or LF would end the header
# (and the HTTP library would quote the whole value in its error); other bytes are refused too.
_SENDABLE_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
# RFC 6750's b64token: what a bearer token may be made of.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did.

    Attributes:
        name: the step's name.
        index: its 0-based position in the workflow.
        status: ``ok``, ``failed`` or ``skipped`` (a value it needed was never extracted).
        error_type: one of ``schema.ERROR_TYPES`` when failed.
        message: why it failed, without patient data or secrets.
        duration_s: sum of its requests' phases.
        http_status: the last response's status code, if any response came.
        requests: the timing of each HTTP request (several when it followed ``next`` links).
        response_bytes: bytes received (as sent on the wire, before decompression).
        pages: Bundle pages read (0 when the response was not a Bundle).
    """

    name: str
    index: int
    status: str
    error_type: str | None = None
    message: str | None = None
    duration_s: float = 0.0
    http_status: int | None = None
    requests: tuple[RequestTiming, ...] = ()
    response_bytes: int = 0
    pages: int = 0


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run did.

    Attributes:
        workflow: the workflow's name.
        site: the site's name.
        status: one of ``schema.RUN_STATUSES``.
        error_type: the first failure's ``error.type`` when not ok (None when interrupted cleanly).
        message: the first failure's message.
        waiting_s: sum of the steps' durations (think time excluded).
        wall_s: from the run's start to its end, think time included.
        start: wall-clock start (UTC).
        slot: the scheduled moment, if the run was scheduled.
        trace_id: the run's trace id, 32 hex digits.
        steps: every step that ran or was skipped, in order.
        cleanup: the workflow's cleanup steps, run after the steps (not part of ``waiting_s``).
    """

    workflow: str
    site: str
    status: str
    error_type: str | None
    message: str | None
    waiting_s: float
    wall_s: float
    start: datetime
    slot: datetime | None
    trace_id: str
    steps: tuple[StepResult, ...] = ()
    cleanup: tuple[StepResult, ...] = ()


@dataclass
class _Clock:
    """Wall-clock timestamps derived from one wall reading plus monotonic offsets."""

    wall0_ns: int = field(default_factory=time.time_ns)
    perf0_ns: int = field(default_factory=time.perf_counter_ns)

    def wall_ns(self, perf_ns: int | None = None) -> int:
        return self.wall0_ns + ((time.perf_counter_ns() if perf_ns is None else perf_ns) - self.perf0_ns)


class _RunContext:
    """Everything one run shares between its steps."""

    def __init__(
        self,
        *,
        workflow: WorkflowConfig,
        target: TargetConfig,
        target_name: str,
        site: SiteConfig,
        tracer: Tracer,
        client: httpx.Client,
        environ: Mapping[str, str],
        token_cache: TokenCache,
        clock: _Clock,
        root_context: Context,
        deadline_ns: int,
    ) -> None:
        self.workflow = workflow
        self.target = target
        self.target_name = target_name
        self.site = site
        self.tracer = tracer
        self.client = client
        self.environ = environ
        self.token_cache = token_cache
        self.clock = clock
        self.root_context = root_context
        self.deadline_ns = deadline_ns
        parts = urlsplit(target.base_url)
        self.base_path = parts.path.rstrip("/")
        self.server_address = parts.hostname or ""
        self.server_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.origin = (parts.scheme, parts.hostname, self.server_port)

    def remaining_s(self) -> float:
        return (self.deadline_ns - time.perf_counter_ns()) / _NS_PER_S

    def common_attributes(self) -> dict[str, Any]:
        return {
            schema.ATTR_WORKFLOW: self.workflow.name,
            schema.ATTR_SITE: self.site.name,
            schema.USER_AGENT_SYNTHETIC_TYPE: "test",
        }


def run_workflow(
    workflow: WorkflowConfig,
    target: TargetConfig,
    site: SiteConfig,
    *,
    tracer: Tracer,
    target_name: str | None = None,
    patients: Sequence[TestPatientConfig] = (),
    environ: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
    token_cache: TokenCache | None = None,
    client_factory: ClientFactory | None = None,
    slot: datetime | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Run ``workflow`` once against ``target`` from ``site``, recording spans with ``tracer``.

    Args:
        workflow: the steps and their timeouts, think time, connection mode and error policy.
        target: where the steps go.
        site: where the probe is (sent through the target's templated headers, recorded on spans).
        tracer: from the site's tracer provider (:func:`collector.telemetry.tracer_provider_for_site`).
        target_name: the target's name, the token cache key (default ``workflow.target``).
        patients: the test patients; one is picked per run with ``rng``.
        environ: where secret references are resolved (default ``os.environ``).
        rng: picks the patient and the run id (default: a fresh ``random.Random()``).
        token_cache: OAuth2 tokens shared across runs (default: a new cache for this run).
        client_factory: builds the run's HTTP client (default :func:`collector.client.make_client`).
        slot: the scheduled moment; recorded with the start's offset from it.
        stop: when set, the run stops before its next step and is recorded as ``interrupted``.

    Returns:
        The run's result. Target misbehaviour (HTTP errors, resets, timeouts, bad JSON) never
        raises: it is recorded on the spans and in the result.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    rng = random.Random() if rng is None else rng
    clock = _Clock()
    start = datetime.fromtimestamp(clock.wall0_ns / _NS_PER_S, tz=UTC)
    root_attributes: dict[str, Any] = {
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN,
        schema.ATTR_WORKFLOW: workflow.name,
        schema.ATTR_SITE: site.name,
        schema.USER_AGENT_SYNTHETIC_TYPE: "test",
    }
    if slot is not None:
        root_attributes[schema.ATTR_SLOT] = iso_utc(slot)
        root_attributes[schema.ATTR_SLOT_OFFSET_S] = (start - slot).total_seconds()
    root = tracer.start_span(
        workflow.name, kind=SpanKind.INTERNAL, start_time=clock.wall0_ns, attributes=root_attributes
    )
    try:
        return _run_under_root(
            root, clock, start, workflow, target, site,
            tracer=tracer, target_name=target_name, patients=patients, environ=env, rng=rng,
            token_cache=token_cache, client_factory=client_factory, slot=slot, stop=stop,
        )
    except Exception as exc:  # noqa: BLE001 - the run's boundary: a bug in the probe is a failed run, not a dead job
        _log_unexpected(workflow, site, exc)
        failure = StepFailure(
            ErrorType.INVALID_RESPONSE,
            f"the probe failed unexpectedly during the run ({type(exc).__name__}); the traceback is in the probe's log",
        )
        return _finish_run(root, clock, workflow, site, start, slot, [], failure, interrupted=False, run_timed_out=False)


def _log_unexpected(workflow: WorkflowConfig, site: SiteConfig, exc: BaseException) -> None:
    """Log an unexpected error once, with its stack but not its message (which may quote a value
    taken from a response: a patient identifier must not reach the log)."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "%s@%s: unexpected %s in the probe; the run is recorded as failed\nTraceback (most recent call last):\n%s%s",
        workflow.name, site.name, type(exc).__name__, stack, type(exc).__qualname__,
    )


def _run_under_root(
    root: Span,
    clock: _Clock,
    start: datetime,
    workflow: WorkflowConfig,
    target: TargetConfig,
    site: SiteConfig,
    *,
    tracer: Tracer,
    target_name: str | None,
    patients: Sequence[TestPatientConfig],
    environ: Mapping[str, str],
    rng: random.Random,
    token_cache: TokenCache | None,
    client_factory: ClientFactory | None,
    slot: datetime | None,
    stop: threading.Event | None,
) -> RunResult:
    """The body of :func:`run_workflow` once its root span exists."""
    env = environ
    root_context = trace.set_span_in_context(root)
    factory = make_client if client_factory is None else client_factory
    try:
        client = factory(target, workflow.connection == "reuse")
    except (OSError, ssl.SSLError) as exc:
        # The target's TLS files are missing or unusable: the probe's fault, not the target's,
        # but recorded the same way (a failed run) rather than raised into the scheduler.
        failure = StepFailure(
            ErrorType.TLS, f"the TLS settings of target {target_name or workflow.target} cannot be used ({exc.strerror or type(exc).__name__})"
        )
        return _finish_run(root, clock, workflow, site, start, slot, [], failure, interrupted=False, run_timed_out=False)
    run = _RunContext(
        workflow=workflow,
        target=target,
        target_name=target_name or workflow.target,
        site=site,
        tracer=tracer,
        client=client,
        environ=env,
        token_cache=TokenCache() if token_cache is None else token_cache,
        clock=clock,
        root_context=root_context,
        deadline_ns=clock.perf0_ns + int(workflow.timeout_s * _NS_PER_S),
    )
    variables: dict[str, Any] = {
        "site": site.name,
        "site_timezone": site.timezone,
        "workflow": workflow.name,
        "run_id": f"{rng.getrandbits(64):016x}",
        "now_utc": iso_utc(start),
    }
    if patients:
        patient = rng.choice(list(patients))
        variables.update(
            patient_identifier=patient.identifier, patient_system=patient.system, patient_mrn=patient.value
        )
    try:
        steps, first_failure, interrupted, run_timed_out = _run_steps(run, variables, stop)
        cleanup = _run_cleanup(run, variables)
    finally:
        client.close()
    return _finish_run(
        root, clock, workflow, site, start, slot, steps, first_failure,
        interrupted=interrupted, run_timed_out=run_timed_out, cleanup=cleanup,
    )


def _finish_run(
    root: Span,
    clock: _Clock,
    workflow: WorkflowConfig,
    site: SiteConfig,
    start: datetime,
    slot: datetime | None,
    steps: list[StepResult],
    first_failure: StepFailure | None,
    *,
    interrupted: bool,
    run_timed_out: bool,
    cleanup: Sequence[StepResult] = (),
) -> RunResult:
    """Set the run's status on its root span, end it, and build the result."""
    waiting_s = sum(step.duration_s for step in steps)
    if first_failure is not None:
        status = schema.RUN_TIMED_OUT if first_failure.error_type == ErrorType.TIMEOUT else schema.RUN_FAILED
    elif run_timed_out:
        status = schema.RUN_TIMED_OUT
        first_failure = StepFailure(
            ErrorType.TIMEOUT, f"the run did not finish within its timeout of {workflow.timeout_s:g} s"
        )
    elif interrupted:
        status = schema.RUN_INTERRUPTED
    else:
        status = schema.RUN_OK
    root.set_attribute(schema.ATTR_RUN_STATUS, status)
    root.set_attribute(schema.ATTR_RUN_WAITING_S, waiting_s)
    if cleanup:
        outcomes = {result.status for result in cleanup}
        root.set_attribute(
            schema.ATTR_CLEANUP_STATUS,
            "failed" if STEP_FAILED in outcomes else "skipped" if STEP_SKIPPED in outcomes else "ok",
        )
    if first_failure is not None:
        root.set_attribute(schema.ERROR_TYPE, first_failure.error_type.value)
        root.set_status(Status(StatusCode.ERROR, first_failure.message))
    elif interrupted:
        root.set_status(Status(StatusCode.ERROR, "the probe was stopped during the run"))
    end_ns = clock.wall_ns()
    root.end(end_time=end_ns)
    return RunResult(
        workflow=workflow.name,
        site=site.name,
        status=status,
        error_type=None if first_failure is None else first_failure.error_type.value,
        message=None if first_failure is None else first_failure.message,
        waiting_s=waiting_s,
        wall_s=(end_ns - clock.wall0_ns) / _NS_PER_S,
        start=start,
        slot=slot,
        trace_id=format(root.get_span_context().trace_id, "032x"),
        steps=tuple(steps),
        cleanup=tuple(cleanup),
    )


def _run_steps(
    run: _RunContext, variables: dict[str, Any], stop: threading.Event | None
) -> tuple[list[StepResult], StepFailure | None, bool, bool]:
    """Run the steps in order; returns (results, first failure, interrupted, run timed out)."""
    workflow = run.workflow
    results: list[StepResult] = []
    first_failure: StepFailure | None = None
    try:
        base_headers = _target_headers(run, variables)
    except (SecretResolutionError, TemplateError) as exc:
        failure = StepFailure(ErrorType.AUTH, f"target {run.target_name} headers: {exc}")
        return results, failure, False, False
    for index, step in enumerate(workflow.steps):
        if stop is not None and stop.is_set():
            return results, first_failure, True, False
        if run.remaining_s() <= 0:
            return results, first_failure, False, True
        missing = _missing_variables(step, variables)
        if missing:
            results.append(
                StepResult(
                    step.name,
                    index,
                    STEP_SKIPPED,
                    message=f"skipped: {', '.join(sorted(set(missing)))} not available",
                )
            )
            continue
        result, failure = _StepRun(run, step, index, variables, base_headers).execute()
        results.append(result)
        if failure is not None:
            first_failure = first_failure or failure
            if workflow.on_error == "stop":
                return results, first_failure, False, False
        if index < len(workflow.steps) - 1:
            think_s = workflow.think_time_s if step.think_time_s is None else step.think_time_s
            if think_s > 0:
                wait_s = min(think_s, max(run.remaining_s(), 0.0))
                if stop is not None:
                    stop.wait(wait_s)
                else:
                    time.sleep(wait_s)
    return results, first_failure, False, False


def _missing_variables(step: StepConfig, variables: Mapping[str, Any]) -> list[str]:
    """The variables ``step`` needs that no earlier step extracted."""
    missing = [
        name
        for _loc, template in step_templates(step)
        for name in template.variables
        if name not in variables and not (name == ITEM_VARIABLE and step.for_each is not None)
    ]
    if step.for_each is not None and step.for_each not in variables:
        missing.append(step.for_each)
    return missing


def _run_cleanup(run: _RunContext, variables: dict[str, Any]) -> list[StepResult]:
    """The workflow's cleanup steps, after its steps, whatever became of them (a run that failed
    or was stopped after it wrote still undoes what it wrote).

    Each is a ``cleanup`` span under the run, timed like a step but outside the waiting time; a
    failure is recorded on its span and the run's ``wardwatch.cleanup.status``, and does not fail
    the run. A step needing a value that was never extracted (nothing was written) is skipped.
    """
    workflow = run.workflow
    if not workflow.cleanup:
        return []
    # Its own time: the run's may be spent (a timed-out run is the one most likely to leave data).
    run.deadline_ns = time.perf_counter_ns() + int(workflow.timeout_s * _NS_PER_S)
    first_index = len(workflow.steps)
    try:
        base_headers = _target_headers(run, variables)
    except (SecretResolutionError, TemplateError) as exc:
        message = f"target {run.target_name} headers: {exc}"
        return [
            StepResult(step.name, first_index + offset, STEP_FAILED, error_type=ErrorType.AUTH.value, message=message)
            for offset, step in enumerate(workflow.cleanup)
        ]
    results: list[StepResult] = []
    for offset, step in enumerate(workflow.cleanup):
        missing = _missing_variables(step, variables)
        if missing:
            message = f"skipped: {', '.join(sorted(set(missing)))} not available"
            results.append(StepResult(step.name, first_index + offset, STEP_SKIPPED, message=message))
            continue
        result, _failure = _StepRun(
            run, step, first_index + offset, variables, base_headers, span_type=schema.SPAN_TYPE_CLEANUP
        ).execute()
        results.append(result)
    return results


def _target_headers(run: _RunContext, variables: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in run.target.headers.items():
        if value.startswith("${"):
            headers[key] = resolve_secret(value, run.environ)
        else:
            headers[key] = Template.parse(value).render(variables)
    return headers


def _quote_segment(value: str) -> str:
    return quote(value, safe="-._~:@!$&'()*+,;=")


class _StepRun:
    """One step: build the request, get credentials, send, follow pages, check, extract."""

    def __init__(
        self,
        run: _RunContext,
        step: StepConfig,
        index: int,
        variables: dict[str, Any],
        base_headers: Mapping[str, str],
        *,
        span_type: str = schema.SPAN_TYPE_STEP,
    ) -> None:
        self.run = run
        self.step = step
        self.span_type = span_type
        # A cleanup step's requests are cleanup spans too: never counted as the EPR's requests.
        self.request_span_type = schema.SPAN_TYPE_REQUEST if span_type == schema.SPAN_TYPE_STEP else span_type
        self.index = index
        self.variables = variables
        self.base_headers = base_headers
        self.url_template = run.base_path + step.path_template.as_url_template()
        self.query_attribute = (
            {schema.URL_QUERY: redacted_query(step.query)}
            if step.query
            else {}
        )
        self.what = f"{step.method} {self.url_template}"
        self.timings: list[RequestTiming] = []
        self.response_bytes = 0
        self.http_status: int | None = None
        self.pages = 0

    # -- public -------------------------------------------------------------------------------

    def execute(self) -> tuple[StepResult, StepFailure | None]:
        run, step = self.run, self.step
        try:
            auth_headers = self._auth_headers()
        except _AuthFailure as exc:
            failure = exc.failure
            auth_headers = None
        else:
            failure = None
        start_ns = run.clock.wall_ns()
        span = run.tracer.start_span(
            step.name,
            context=run.root_context,
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                **run.common_attributes(),
                schema.ATTR_SPAN_TYPE: self.span_type,
                schema.ATTR_STEP: step.name,
                schema.ATTR_STEP_INDEX: self.index,
                schema.HTTP_REQUEST_METHOD: step.method,
                schema.URL_TEMPLATE: self.url_template,
                schema.SERVER_ADDRESS: run.server_address,
                schema.SERVER_PORT: run.server_port,
                **self.query_attribute,
            },
        )
        if failure is None and auth_headers is not None:
            failure = self._send_all(span, auth_headers)
        duration_ns = sum(timing.total_ns for timing in self.timings)
        self._finish_span(span, start_ns + duration_ns, failure)
        result = StepResult(
            name=step.name,
            index=self.index,
            status=STEP_OK if failure is None else STEP_FAILED,
            error_type=None if failure is None else failure.error_type.value,
            message=None if failure is None else failure.message,
            duration_s=duration_ns / _NS_PER_S,
            http_status=self.http_status,
            requests=tuple(self.timings),
            response_bytes=self.response_bytes,
            pages=self.pages,
        )
        return result, failure

    # -- credentials ----------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        run = self.run
        auth = run.target.auth
        if not isinstance(auth, TOKEN_AUTH_TYPES):
            try:
                return static_auth_headers(run.target, run.environ)
            except AuthError as exc:
                raise _AuthFailure(StepFailure(ErrorType.AUTH, f"credentials for {run.target_name}: {exc}")) from exc
        token = run.token_cache.cached(run.target_name)
        if token is None:
            token = self._fetch_token(auth)
        return {"Authorization": f"Bearer {token}"}

    def _fetch_token(self, auth: TokenAuth) -> str:
        run = self.run
        discovery = PhaseTimer(timeout_s=run.workflow.step_timeout_s)
        try:  # a SMART token endpoint not configured is discovered once per target, untimed
            with discovery.active():
                token_url = run.token_cache.token_url(
                    run.target_name, auth, run.target.base_url, run.client, timeout_s=run.workflow.step_timeout_s
                )
        except AuthError as exc:
            message = f"credentials for {run.target_name}: {exc}"
            raise _AuthFailure(StepFailure(ErrorType.AUTH, message)) from exc
        except (httpx.RequestError, ResponseTooLargeError) as exc:
            # Our own words only: the exception's text may quote what the server sent.
            found = classify_transport_error(exc, None, "GET /.well-known/smart-configuration")
            raise _AuthFailure(StepFailure(ErrorType.AUTH, f"credentials for {run.target_name}: {found.message}")) from exc
        except RecursionError as exc:
            message = f"credentials for {run.target_name}: .well-known/smart-configuration is not valid JSON"
            raise _AuthFailure(StepFailure(ErrorType.AUTH, message)) from exc
        parts = urlsplit(token_url)
        what = f"POST {parts.path or '/'}"
        start_ns = run.clock.wall_ns()
        span = run.tracer.start_span(
            what,
            context=run.root_context,
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                **run.common_attributes(),
                schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_AUTH,
                schema.HTTP_REQUEST_METHOD: "POST",
                schema.URL_TEMPLATE: parts.path or "/",
                schema.SERVER_ADDRESS: parts.hostname or "",
                schema.SERVER_PORT: parts.port or (443 if parts.scheme == "https" else 80),
            },
        )
        failure: StepFailure | None = None
        token = ""
        timeout_s = max(min(run.workflow.step_timeout_s, run.remaining_s()), 0.001)
        timer = PhaseTimer(timeout_s=timeout_s)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        with timer.active():
            try:
                token = run.token_cache.fetch(
                    run.target_name,
                    auth,
                    run.client,
                    run.environ,
                    extensions={"trace": timer.trace},
                    extra_headers={**self.base_headers, **carrier},
                    timeout_s=timeout_s,
                )
            except AuthError as exc:
                failure = StepFailure(ErrorType.AUTH, f"{what}: no token: {exc}")
                if exc.status_code is not None:
                    span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, exc.status_code)
            except (httpx.RequestError, ResponseTooLargeError) as exc:
                failure = classify_transport_error(exc, timer.timing().failed_phase, what)
            except RecursionError:
                failure = StepFailure(ErrorType.AUTH, f"{what}: no token: the token endpoint answered with invalid JSON")
            else:
                span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, 200)
                if not _BEARER_TOKEN.fullmatch(token):
                    # Never echoed: the token is a secret, whatever else it holds.
                    run.token_cache.invalidate(run.target_name)
                    failure = StepFailure(
                        ErrorType.AUTH, f"{what}: the token endpoint's access_token is not a valid bearer token"
                    )
        timing = timer.timing()
        set_phase_attributes(span, [timing])
        if failure is not None:
            span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
            span.set_status(Status(StatusCode.ERROR, failure.message))
        span.end(end_time=start_ns + timing.total_ns)
        if failure is not None:
            raise _AuthFailure(failure)
        return token

    # -- requests ---------------------------------------------------------------------------

    def _build_request(
        self, auth_headers: Mapping[str, str], variables: Mapping[str, Any]
    ) -> tuple[str, dict[str, str], dict[str, str], Any]:
        step = self.step
        url = self.run.target.base_url + step.path_template.render(variables, quote=_quote_segment)
        params = {
            key: Template.parse(value).render(variables) if isinstance(value, str) else _query_literal(value)
            for key, value in step.query.items()
        }
        headers = {**self.base_headers, **auth_headers}
        for key, value in step.headers.items():
            headers[key] = Template.parse(value).render(variables)
        body = None if step.json_body is None else render_json(step.json_body, variables)
        return url, params, headers, body

    def _send_each(self, span: Span, auth_headers: Mapping[str, str]) -> StepFailure | None:
        """A ``for_each`` step: one request per element, each its own ``request`` span."""
        step = self.step
        items = self.variables[step.for_each] if step.for_each is not None else []
        if not isinstance(items, list):
            items = [items]
        for item in items[: step.max_items]:
            variables = {**self.variables, ITEM_VARIABLE: item}
            url, params, headers, body = self._build_request(auth_headers, variables)
            outcome = self._send_one(span, url, params, headers, body, request_span=True)
            if isinstance(outcome, StepFailure):
                return outcome
            failure = self._check_assertions(outcome, variables)
            if failure is not None:
                return failure
        return None

    def _send_all(self, span: Span, auth_headers: Mapping[str, str]) -> StepFailure | None:
        step = self.step
        if step.for_each is not None:
            return self._send_each(span, auth_headers)
        url, params, headers, body = self._build_request(auth_headers, self.variables)
        many = step.follow_next_pages > 0
        document: Any = None
        next_url: str | None = url
        page = 0
        while next_url is not None:
            current_url = next_url
            outcome = self._send_one(
                span,
                current_url,
                params if page == 0 else {},
                headers,
                body if page == 0 else None,
                request_span=many,
            )
            if isinstance(outcome, StepFailure):
                return outcome
            if page == 0:
                document = outcome
            elif isinstance(document, dict) and isinstance(outcome, dict):
                document.setdefault("entry", []).extend(outcome.get("entry") or [])
            if _is_bundle(outcome):
                self.pages += 1
            next_url = None
            if page < step.follow_next_pages and _is_bundle(outcome):
                link = _next_link(outcome)
                if link is not None:
                    try:
                        next_url = self._same_origin(str(httpx.URL(current_url).join(link)))
                    except httpx.InvalidURL:
                        next_url = None
                    if next_url is None:
                        return StepFailure(
                            ErrorType.INVALID_RESPONSE, f"{self.what}: the Bundle's next link is malformed or leaves the target"
                        )
            page += 1
        return self._check(document)

    def _same_origin(self, url: str) -> str | None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return url if (parts.scheme, parts.hostname, port) == self.run.origin else None

    def _send_one(
        self,
        step_span: Span,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
        *,
        request_span: bool,
    ) -> Any:
        """Send one request; the parsed JSON document (or None for no JSON), or a failure."""
        run, step = self.run, self.step
        remaining_s = run.remaining_s()
        if remaining_s <= 0:
            return StepFailure(ErrorType.TIMEOUT, f"{self.what}: the run's timeout of {run.workflow.timeout_s:g} s passed")
        timeout_s = min(run.workflow.step_timeout_s, remaining_s)
        # The timeout bounds the whole exchange, however the server paces its bytes.
        timer = PhaseTimer(timeout_s=timeout_s)
        span: Span | None = None
        if request_span:
            span = run.tracer.start_span(
                f"{step.method} {self.url_template}",
                context=trace.set_span_in_context(step_span),
                kind=SpanKind.CLIENT,
                start_time=run.clock.wall_ns(timer.start_ns),
                attributes={
                    **run.common_attributes(),
                    schema.ATTR_SPAN_TYPE: self.request_span_type,
                    schema.ATTR_STEP: step.name,
                    schema.ATTR_STEP_INDEX: self.index,
                    schema.HTTP_REQUEST_METHOD: step.method,
                    schema.URL_TEMPLATE: self.url_template,
                    schema.SERVER_ADDRESS: run.server_address,
                    schema.SERVER_PORT: run.server_port,
                    **self.query_attribute,
                },
            )
        carrier = dict(headers)
        propagate.inject(carrier, context=trace.set_span_in_context(span or step_span))
        response: httpx.Response | None = None
        failure = _unsendable_header(carrier, self.what)
        if failure is None:
            response, failure = self._exchange(timer, url, params, carrier, body, timeout_s)
        timing = timer.timing()
        self.timings.append(timing)
        document: Any = None
        if response is not None:
            self.http_status = response.status_code
            self.response_bytes += response.num_bytes_downloaded
            failure = classify_status(response.status_code, step.expect_status, self.what)
            if failure is not None and failure.error_type == ErrorType.AUTH:
                run.token_cache.invalidate(run.target_name)
            if failure is None:
                document, failure = self._parse(response)
        if span is not None:
            if response is not None:
                span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, response.status_code)
                span.set_attribute(schema.ATTR_RESPONSE_BYTES, response.num_bytes_downloaded)
            set_phase_attributes(span, [timing])
            if failure is not None:
                span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
                span.set_status(Status(StatusCode.ERROR, failure.message))
            span.end(end_time=run.clock.wall_ns(timing.start_ns) + timing.total_ns)
        return failure if failure is not None else document

    def _exchange(
        self,
        timer: PhaseTimer,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
        timeout_s: float,
    ) -> tuple[httpx.Response | None, StepFailure | None]:
        """The request on the wire: its response (body read), or why there is none."""
        run, step = self.run, self.step
        with timer.active():
            try:
                response = run.client.request(
                    step.method,
                    url,
                    params=params or None,
                    headers=headers,
                    json=body,
                    timeout=timeout_s,
                    extensions={"trace": timer.trace},
                )
            except (httpx.RequestError, ResponseTooLargeError) as exc:
                if isinstance(exc, httpx.TimeoutException) and timeout_s < run.workflow.step_timeout_s:
                    return None, StepFailure(
                        ErrorType.TIMEOUT, f"{self.what}: cut at the run's timeout of {run.workflow.timeout_s:g} s"
                    )
                return None, classify_transport_error(exc, timer.timing().failed_phase, self.what)
            except (httpx.InvalidURL, UnicodeEncodeError) as exc:
                # A value taken from an earlier response cannot go into a URL.
                return None, StepFailure(
                    ErrorType.INVALID_RESPONSE,
                    f"{self.what}: a value from an earlier response cannot be sent ({type(exc).__name__})",
                )
        return response, None

    def _parse(self, response: httpx.Response) -> tuple[Any, StepFailure | None]:
        step = self.step
        content_type = response.headers.get("content-type", "")
        needs_json = bool(step.assertions or step.extract or step.follow_next_pages)
        if not response.content or ("json" not in content_type and not needs_json):
            if needs_json:
                return None, StepFailure(ErrorType.INVALID_RESPONSE, f"{self.what}: the response has no JSON body")
            return None, None
        try:
            return json.loads(response.content), None
        except (ValueError, RecursionError) as exc:
            del exc  # the parser's message may quote the body
            return None, StepFailure(ErrorType.INVALID_RESPONSE, f"{self.what}: the response is not valid JSON")

    # -- checks --------------------------------------------------------------------------------

    def _check(self, document: Any) -> StepFailure | None:
        return self._check_assertions(document) or self._extract(document)

    def _check_assertions(self, document: Any, variables: Mapping[str, Any] | None = None) -> StepFailure | None:
        variables = self.variables if variables is None else variables
        for assertion in self.step.assertions:
            path = JsonPath.parse(assertion.path)
            kind = assertion.kind
            if kind == "exists":
                found = bool(path.find(document))
                if found != assertion.exists:
                    expectation = "should match" if assertion.exists else "should match nothing"
                    return StepFailure(ErrorType.ASSERTION, f"{self.what}: assertion failed: {path} {expectation}")
            elif kind == "equals":
                values = path.find(document)
                if not values or values[0] != render_json(assertion.equals, variables):
                    return StepFailure(
                        ErrorType.ASSERTION,
                        f"{self.what}: assertion failed: {path} does not equal the expected value",
                    )
            else:
                count = path.count(document)
                if assertion.count_gte is not None and count < assertion.count_gte:
                    return StepFailure(
                        ErrorType.ASSERTION,
                        f"{self.what}: assertion failed: {path} selects {count}, expected at least {assertion.count_gte}",
                    )
        return None

    def _extract(self, document: Any) -> StepFailure | None:
        for name, text in self.step.extract.items():
            path = JsonPath.parse(text)
            values = path.find(document)
            if path.has_wildcard:
                self.variables[name] = values
            elif values:
                self.variables[name] = values[0]
            else:
                return StepFailure(ErrorType.ASSERTION, f"{self.what}: extract {name}: {path} matched nothing")
        return None

    # -- span ----------------------------------------------------------------------------------

    def _finish_span(self, span: Span, end_ns: int, failure: StepFailure | None) -> None:
        set_phase_attributes(span, self.timings)
        if self.http_status is not None:
            span.set_attribute(schema.HTTP_RESPONSE_STATUS_CODE, self.http_status)
        span.set_attribute(schema.ATTR_RESPONSE_BYTES, self.response_bytes)
        if self.pages:
            span.set_attribute(schema.ATTR_BUNDLE_PAGES, self.pages)
        if failure is not None:
            span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
            span.set_status(Status(StatusCode.ERROR, failure.message))
        span.end(end_time=end_ns)


class _AuthFailure(Exception):
    def __init__(self, failure: StepFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _unsendable_header(headers: Mapping[str, str], what: str) -> StepFailure | None:
    """The failure of a request whose header values cannot be sent as they are, else None.

    A value with a CR or LF (a token, or a value taken from an earlier response) would be quoted
    whole by the HTTP library's error: the message names the header, never its value.
    """
    for name, value in headers.items():
        if not _SENDABLE_HEADER_VALUE.fullmatch(value):
            if name.lower() == "authorization":
                return StepFailure(ErrorType.AUTH, f"{what}: the credentials cannot be sent in a header")
            return StepFailure(
                ErrorType.INVALID_RESPONSE,
                f"{what}: the value of header {name} (from the configuration or an earlier response) "
                "holds characters a header cannot carry",
            )
    return None


def _query_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_bundle(document: Any) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "Bundle"


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None
