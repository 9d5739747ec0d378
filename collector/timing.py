"""Per-request phase timings from httpx's ``trace`` request extension.

Relies on httpcore 1.0.9's event names (pinned in ``pyproject.toml``), each ``<name>.started``
then ``<name>.complete`` or ``<name>.failed``:

``connection.connect_tcp``, ``connection.start_tls``, ``http11.send_request_headers``,
``http11.send_request_body``, ``http11.receive_response_headers``,
``http11.receive_response_body``.

Phases, all from ``time.perf_counter_ns`` (a failed event ends its phase where it failed):

- ``dns``: name resolution. httpcore resolves inside ``connect_tcp`` (``socket.create_connection``),
  so the probe's transport uses :class:`TimedResolverBackend`, which resolves the host itself,
  times it, and connects to the resolved address. An IP literal is not resolved: ``dns_s`` is 0.
- ``connect``: ``connect_tcp`` minus the DNS time.
- ``tls``: ``start_tls``.
- ``ttfb``: from the first byte of the request written (``send_request_headers.started``) to the
  response headers read (``receive_response_headers.complete``): sending plus the server's wait.
- ``transfer``: from the response headers to the last byte of the body
  (``receive_response_body.complete``).

``total`` is the sum of the phases that occurred. A reused connection has no connect or TLS phase.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = [
    "PhaseTimer",
    "RequestTiming",
    "TimedResolverBackend",
    "build_transport",
    "ssl_context",
]

_NS_PER_S = 1_000_000_000

_active_timer: contextvars.ContextVar[PhaseTimer | None] = contextvars.ContextVar(
    "wardwatch_active_phase_timer", default=None
)


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """The phases of one HTTP request, in nanoseconds.

    Attributes:
        start_ns: ``perf_counter_ns`` when the request began (before connecting, if it connected).
        dns_ns, connect_ns, tls_ns, ttfb_ns, transfer_ns: the phases; 0 when a phase did not occur.
        connected: a new connection was opened for this request.
        failed_phase: the phase that failed (``dns``, ``connect``, ``tls``, ``ttfb``, ``transfer``),
            or None.
    """

    start_ns: int
    dns_ns: int = 0
    connect_ns: int = 0
    tls_ns: int = 0
    ttfb_ns: int = 0
    transfer_ns: int = 0
    connected: bool = False
    failed_phase: str | None = None

    @property
    def total_ns(self) -> int:
        """The sum of the phases that occurred."""
        return self.dns_ns + self.connect_ns + self.tls_ns + self.ttfb_ns + self.transfer_ns

    @property
    def total_s(self) -> float:
        """:attr:`total_ns` in seconds."""
        return self.total_ns / _NS_PER_S

    def seconds(self) -> dict[str, float]:
        """The phases in seconds, keyed ``dns_s``, ``connect_s``, ``tls_s``, ``ttfb_s``,
        ``transfer_s``, ``total_s``."""
        return {
            "dns_s": self.dns_ns / _NS_PER_S,
            "connect_s": self.connect_ns / _NS_PER_S,
            "tls_s": self.tls_ns / _NS_PER_S,
            "ttfb_s": self.ttfb_ns / _NS_PER_S,
            "transfer_s": self.transfer_ns / _NS_PER_S,
            "total_s": self.total_s,
        }


_PHASE_OF_EVENT = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
    "http11.send_request_headers": "ttfb",
    "http11.receive_response_headers": "ttfb",
    "http11.receive_response_body": "transfer",
}


class PhaseTimer:
    """Collects httpcore trace events for one request; pass :meth:`trace` as the ``trace``
    extension and wrap the request in :meth:`active` so the DNS time reaches it.
    """

    def __init__(self) -> None:
        self.start_ns = time.perf_counter_ns()
        self._events: dict[str, int] = {}
        self._dns_ns = 0
        self._dns_failed = False
        self._failed_phase: str | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """The ``trace`` extension callback: records when each event happened."""
        now_ns = time.perf_counter_ns()
        name, _, suffix = event.rpartition(".")
        if suffix == "failed":
            self._events[f"{name}.complete"] = now_ns
            if self._failed_phase is None:
                phase = _PHASE_OF_EVENT.get(name)
                if phase == "connect" and self._dns_failed:
                    phase = "dns"
                self._failed_phase = phase
        elif suffix == "started":
            self._events.setdefault(event, now_ns)
        elif suffix == "complete":
            self._events[event] = now_ns

    def record_dns(self, duration_ns: int, *, failed: bool = False) -> None:
        """Called by :class:`TimedResolverBackend` with the time name resolution took."""
        self._dns_ns += duration_ns
        self._dns_failed = self._dns_failed or failed

    @property
    def dns_failed(self) -> bool:
        """Name resolution failed."""
        return self._dns_failed

    @contextmanager
    def active(self) -> Iterator[PhaseTimer]:
        """Make this timer the one :class:`TimedResolverBackend` reports to, in this context."""
        token = _active_timer.set(self)
        try:
            yield self
        finally:
            _active_timer.reset(token)

    def _span(self, start: str, end: str) -> int:
        begun = self._events.get(start)
        ended = self._events.get(end)
        if begun is None or ended is None or ended < begun:
            return 0
        return ended - begun

    def timing(self) -> RequestTiming:
        """The phases measured so far (call after the response body is read, or after a failure)."""
        connect_total = self._span("connection.connect_tcp.started", "connection.connect_tcp.complete")
        connected = "connection.connect_tcp.started" in self._events
        if connected:
            dns_ns = min(self._dns_ns, connect_total)
            connect_ns = connect_total - dns_ns
        else:
            dns_ns = connect_ns = 0
        headers_done = "http11.receive_response_headers.complete"
        ttfb_ns = self._span("http11.send_request_headers.started", headers_done)
        transfer_ns = self._span(headers_done, "http11.receive_response_body.complete")
        failed_phase = self._failed_phase
        if failed_phase is None and self._dns_failed:
            failed_phase = "dns"
        return RequestTiming(
            start_ns=self.start_ns,
            dns_ns=dns_ns,
            connect_ns=connect_ns,
            tls_ns=self._span("connection.start_tls.started", "connection.start_tls.complete"),
            ttfb_ns=ttfb_ns,
            transfer_ns=transfer_ns,
            connected=connected,
            failed_phase=failed_phase,
        )


class TimedResolverBackend(httpcore.SyncBackend):
    """httpcore's sync network backend, with name resolution done (and timed) separately.

    The resolution time is reported to the :class:`PhaseTimer` active in the calling context.
    IP literals are not resolved. Addresses are tried in the resolver's order, as
    ``socket.create_connection`` does.
    """

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timer = _active_timer.get()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            addresses = self._resolve(host, port, timer)
        else:
            addresses = [host]
        last_error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        if last_error is None:  # pragma: no cover - getaddrinfo never returns an empty list
            raise httpcore.ConnectError(f"no address for {host}")
        raise last_error

    @staticmethod
    def _resolve(host: str, port: int, timer: PhaseTimer | None) -> list[str]:
        started_ns = time.perf_counter_ns()
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            if timer is not None:
                timer.record_dns(time.perf_counter_ns() - started_ns, failed=True)
            raise httpcore.ConnectError(f"name resolution failed for {host}: {exc}") from exc
        if timer is not None:
            timer.record_dns(time.perf_counter_ns() - started_ns)
        seen: list[str] = []
        for _family, _type, _proto, _canonname, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in seen:
                seen.append(address)
        return seen


def ssl_context(
    *,
    verify: bool = True,
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context. Building one loads a CA store (tens of milliseconds, more on a busy
    machine): build it once and share it between clients (it is safe to share between threads).

    Args:
        verify: verify server certificates.
        ca_bundle: PEM file of CA certificates to trust instead of the system store.
        client_cert: PEM client certificate for mutual TLS.
        client_key: its key, when not inside ``client_cert``.
    """
    if verify:
        context = ssl.create_default_context(cafile=ca_bundle)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    return context


def build_transport(
    *,
    verify: bool = True,
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    keep_alive: bool = True,
    context: ssl.SSLContext | None = None,
) -> httpx.HTTPTransport:
    """An httpx transport whose connections report DNS time to the active :class:`PhaseTimer`.

    Args:
        verify: verify server certificates.
        ca_bundle: PEM file of CA certificates to trust instead of the system store.
        client_cert: PEM client certificate for mutual TLS.
        client_key: its key, when not inside ``client_cert``.
        keep_alive: keep idle connections for reuse; False opens a new connection per request.
        context: a prebuilt TLS context (see :func:`ssl_context`); when given, the four TLS
            arguments above are ignored.

    HTTP/1.1 only: the phase events above are httpcore's HTTP/1.1 ones.
    """
    if context is None:
        context = ssl_context(verify=verify, ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key)
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10 if keep_alive else 0)
    transport = httpx.HTTPTransport(verify=context, limits=limits)
    # httpx 0.28 offers no way to hand the pool a network backend: replace the pool it built with
    # an identical one using ours (pinned versions; tests/collector/test_timing.py checks it).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=TimedResolverBackend(),
    )
    return transport
