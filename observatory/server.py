"""The observatory's HTTP side: OTLP/HTTP ``POST /v1/traces`` and ``/v1/metrics``, served by uvicorn.

Metrics are authenticated and checked as spans are, counted in the sender's health, and not
stored: the answer's ``partial_success`` says how many points were not kept, and why.

Each request is checked in the order that costs the sender least to learn: its token (401), the
writer's backlog (429 with Retry-After), the body's size as sent and as inflated (413), the body
itself (400, with the reason), what the token may write (403); then its spans are queued for the
one writer and the answer waits until they are in a renamed, fsynced segment (200). A store that
cannot be written is 503 with Retry-After: the sender keeps the batch and sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from observatory.auth import Forbidden, Principal, Tokens, Unauthorized
from observatory.decode import JSON, PROTOBUF, BadRequest, TooLarge, decode_metrics, decode_traces, inflate
from observatory.health import HealthLog
from observatory.ingest import Busy, Ingest, Stored
from store import schema

__all__ = ["ObservatoryServer", "ObservatoryServerError", "create_app"]

_log = logging.getLogger(__name__)

class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def create_app(tokens: Tokens, ingest: Ingest, *, max_body_bytes: int, health: HealthLog | None = None) -> Starlette:
    """The receiver as an ASGI app (what :class:`ObservatoryServer` serves); ``health`` (default:
    beside the ingest's store) keeps what was last heard from each sender."""
    health = HealthLog(ingest.store_path) if health is None else health

    def sender(principal: Principal) -> str:
        return principal.site or f"service:{principal.service}"

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise _Refused(413, f"body of {declared} bytes is over the limit of {max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _Refused(413, f"body is over the limit of {max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def content_type(request: Request) -> str:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in (PROTOBUF, JSON):
            raise _Refused(415, f"Content-Type must be {PROTOBUF} or {JSON}")
        return kind

    def decoded(body: bytes, encoding: str, kind: str, decode: Callable[[bytes, str], Any]) -> Any:
        return decode(inflate(body, encoding, max_body_bytes), kind)

    async def receive(request: Request, decode: Callable[[bytes, str], Any]) -> tuple[Principal, str, Any]:
        principal = tokens.principal(request.headers.get("authorization"))
        kind = content_type(request)
        if ingest.pending_spans >= ingest.max_pending_spans:
            raise Busy(ingest.pending_spans, ingest.retry_after_s)
        body = await body_of(request)
        return principal, kind, await run_in_threadpool(
            decoded, body, request.headers.get("content-encoding", ""), kind, decode)

    async def traces(request: Request) -> Response:
        kind = JSON
        try:
            principal, kind, spans = await receive(request, decode_traces)
            principal.check(spans.sites, spans.services, spans.site_less)
            if principal.site is None:
                spans.stamp_source(principal.target)
            table = await run_in_threadpool(spans.table)
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[Stored | BaseException] = loop.create_future()
            ingest.submit(table, spans.keys, lambda outcome: loop.call_soon_threadsafe(_settle, answer, outcome))
            outcome = await answer
            if isinstance(outcome, BaseException):
                raise _Refused(503, f"the store could not be written ({type(outcome).__name__}); retry",
                               {"Retry-After": str(ingest.retry_after_s)})
            resources = spans.columns[schema.RESOURCE_ATTRIBUTES]
            resource = dict(resources[-1]) if resources else None
            health.heard(sender(principal), request.headers, spans=outcome.spans, duplicates=outcome.duplicates,
                         resource=resource)
            return _ok(kind, ExportTraceServiceResponse())
        except Exception as exc:  # noqa: BLE001 - every refusal has its status; anything else is 500
            return _refusal(exc, kind)

    async def metrics(request: Request) -> Response:
        kind = JSON
        try:
            principal, kind, (sites, site_less, points) = await receive(request, decode_metrics)
            principal.check(sites, set() if principal.site else {principal.service or ""}, site_less)
            health.heard(sender(principal), request.headers, metric_points=points)
            # The store keeps spans (every figure is computed from them): the points are checked,
            # counted in the sender's health and not kept, and OTLP's partial success says so.
            answer = ExportMetricsServiceResponse()
            if points:
                answer.partial_success.rejected_data_points = points
                answer.partial_success.error_message = METRICS_NOT_KEPT
            return _ok(kind, answer)
        except Exception as exc:  # noqa: BLE001
            return _refusal(exc, kind)

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]),
                            Route("/v1/metrics", metrics, methods=["POST"])])
    app.state.health = health
    return app


def _settle(answer: asyncio.Future[Any], outcome: Stored | BaseException) -> None:
    if not answer.done():
        answer.set_result(outcome)


METRICS_NOT_KEPT = ("this observatory keeps spans only; metric points are checked and counted, not stored "
                    "(its figures are computed from the spans)")


def _ok(kind: str, message: Any) -> Response:
    if kind == PROTOBUF:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return JSONResponse(json_format.MessageToDict(message))


def _refusal(exc: Exception, kind: str) -> Response:
    if isinstance(exc, _Refused):
        status, headers = exc.status, exc.headers
    elif isinstance(exc, Unauthorized):
        status, headers = 401, {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, Forbidden):
        status, headers = 403, {}
    elif isinstance(exc, TooLarge):
        status, headers = 413, {}
    elif isinstance(exc, BadRequest):
        status, headers = 400, {}
    elif isinstance(exc, Busy):
        status, headers = 429, {"Retry-After": str(exc.retry_after_s)}
    else:
        _log.exception("unexpected failure receiving spans")
        status, headers = 500, {}
        exc = RuntimeError(f"unexpected {type(exc).__name__}")
    message = str(exc)
    if kind == JSON:  # google.rpc.Status as OTLP/JSON writes it
        return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)
    return PlainTextResponse(message, status_code=status, headers=headers)


class ObservatoryServerError(RuntimeError):
    """The receiver could not start (address taken, TLS files unreadable) or stop."""


class ObservatoryServer:
    """The receiver served by uvicorn in a background thread; a context manager.

    ``port=0`` picks a free port (:attr:`port` once started). With ``tls`` (certificate, key
    files) it serves HTTPS.
    """

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 4318,
                 tls: tuple[Path, Path] | None = None, log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.tls = tls
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> ObservatoryServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise ObservatoryServerError(f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror}") from exc
        sock.listen(128)
        self.port = sock.getsockname()[1]
        tls = {"ssl_certfile": str(self.tls[0]), "ssl_keyfile": str(self.tls[1])} if self.tls else {}
        config = uvicorn.Config(self.app, log_level=self._log_level, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, **tls)
        try:
            config.load()  # reads the TLS files now: a bad one is a clear error, not a dead thread
        except (OSError, ValueError) as exc:
            sock.close()
            raise ObservatoryServerError(f"cannot serve TLS with {self.tls}: {exc}") from exc
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name=f"observatory-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ObservatoryServerError("the observatory's receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> ObservatoryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
