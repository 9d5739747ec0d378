"""The testbed's outermost ASGI middleware: server span, modelled delay, outages and faults.

For every HTTP request it:

1. finds the route key and URL template (:func:`route_for`) — templates only, never raw ids;
2. starts a SERVER span continuing the W3C ``traceparent`` of the request;
3. computes :func:`~testbed.latency.modelled_delay` for (route key, ``X-Wardwatch-Site``, clock());
4. answers an outage, applies a fault, or calls the app, and holds the response back until the
   modelled delay has passed since the request arrived (so a client measures the model). The
   headers are held until the body is ready too, and both are sent at once: a client reads the
   whole response at the modelled moment, not the headers first and the body after Python's
   next turn. "Arrived" is when the server read the request's bytes, when the server stamps it
   (:data:`RECEIVED_AT_EXTENSION`; :mod:`testbed.server` does), else when the middleware is called;
5. adds ``X-Wardwatch-Modelled-Delay-Ms`` (and ``X-Wardwatch-Fault`` when one fired).

The server span covers the server's part only: it starts half the site's network delay after the
request arrived and ends half of it before the response is sent, as the EPR's own telemetry would
see it (the network is simulated by waiting, but it is not server time).

It must wrap the app outside Starlette's error middleware: the ``reset`` fault needs the server's
own ``send`` to reach the TCP transport (uvicorn's request cycle exposes it as ``transport``).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testbed.data import RESOURCE_TYPES
from testbed.faults import FaultInjector
from testbed.fhir import operation_outcome
from testbed.latency import Delay, modelled_delay
from testbed.scenario import FaultRule, Scenario

__all__ = [
    "ATTR_FAULT",
    "ATTR_MODELLED_DELAY_S",
    "DELAY_HEADER",
    "FAULT_HEADER",
    "RECEIVED_AT_EXTENSION",
    "SITE_HEADER",
    "Route",
    "TestbedMiddleware",
    "route_for",
]

SITE_HEADER = "X-Wardwatch-Site"
DELAY_HEADER = "X-Wardwatch-Modelled-Delay-Ms"
FAULT_HEADER = "X-Wardwatch-Fault"

# Span attribute keys. The testbed imports nothing of ours, so the semantic-convention names are
# spelled here; they are the same strings as store/schema.py (a test checks that).
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_TEMPLATE = "url.template"
ERROR_TYPE = "error.type"
ATTR_MODELLED_DELAY_S = "wardwatch.testbed.modelled_delay_s"
ATTR_FAULT = "wardwatch.testbed.fault"

TRACER_NAME = "testbed"
FHIR_JSON = "application/fhir+json"

_FHIR_PATH = re.compile(r"^/fhir/(?P<type>[A-Za-z]+)(?:/(?P<id>[^/]+))?/?$")
_PROPAGATOR = TraceContextTextMapPropagator()
_STOP_POLL_S = 0.1
# Corking (see TestbedMiddleware._send_corked): hand the response over this long before its
# moment, and only when it is this small (a loopback segment holds about 64 KiB).
_CORK_LEAD_S = 0.020
_CORK_MAX_BYTES = 32 * 1024
# An ASGI scope extension a server may set: {"perf_counter_s": when the request's bytes were read}.
RECEIVED_AT_EXTENSION = "wardwatch.received_at"


@dataclass(frozen=True)
class Route:
    """What the middleware knows of a request's target.

    Attributes:
        key: the route key of the latency model (``"GET /Patient/{id}"``), or None when the
            request is not modelled (admin, unknown paths).
        template: the URL template for telemetry (``"/fhir/Patient/{id}"``), or None when unknown.
    """

    key: str | None
    template: str | None


def route_for(method: str, path: str) -> Route:
    """The route key and URL template of ``method path`` (ids replaced by ``{id}``)."""
    if path == "/auth/token":
        return Route(f"{method} /auth/token", path)
    if path == "/app" or path.startswith("/app/"):  # the web front end: not modelled (static)
        return Route(None, path if path in ("/app", "/app/", "/app/app.js", "/app/app.css") else None)
    if path.startswith("/admin/"):
        return Route(None, path if path in ("/admin/faults", "/admin/delay") else None)
    match = _FHIR_PATH.match(path)
    if match is None:
        return Route(None, None)
    rtype, rid = match["type"], match["id"]
    if rtype == "metadata" and rid is None:
        return Route(f"{method} /metadata", "/fhir/metadata")
    if rtype not in RESOURCE_TYPES:
        return Route(None, None)
    if rid is None:
        return Route(f"{method} /{rtype}", f"/fhir/{rtype}")
    return Route(f"{method} /{rtype}/{{id}}", f"/fhir/{rtype}/{{id}}")


def _json_response_messages(status: int, body: dict[str, Any],
                            extra: dict[str, str] | None = None) -> list[Message]:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", FHIR_JSON.encode()),
               (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    return [{"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": payload, "more_body": False}]


def _socket_of(send: Send) -> Any:
    """The TCP socket under uvicorn's ``send`` (its request cycle's transport), or None."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "get_extra_info"):
        return None
    return transport.get_extra_info("socket")


