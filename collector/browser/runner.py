"""Run one browser workflow once, at one site, as one trace, in a fresh browser context (or, with
``warm_cache``, in the context kept from the workflow's last run at that site).

The spans have the HTTP runner's shape: a root ``run`` span, a ``step`` span per step, and under
each step the requests its page made (``page_request`` spans, from the browser's network timing,
with URL templates and redacted queries). Long tasks and the largest contentful paint are events
on the step they happened in. The W3C ``traceparent`` of the step (and the target's headers) is
sent with the page's requests to the target's origins, and to no other, so the EPR's server spans
join the run's trace.

A step's duration is the time a clinician waits: from the action (the input event as the page
saw it, or the moment navigation began) until what the step waits for is on the screen, judged in
the page on every animation frame (the frame it is painted in) and stamped with the page's
clock, so the round trips between probe and browser are not counted.

Nothing of the page leaves the browser: conditions and assertions are evaluated in the page and
only a yes or no, and moments, come back; no DOM or text is taken, and no screenshot unless the
workflow asks for one of a failed run (kept in the data directory only). Failures are data
(``timeout`` naming the selector, ``assertion``, ``browser_script``, ``browser_navigation``,
``browser_crash``), never an exception out of the run.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from collector.browser.host import BrowserHost
from collector.browser.urls import page_url
from collector.config import BrowserStepConfig, BrowserWorkflowConfig, SiteConfig, TargetConfig, TestPatientConfig
from collector.errors import ErrorType, StepFailure
from collector.runner import RunResult, StepResult
from collector.secretref import SecretResolutionError, resolve_secret
from collector.spans import STEP_FAILED, STEP_OK, iso_utc
from collector.templating import Template, TemplateError
from store import schema

__all__ = ["run_browser_workflow"]

logger = logging.getLogger(__name__)

SCREENSHOTS_KEPT = 20  # per workflow and site: the newest failures' screenshots
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_INIT_SCRIPT = resources.files("collector.browser").joinpath("page.js").read_text(encoding="utf-8")
# Resolves, on the first animation frame where the condition holds, to that moment (epoch ms).
_WAIT_JS = """({selector, state, text}) => {
  const element = document.querySelector(selector);
  const shown = element !== null && element.checkVisibility() && element.getClientRects().length > 0;
  const met = state === "gone" ? !shown : shown && (text === null || element.textContent.includes(text));
  return met ? performance.timeOrigin + performance.now() : false;
}"""
_TEXT_JS = """({selector, contains}) => {
  const element = document.querySelector(selector);
  return element === null ? null : element.textContent.includes(contains);
}"""
# A document's first paints are reported a frame or two after the frame they happened in: the
# step that loaded it waits up to three frames (200 ms at most, after its end) before taking them.
_TAKE_JS = """async () => {
  const state = window.__wardwatch;
  if (!state) return null;
  if (!state.navigationTaken) {
    const frames = (async () => {
      for (let i = 0; i < 3; i++) await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
    })();
    await Promise.race([frames, new Promise((done) => setTimeout(done, 200))]);
  }
  const taken = {input: state.input, longTasks: state.longTasks.splice(0), lcp: state.lcp.splice(0),
                 navigation: state.takeNavigation()};
  state.input = null;
  return taken;
}"""


@dataclass
class _Outgoing:
    """What the page's requests to the target carry: its headers, the current step's traceparent."""

    headers: Mapping[str, str] = field(default_factory=dict)
    traceparent: str = ""


@dataclass
class _PageRequest:
    step_index: int
    request: Any
    status: int | None = None
    failed: bool = False


@dataclass
class _Page:
    """What the page did, gathered from the browser's events (no content, only facts)."""

    step_index: int = 0
    requests: list[_PageRequest] = field(default_factory=list)
    by_request: dict[int, _PageRequest] = field(default_factory=dict)
    script_errors: list[int] = field(default_factory=list)  # step indexes; never the message
    crashed: bool = False

    def on_request(self, request: Any) -> None:
        item = _PageRequest(self.step_index, request)
        self.requests.append(item)
        self.by_request[id(request)] = item

    def on_response(self, response: Any) -> None:
        item = self.by_request.get(id(response.request))
        if item is not None:
            item.status = response.status

    def on_failed(self, request: Any) -> None:
        item = self.by_request.get(id(request))
        if item is not None:
            item.failed = True

    def on_error(self, _error: Any) -> None:
        self.script_errors.append(self.step_index)

    def on_crash(self, _page: Any) -> None:
        self.crashed = True