def _abort_connection(send: Send) -> bool:
    """Reset the client's TCP connection (RST, no response). False when not reachable."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # the abort below still closes the connection, with FIN instead of RST
    transport.abort()
    return True


class TestbedMiddleware:
    """ASGI middleware adding the latency model, faults and server spans (see module docstring).

    Args:
        app: the inner ASGI app (Starlette's own middleware stack).
        scenario: the scenario whose latency model and outages apply.
        faults: the fault injector (shared with the admin endpoint).
        clock: returns the current time (aware); an explicit clock simulates any moment.
        sleep: False answers at once (the modelled delay is still computed and reported).
        tracer: the tracer for server spans.
        stopping: set when the server shuts down: waits (modelled delays, hangs) end early.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, app: ASGIApp, *, scenario: Scenario, faults: FaultInjector,
                 clock: Callable[[], datetime], sleep: bool, tracer: trace.Tracer,
                 stopping: threading.Event | None = None) -> None:
        self.app = app
        self.scenario = scenario
        self.faults = faults
        self.clock = clock
        self.sleep = sleep
        self.tracer = tracer
        self.stopping = stopping if stopping is not None else threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now_s = time.perf_counter()
        arrived_ns = time.time_ns()
        stamp = scope.get("extensions", {}).get(RECEIVED_AT_EXTENSION)
        arrived_s = now_s
        if isinstance(stamp, dict) and isinstance(stamp.get("perf_counter_s"), float):
            arrived_s = min(now_s, stamp["perf_counter_s"])
            arrived_ns -= int((now_s - arrived_s) * 1e9)
        method: str = scope["method"]
        route = route_for(method, scope["path"])
        headers = Headers(scope=scope)
        parent = _PROPAGATOR.extract(carrier=headers)
        site = headers.get(SITE_HEADER) or None
        delay = (modelled_delay(route.key, site, self.clock(), self.scenario)
                 if route.key is not None else None)
        fault = self.faults.pick(route.key, site) if route.key is not None else None

        attributes: dict[str, Any] = {HTTP_REQUEST_METHOD: method}
        if route.template is not None:
            attributes[HTTP_ROUTE] = route.template
            attributes[URL_TEMPLATE] = route.template
        if delay is not None:
            attributes[ATTR_MODELLED_DELAY_S] = delay.total_s
        if fault is not None:
            attributes[ATTR_FAULT] = fault.kind
        name = f"{method} {route.template}" if route.template else method

        # The network delay is simulated by waiting here, but it is not the server's time: half
        # of it passes before the request "reaches" the server and half after the response
        # "leaves", so the server span shows what the EPR's own telemetry would (service time).
        half_network_ns = (int(delay.network_s * 5e8)
                           if delay is not None and self.sleep else 0)
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes,
                                      start_time=arrived_ns + half_network_ns)
        status_seen: list[int] = []
        ended = False
        # A connection that closes after the response would flush corked bytes at once.
        keeps_alive = (scope.get("http_version") != "1.0"
                       and "close" not in headers.get("connection", "").lower())

        def finish(at_ns: int | None = None) -> None:
            """Record the outcome and end the span (once; at ``at_ns``, default now)."""
            nonlocal ended
            if ended:
                return
            ended = True
            if status_seen:
                status = status_seen[0]
                span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
                if status >= 500:
                    span.set_attribute(ERROR_TYPE, str(status))
                    span.set_status(Status(StatusCode.ERROR))
            else:
                span.set_attribute(ERROR_TYPE, "no_response")
                span.set_status(Status(StatusCode.ERROR, "connection closed without a response"))
            ended_ns = time.time_ns() - half_network_ns if at_ns is None else at_ns
            span.end(end_time=max(arrived_ns + half_network_ns, ended_ns))

        held: list[Message] = []  # the response's start, until its first body part is ready

        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                out = MutableHeaders(scope=message)
                if delay is not None:
                    out[DELAY_HEADER] = f"{delay.total_s * 1000.0:.3f}"
                if fault is not None:
                    out[FAULT_HEADER] = fault.kind
                held.append(message)
                return
            if message["type"] == "http.response.body":
                last = not message.get("more_body")
                if held and last and delay is not None and self.sleep and keeps_alive:
                    start = held.pop()
                    release_s = arrived_s + delay.total_s
                    if await self._send_corked(send, [start, message], release_s, finish,
                                               arrived_ns + int(delay.total_s * 1e9)
                                               - half_network_ns):
                        return
                    held.append(start)
                if held:
                    await self._wait_until(arrived_s, delay)
                if last:
                    # End the span before the last byte leaves: once a client holds the whole
                    # response, the server's span is already finished (and exported).
                    finish()
                if held:
                    await send(held.pop())
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False, record_exception=True,
                                set_status_on_exception=True):
                if delay is not None and delay.outage_status is not None:
                    await self._send_all(delayed_send, _json_response_messages(
                        delay.outage_status,
                        operation_outcome("transient",
                                          "the EPR is unavailable (simulated outage)"),
                        {"Retry-After": "60"}))
                elif fault is not None:
                    await self._apply_fault(fault, delay, arrived_s, scope, receive, send,
                                            delayed_send)
                else:
                    await self.app(scope, receive, delayed_send)
        finally:
            finish()

    async def _sleep_until(self, deadline_s: float) -> bool:
        """Sleep until ``deadline_s`` (perf_counter); False if the server began stopping first.

        Wakes at least every 0.1 s to notice a shutdown; each wake re-aims at the deadline, so
        the timer's overshoot does not accumulate. It never spins: a server burning a core while
        it waits takes that core from the client measuring it. Served by :mod:`testbed.server`,
        the loop's timers are precise to microseconds (see ``precise_event_loop``).
        """
        while (remaining_s := deadline_s - time.perf_counter()) > 0:
            if self.stopping.is_set():
                return False
            await asyncio.sleep(min(remaining_s, _STOP_POLL_S))
        return True

    async def _send_corked(self, send: Send, messages: list[Message], release_s: float,
                           finish: Callable[[int], None], release_ns: int) -> bool:
        """Hand a whole response to the kernel before ``release_s``, corked, and uncork it then.

        Python's part of sending (serialising the headers, the writes) takes a few hundred
        microseconds, more on a busy machine; done after the deadline it would make every
        response late by that much. With ``TCP_CORK`` the bytes wait in the kernel and leave
        when the cork is pulled at the modelled moment. Linux holds corked bytes for at most
        200 ms and sends full segments at once, so the response is handed over only 20 ms ahead
        and only when it fits well inside one loopback segment. Returns False (nothing sent)
        when the response cannot be corked: the caller waits and sends as usual.
        """
        start = messages[0]
        length = Headers(raw=start.get("headers", [])).get("content-length")
        sock = _socket_of(send)
        if (sock is None or not hasattr(socket, "TCP_CORK") or length is None
                or not length.isdigit() or int(length) > _CORK_MAX_BYTES):
            return False
        if not await self._sleep_until(release_s - _CORK_LEAD_S):
            return False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        except OSError:
            return False
        try:
            finish(release_ns)
            for message in messages:
                await send(message)
            await self._sleep_until(release_s)
        finally:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            except OSError:
                pass  # the connection is gone; nothing is waiting in it
        return True

    async def _wait_until(self, arrived_s: float, delay: Delay | None) -> None:
        if not self.sleep or delay is None:
            return
        await self._sleep_until(arrived_s + delay.total_s)

    @staticmethod
    async def _send_all(send: Send, messages: list[Message]) -> None:
        for message in messages:
            await send(message)

    async def _apply_fault(self, fault: FaultRule, delay: Delay | None, arrived_s: float,
                           scope: Scope, receive: Receive, send: Send,
                           delayed_send: Send) -> None:
        if fault.kind == "5xx":
            await self._send_all(delayed_send, _json_response_messages(
                fault.status, operation_outcome("exception", "injected server error")))
        elif fault.kind == "401":
            await self._send_all(delayed_send, _json_response_messages(
                401, operation_outcome("login", "the access token was rejected"),
                {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
        elif fault.kind == "hang":
            if not await self._sleep_until(time.perf_counter() + fault.hang_s):
                _abort_connection(send)  # shutting down: drop the hanging request
                await asyncio.sleep(0)
                return
            await self.app(scope, receive, delayed_send)
        elif fault.kind == "reset":
            await self._wait_until(arrived_s, delay)
            if _abort_connection(send):
                # Let the server see the connection is gone before we return without a response.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                return
            raise ConnectionResetError("injected connection reset (transport not reachable)")
        else:  # malformed_json
            captured: list[Message] = []

            async def capture(message: Message) -> None:
                captured.append(message)

            await self.app(scope, receive, capture)
            body = b"".join(m.get("body", b"") for m in captured
                            if m["type"] == "http.response.body")
            start = next(m for m in captured if m["type"] == "http.response.start")
            truncated = body[: max(1, len(body) // 2)]
            start_headers = MutableHeaders(scope=start)
            start_headers["content-length"] = str(len(truncated))
            await delayed_send(start)
            await delayed_send({"type": "http.response.body", "body": truncated,
                                "more_body": False})