def run_browser_workflow(
    workflow: BrowserWorkflowConfig,
    target: TargetConfig,
    site: SiteConfig,
    *,
    tracer: Tracer,
    host: BrowserHost,
    patients: Sequence[TestPatientConfig] = (),
    environ: Mapping[str, str],
    rng: random.Random | None = None,
    slot: datetime | None = None,
    stop: threading.Event | None = None,
    inspect_page: Callable[[Any], None] | None = None,
    screenshots_dir: Path | None = None,
) -> RunResult:
    """Run ``workflow`` once in a fresh context of ``host``'s browser, recording spans with ``tracer``.

    ``screenshots_dir`` (``<data directory>/screenshots``) is where a workflow with
    ``screenshot_on_failure`` keeps the page of a failed run; nothing is written anywhere else.

    ``inspect_page`` (benchmarks and tests only) is called with the Playwright page after the last
    step, on the browser's thread, before the context closes: e.g. to read the page's own
    ``performance`` marks beside the probe's step times. Nothing it reads is recorded.

    Returns:
        The run's result; whatever the page does, nothing is raised.
    """
    rng = random.Random() if rng is None else rng
    wall0_ns = time.time_ns()
    start = datetime.fromtimestamp(wall0_ns / _NS_PER_S, tz=UTC)
    attributes: dict[str, Any] = {
        schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN,
        schema.ATTR_WORKFLOW: workflow.name,
        schema.ATTR_SITE: site.name,
        schema.USER_AGENT_SYNTHETIC_TYPE: "test",
    }
    if slot is not None:
        attributes[schema.ATTR_SLOT] = iso_utc(slot)
        attributes[schema.ATTR_SLOT_OFFSET_S] = (start - slot).total_seconds()
    root = tracer.start_span(workflow.name, kind=SpanKind.INTERNAL, start_time=wall0_ns, attributes=attributes)
    variables: dict[str, Any] = {
        "site": site.name, "site_timezone": site.timezone, "workflow": workflow.name,
        "run_id": f"{rng.getrandbits(64):016x}", "now_utc": iso_utc(start),
    }
    if patients:
        patient = rng.choice(list(patients))
        variables.update(patient_identifier=patient.identifier, patient_system=patient.system, patient_mrn=patient.value)
    run = _BrowserRun(workflow, target, site, tracer, root, variables, environ, stop, wall0_ns, host,
                      inspect_page=inspect_page, screenshots_dir=screenshots_dir)
    try:
        steps, failure, interrupted, timed_out = host.call(run.drive)
    except Exception as exc:  # noqa: BLE001 - the run's boundary: the browser failing is a failed run
        logger.error("%s@%s: the browser failed (%s); the run is recorded as failed", workflow.name, site.name, type(exc).__name__)
        steps, failure, interrupted, timed_out = run.results, StepFailure(
            ErrorType.BROWSER_CRASH, f"the browser failed during the run ({type(exc).__name__})"), False, False
    return run.finish(start, slot, steps, failure, interrupted=interrupted, timed_out=timed_out)


class _BrowserRun:
    def __init__(self, workflow: BrowserWorkflowConfig, target: TargetConfig, site: SiteConfig, tracer: Tracer,
                 root: Span, variables: dict[str, Any], environ: Mapping[str, str], stop: threading.Event | None,
                 wall0_ns: int, host: BrowserHost, *, inspect_page: Callable[[Any], None] | None = None,
                 screenshots_dir: Path | None = None) -> None:
        self.workflow, self.target, self.site, self.tracer = workflow, target, site, tracer
        self.root, self.variables, self.environ, self.stop = root, variables, environ, stop
        self.wall0_ns = wall0_ns
        self.host = host
        self.inspect_page = inspect_page
        self.screenshots_dir = screenshots_dir
        self.deadline_s = time.monotonic() + workflow.timeout_s
        self.results: list[StepResult] = []
        self.step_spans: dict[int, Span] = {}
        self.outgoing = _Outgoing()

    def common(self) -> dict[str, Any]:
        return {schema.ATTR_WORKFLOW: self.workflow.name, schema.ATTR_SITE: self.site.name,
                schema.USER_AGENT_SYNTHETIC_TYPE: "test"}

    # -- on the browser's thread -----------------------------------------------------------------

    def drive(self, browser: Any) -> tuple[list[StepResult], StepFailure | None, bool, bool]:
        try:
            headers = {key: resolve_secret(value, self.environ) if value.startswith("${") else
                       Template.parse(value).render(self.variables) for key, value in self.target.headers.items()}
        except (SecretResolutionError, TemplateError) as exc:
            return [], StepFailure(ErrorType.AUTH, f"target {self.workflow.target} headers: {exc}"), False, False
        warm = self.workflow.warm_cache
        key = f"{self.workflow.name}@{self.site.name}"
        if warm:  # one context per workflow and site, kept by the host until its browser goes
            context = self.host.kept(key, lambda: self._new_context(browser))
        else:
            context = self._new_context(browser)
        self.outgoing.headers = headers
        page = None
        page_state = _Page()
        try:
            page = context.new_page()
            self._send_to_the_target(context, page)
            page.on("request", page_state.on_request)
            page.on("response", page_state.on_response)
            page.on("requestfailed", page_state.on_failed)
            page.on("pageerror", page_state.on_error)
            page.on("crash", page_state.on_crash)
            outcome = self._steps(page, page_state)
            if outcome[1] is not None and self.workflow.screenshot_on_failure:
                self._screenshot(page)
            if self.inspect_page is not None:
                self.inspect_page(page)
            try:
                page.evaluate("0")  # let the last network events arrive before they are read
            except Exception:  # noqa: BLE001 - a crashed page has nothing more to say
                pass
            self._record_requests(page_state)
            return outcome
        except BaseException:
            if warm:  # a context that failed the run is not kept for the next one
                self.host.forget(key)
                warm = False
            raise
        finally:
            if not warm:
                context.close()
            elif page is not None:
                page.close()

    def _new_context(self, browser: Any) -> Any:
        context = browser.new_context(service_workers="block")
        try:
            context.add_init_script(script=_INIT_SCRIPT)
        except BaseException:
            context.close()
            raise
        return context

    def _send_to_the_target(self, context: Any, page: Any) -> None:
        """The page's requests to the target's origins (its ``base_url``'s and the workflow's
        ``url``'s), and to no other, carry the target's headers and the current step's
        ``traceparent``: a third party (a font, an analytics script) learns neither the EPR's
        headers nor the run's trace. The browser pauses only those requests (DevTools' Fetch
        domain, at the request stage); requests to other origins and what the HTTP cache answers
        are not touched (Playwright's own routing would turn the cache off, and a warm cache with
        it)."""
        session = context.new_cdp_session(page)
        outgoing = self.outgoing

        def paused(event: Mapping[str, Any]) -> None:
            headers = {**event["request"]["headers"], **outgoing.headers, "traceparent": outgoing.traceparent}
            try:
                session.send("Fetch.continueRequest", {
                    "requestId": event["requestId"],
                    "headers": [{"name": name, "value": str(value)} for name, value in headers.items()]})
            except Exception:  # noqa: BLE001 - the page went (closed, crashed): nothing to continue
                pass

        session.on("Fetch.requestPaused", paused)
        origins = sorted({_origin(self.target.base_url), _origin(self.workflow.url)})
        session.send("Fetch.enable", {"patterns": [{"urlPattern": origin + "/*", "requestStage": "Request"}
                                                   for origin in origins]})

    def _screenshot(self, page: Any) -> None:
        """The failed page as a PNG under the data directory only
        (``screenshots/<workflow>/<site>/``, owner-only), the newest :data:`SCREENSHOTS_KEPT` per
        workflow and site; its file name (time and trace id: nothing of the page) on the run's span."""
        if self.screenshots_dir is None:
            logger.warning("%s@%s: no data directory for the screenshot on failure; none taken",
                           self.workflow.name, self.site.name)
            return
        try:
            png = page.screenshot(type="png", timeout=10_000)
        except Exception as exc:  # noqa: BLE001 - a crashed page cannot be photographed
            logger.warning("%s@%s: no screenshot of the failed page (%s)", self.workflow.name, self.site.name,
                           type(exc).__name__)
            return
        self.screenshots_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory = self.screenshots_dir / self.workflow.name / self.site.name
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{self.root.get_span_context().trace_id:032x}.png"
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(png)
        for old in sorted(directory.glob("*.png"))[:-SCREENSHOTS_KEPT]:
            old.unlink(missing_ok=True)
        self.root.set_attribute(schema.ATTR_BROWSER_SCREENSHOT, f"{self.workflow.name}/{self.site.name}/{name}")

    def _steps(self, page: Any, page_state: _Page) -> tuple[list[StepResult], StepFailure | None, bool, bool]:
        from playwright.sync_api import Error as PlaywrightError

        for index, step in enumerate(self.workflow.steps):
            if self.stop is not None and self.stop.is_set():
                return self.results, None, True, False
            remaining_s = self.deadline_s - time.monotonic()
            if remaining_s <= 0:
                return self.results, None, False, True
            page_state.step_index = index
            span = self.tracer.start_span(step.name, context=trace.set_span_in_context(self.root), kind=SpanKind.CLIENT,
                                          start_time=time.time_ns(), attributes={
                                              **self.common(), schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP,
                                              schema.ATTR_STEP: step.name, schema.ATTR_STEP_INDEX: index,
                                              schema.ATTR_BROWSER_ACTION: step.action or "wait"})
            self.step_spans[index] = span
            if step.wait_for is not None:
                span.set_attribute(schema.ATTR_BROWSER_SELECTOR, step.wait_for.selector)
            traceparent = f"00-{span.get_span_context().trace_id:032x}-{span.get_span_context().span_id:016x}-01"
            timeout_ms = max(1.0, min(step.timeout_s, remaining_s) * 1000.0)
            began_ns = time.time_ns()
            failure: StepFailure | None = None
            end_ns: int | None = None
            self.outgoing.traceparent = traceparent
            try:
                failure = self._act(page, step, timeout_ms)
                if failure is None and step.wait_for is not None:
                    end_ns = self._wait(page, step, began_ns, timeout_ms)
                if failure is None and step.assert_text is not None:
                    failure = self._assert_text(page, step)
            except _StepTimeout as exc:
                failure = StepFailure(ErrorType.TIMEOUT, str(exc))
            except PlaywrightError as exc:
                failure = self._classify(exc, step, page_state)
            if end_ns is None:
                end_ns = time.time_ns()
            taken = self._take(page)  # after the step's end: the time it takes is not the clinician's
            start_ns = began_ns
            if taken is not None and taken.get("input") is not None and step.action in ("click", "fill", "press"):
                start_ns = max(began_ns, int(taken["input"] * _NS_PER_MS))  # the input event as the page saw it
            if page_state.crashed:
                failure = StepFailure(ErrorType.BROWSER_CRASH, f"step {step.name}: the page crashed")
            elif index in page_state.script_errors:
                # The page's own error is the cause of whatever else went wrong; its message may
                # quote the page's data, so it is not kept.
                failure = StepFailure(ErrorType.BROWSER_SCRIPT, f"step {step.name}: the page raised a script error")
            end_ns = max(end_ns, start_ns)
            self._page_events(span, taken, end_ns if step.wait_for is not None else None)
            if failure is not None:
                span.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
                span.set_status(Status(StatusCode.ERROR, failure.message))
            # The span began before the action so the page's requests could carry its traceparent;
            # its time is the clinician's, from the input event on, as the step's result says. The
            # SDK has no public way to move a started span's start, hence its attribute.
            span._start_time = start_ns  # type: ignore[attr-defined]
            span.end(end_time=end_ns)
            self.results.append(StepResult(step.name, index, STEP_OK if failure is None else STEP_FAILED,
                                           error_type=None if failure is None else failure.error_type.value,
                                           message=None if failure is None else failure.message,
                                           duration_s=(end_ns - start_ns) / _NS_PER_S))
            if failure is not None:
                return self.results, failure, False, False
            think_s = self.workflow.think_time_s if step.think_time_s is None else step.think_time_s
            if think_s > 0 and index < len(self.workflow.steps) - 1:
                wait_s = min(think_s, max(self.deadline_s - time.monotonic(), 0.0))
                if self.stop is not None:
                    self.stop.wait(wait_s)
                else:
                    time.sleep(wait_s)
        return self.results, None, False, False

    def _render(self, text: str) -> str:
        return Template.parse(text).render(self.variables)

    def _act(self, page: Any, step: BrowserStepConfig, timeout_ms: float) -> StepFailure | None:
        if step.goto is not None:
            url = urljoin(self.workflow.url, self._render(step.goto))
            # With something to wait for, the step's end is that; otherwise the page's load event.
            response = page.goto(url, wait_until="commit" if step.wait_for is not None else "load", timeout=timeout_ms)
            if response is not None and response.status >= 400:
                what = page_url(url)
                return StepFailure(ErrorType.BROWSER_NAVIGATION,
                                   f"step {step.name}: {what.template if what else 'the page'} answered {response.status}")
        elif step.fill is not None:
            value = self.fill_value(step)
            page.fill(step.fill.selector, value, timeout=timeout_ms)
        elif step.click is not None:
            page.click(step.click, timeout=timeout_ms)
        elif step.press is not None:
            page.press(step.press.selector, step.press.key, timeout=timeout_ms)
        return None

    def fill_value(self, step: BrowserStepConfig) -> str:
        assert step.fill is not None
        value = step.fill.value
        return resolve_secret(value, self.environ) if value.startswith("${") else self._render(value)

    def _wait(self, page: Any, step: BrowserStepConfig, began_ns: int, timeout_ms: float) -> int:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        assert step.wait_for is not None
        wait = step.wait_for
        left_ms = max(1.0, timeout_ms - (time.time_ns() - began_ns) / _NS_PER_MS)
        try:
            handle = page.wait_for_function(_WAIT_JS, arg={
                "selector": wait.selector, "state": wait.state,
                "text": None if wait.text is None else self._render(wait.text)}, polling="raf", timeout=left_ms)
        except PlaywrightTimeout as exc:
            seen = "go" if wait.state == "gone" else "become visible"
            raise _StepTimeout(f"step {step.name}: {wait.selector} did not {seen} within {step.timeout_s:g} s") from exc
        return int(handle.json_value() * _NS_PER_MS)

    def _assert_text(self, page: Any, step: BrowserStepConfig) -> StepFailure | None:
        assert step.assert_text is not None
        check = step.assert_text
        found = page.evaluate(_TEXT_JS, {"selector": check.selector, "contains": self._render(check.contains)})
        if found is None:
            return StepFailure(ErrorType.ASSERTION, f"step {step.name}: assertion failed: {check.selector} is not on the page")
        if not found:
            return StepFailure(ErrorType.ASSERTION, f"step {step.name}: assertion failed: {check.selector} does not hold the expected text")
        return None

    def _classify(self, exc: Exception, step: BrowserStepConfig, page_state: _Page) -> StepFailure:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        if isinstance(exc, PlaywrightTimeout):
            what = step.click or (step.fill.selector if step.fill else None) or (step.press.selector if step.press else None)
            if step.goto is not None:
                return StepFailure(ErrorType.TIMEOUT, f"step {step.name}: the page did not load within {step.timeout_s:g} s")
            return StepFailure(ErrorType.TIMEOUT, f"step {step.name}: {what} was not ready for {step.action} within {step.timeout_s:g} s")
        if page_state.crashed or "crash" in str(exc).lower() or "closed" in str(exc).lower():
            return StepFailure(ErrorType.BROWSER_CRASH, f"step {step.name}: the page or browser closed")
        if step.goto is not None:
            # Playwright names the network error (net::ERR_CONNECTION_REFUSED); the URL is not kept.
            reason = next((word for word in str(exc).split() if word.startswith("net::")), "the navigation failed")
            return StepFailure(ErrorType.BROWSER_NAVIGATION, f"step {step.name}: {reason}")
        return StepFailure(ErrorType.BROWSER_SCRIPT, f"step {step.name}: the browser refused {step.action} ({type(exc).__name__})")

    @staticmethod
    def _take(page: Any) -> dict[str, Any] | None:
        try:
            return page.evaluate(_TAKE_JS)
        except Exception:  # noqa: BLE001 - a crashed or navigating page has nothing to give
            return None

    @staticmethod
    def _page_events(span: Span, taken: Mapping[str, Any] | None, visible_ns: int | None) -> None:
        if taken is not None:
            tasks = taken.get("longTasks") or []
            for started_ms, duration_ms in tasks:
                span.add_event(schema.EVENT_LONG_TASK, {schema.ATTR_EVENT_DURATION_S: duration_ms / 1000.0},
                               timestamp=int(started_ms * _NS_PER_MS))
            span.set_attribute(schema.ATTR_LONG_TASKS, len(tasks))
            span.set_attribute(schema.ATTR_LONG_TASKS_S, sum(duration for _start, duration in tasks) / 1000.0)
            for painted_ms in taken.get("lcp") or []:
                span.add_event(schema.EVENT_LCP, timestamp=int(painted_ms * _NS_PER_MS))
            navigation = taken.get("navigation")
            if navigation:
                _navigation_timing(span, navigation, taken.get("lcp") or [])
        if visible_ns is not None:
            span.add_event(schema.EVENT_VISIBLE, timestamp=visible_ns)

    def _record_requests(self, page_state: _Page) -> None:
        for item in page_state.requests:
            parent = self.step_spans.get(item.step_index)
            where = page_url(item.request.url)
            if parent is None or where is None:
                continue
            timing = item.request.timing
            start_ms = timing.get("startTime", -1)
            if start_ms is None or start_ms <= 0:
                continue
            end_ms = timing.get("responseEnd", -1)
            attributes: dict[str, Any] = {
                **self.common(), schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_PAGE_REQUEST,
                schema.ATTR_SOURCE: schema.SOURCE_PAGE,
                schema.ATTR_STEP: self.workflow.steps[item.step_index].name, schema.ATTR_STEP_INDEX: item.step_index,
                schema.HTTP_REQUEST_METHOD: item.request.method, schema.URL_TEMPLATE: where.template,
                schema.SERVER_ADDRESS: where.server_address, schema.SERVER_PORT: where.server_port,
            }
            if where.query is not None:
                attributes[schema.URL_QUERY] = where.query
            for key, first, last in ((schema.ATTR_DNS_S, "domainLookupStart", "domainLookupEnd"),
                                     (schema.ATTR_CONNECT_S, "connectStart", "connectEnd"),
                                     (schema.ATTR_TTFB_S, "requestStart", "responseStart"),
                                     (schema.ATTR_TRANSFER_S, "responseStart", "responseEnd")):
                if timing.get(first, -1) >= 0 and timing.get(last, -1) >= timing.get(first, -1):
                    attributes[key] = (timing[last] - timing[first]) / 1000.0
            if item.status is not None:
                attributes[schema.HTTP_RESPONSE_STATUS_CODE] = item.status
            span = self.tracer.start_span(f"{item.request.method} {where.template}",
                                          context=trace.set_span_in_context(parent), kind=SpanKind.CLIENT,
                                          start_time=int(start_ms * _NS_PER_MS), attributes=attributes)
            error = None
            if item.failed or end_ms is None or end_ms < 0:
                error = "the request did not complete"
                span.set_attribute(schema.ERROR_TYPE, ErrorType.CONNECT.value if item.status is None else ErrorType.INVALID_RESPONSE.value)
            elif item.status is not None and item.status >= 400:
                error = f"the page's request answered {item.status}"
                span.set_attribute(schema.ERROR_TYPE, (ErrorType.HTTP_5XX if item.status >= 500 else ErrorType.HTTP_4XX).value)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=int((start_ms + max(end_ms or 0, 0)) * _NS_PER_MS))

    # -- on the caller's thread ----------------------------------------------------------------

    def finish(self, start: datetime, slot: datetime | None, steps: list[StepResult], failure: StepFailure | None,
               *, interrupted: bool, timed_out: bool) -> RunResult:
        waiting_s = sum(step.duration_s for step in steps)
        if failure is not None:
            status = schema.RUN_TIMED_OUT if failure.error_type == ErrorType.TIMEOUT else schema.RUN_FAILED
        elif timed_out:
            status = schema.RUN_TIMED_OUT
            failure = StepFailure(ErrorType.TIMEOUT, f"the run did not finish within its timeout of {self.workflow.timeout_s:g} s")
        elif interrupted:
            status = schema.RUN_INTERRUPTED
        else:
            status = schema.RUN_OK
        self.root.set_attribute(schema.ATTR_RUN_STATUS, status)
        self.root.set_attribute(schema.ATTR_RUN_WAITING_S, waiting_s)
        if failure is not None:
            self.root.set_attribute(schema.ERROR_TYPE, failure.error_type.value)
            self.root.set_status(Status(StatusCode.ERROR, failure.message))
        elif interrupted:
            self.root.set_status(Status(StatusCode.ERROR, "the probe was stopped during the run"))
        end_ns = time.time_ns()
        self.root.end(end_time=end_ns)
        return RunResult(workflow=self.workflow.name, site=self.site.name, status=status,
                         error_type=None if failure is None else failure.error_type.value,
                         message=None if failure is None else failure.message, waiting_s=waiting_s,
                         wall_s=(end_ns - self.wall0_ns) / _NS_PER_S, start=start, slot=slot,
                         trace_id=format(self.root.get_span_context().trace_id, "032x"), steps=tuple(steps))


def _navigation_timing(span: Span, navigation: Mapping[str, Any], lcp_ms: Sequence[float]) -> None:
    """The document's navigation milestones on the step during which it loaded (seconds from the
    navigation's start; a milestone the page had not reached when the step ended is left out)."""
    span.set_attribute(schema.ATTR_NAV_TYPE, str(navigation.get("type") or "navigate"))
    for key, attribute in (("responseStart", schema.ATTR_NAV_RESPONSE_START_S),
                           ("domContentLoaded", schema.ATTR_NAV_DOM_CONTENT_LOADED_S),
                           ("load", schema.ATTR_NAV_LOAD_S), ("fcp", schema.ATTR_FCP_S)):
        value_ms = navigation.get(key) or 0
        if value_ms > 0:
            span.set_attribute(attribute, value_ms / 1000.0)
    origin_ms = navigation.get("origin")
    if lcp_ms and origin_ms:
        span.set_attribute(schema.ATTR_LCP_S, (lcp_ms[-1] - origin_ms) / 1000.0)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as the browser writes it (no default port)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


class _StepTimeout(Exception):
    """What a step waited for did not come in time (the message names the selector)."""
