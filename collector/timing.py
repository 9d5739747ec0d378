"""Per-request phase timings: httpx's ``trace`` request extension, plus the bytes on the wire.

Relies on httpcore 1.0.9's event names (pinned in ``pyproject.toml``), each ``<name>.started``
then ``<name>.complete`` or ``<name>.failed``:

``connection.connect_tcp``, ``connection.start_tls``, ``http11.send_request_headers``,
``http11.send_request_body``, ``http11.receive_response_headers``,
``http11.receive_response_body``.

The probe's transport (:func:`build_transport`) also wraps each connection's network stream
(:class:`TimedResolverBackend`), so the :class:`PhaseTimer` knows when the request's first byte
was written and when response bytes were read: the moments on the wire, as curl reports them,
not when Python's HTTP stack had finished building the request or parsing the response. A
clinician's wait is the network's and the EPR's; the probe's own parsing is the instrument's.

Phases, all from ``time.perf_counter_ns`` (a failed event ends its phase where it failed):

- ``dns``: name resolution. httpcore resolves inside ``connect_tcp`` (``socket.create_connection``),
  so the probe's transport uses :class:`TimedResolverBackend`, which resolves the host itself
  (within the connect timeout), times it, and connects to the resolved address. An IP literal is
  not resolved: ``dns_s`` is 0.
- ``connect``: opening the TCP connection (the socket's creation and ``connect``, timed by
  :class:`TimedResolverBackend`); with another transport, ``connect_tcp`` minus the DNS time.
- ``tls``: ``start_tls``.
- ``ttfb``: from the request's first byte written to the response's first byte read (request
  sent -> first byte). On Linux a read is dated by the kernel's receive timestamp (see
  :class:`_TimedStream`). Without a first byte (a failure, or a transport that is not the probe's),
  from ``send_request_headers.started`` to the end (or failure) of
  ``receive_response_headers``.
- ``transfer``: from the response's first byte to its last byte read (0 when the whole response
  came in one read); when reading the body failed, to the failure.

``total`` is the sum of the phases that occurred. A reused connection has no connect or TLS phase.
"""

from __future__ import annotations

import contextvars
import ipaddress
import platform
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = [
    "DnsTimeoutError",
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

    Args:
        timeout_s: how long the whole exchange (connecting, sending, every read of the headers
            and body) may take, from its first network operation; None: only httpx's
            per-operation timeouts. httpx's timeouts bound each read, so a server that drips a
            byte (or a ``100 Continue``) within each read timeout would hold the request for
            ever; the probe's streams cut every operation at this deadline instead (as a read,
            write or connect timeout).
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        self.start_ns = time.perf_counter_ns()
        self._timeout_ns = None if timeout_s is None else int(timeout_s * _NS_PER_S)
        # Set by the first network operation, where the phases begin (not when Python began
        # building the request): a step cut by its timeout measures the timeout.
        self.deadline_ns: int | None = None
        self._events: dict[str, int] = {}
        self._dns_ns = 0
        self._dns_failed = False
        self._failed_phase: str | None = None
        self._connect_ns: int | None = None
        self._first_write_ns: int | None = None
        self._first_read_ns: int | None = None
        self._last_read_ns: int | None = None

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

    def record_connect(self, duration_ns: int) -> None:
        """Called by :class:`TimedResolverBackend` with the time the TCP connection took to open
        (creating the socket and ``connect``, every address tried, without httpcore around it)."""
        self._connect_ns = duration_ns

    def record_write(self, now_ns: int) -> None:
        """Called by the probe's network stream just before request bytes are written."""
        if self._first_write_ns is None:
            self._first_write_ns = now_ns

    def record_read(self, now_ns: int) -> None:
        """Called by the probe's network stream when a read returned response bytes."""
        if self._first_read_ns is None:
            self._first_read_ns = now_ns
        self._last_read_ns = now_ns

    def bounded_timeout(self, timeout_s: float | None) -> float | None:
        """``timeout_s`` shortened to what is left before the deadline (0 once it has passed)."""
        if self._timeout_ns is None:
            return timeout_s
        if self.deadline_ns is None:
            self.deadline_ns = time.perf_counter_ns() + self._timeout_ns
        left_s = max(0.0, (self.deadline_ns - time.perf_counter_ns()) / _NS_PER_S)
        return left_s if timeout_s is None else min(timeout_s, left_s)

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
        failed_phase = self._failed_phase
        connect_total = self._span("connection.connect_tcp.started", "connection.connect_tcp.complete")
        connected = "connection.connect_tcp.started" in self._events
        if connected:
            dns_ns = min(self._dns_ns, connect_total)
            connect_ns = connect_total - dns_ns
            if self._connect_ns is not None:
                connect_ns = min(connect_ns, self._connect_ns)
        else:
            dns_ns = connect_ns = 0
        sent_ns = self._first_write_ns
        if sent_ns is None:
            sent_ns = self._events.get("http11.send_request_headers.started")
        first_byte_ns, last_byte_ns = self._first_read_ns, self._last_read_ns
        if sent_ns is not None and first_byte_ns is not None and last_byte_ns is not None and first_byte_ns >= sent_ns:
            ttfb_ns = first_byte_ns - sent_ns
            if failed_phase == "transfer":
                last_byte_ns = max(last_byte_ns, self._events.get("http11.receive_response_body.complete", 0))
            transfer_ns = last_byte_ns - first_byte_ns
        else:
            headers_done = "http11.receive_response_headers.complete"
            ttfb_ns = self._span("http11.send_request_headers.started", headers_done)
            if self._first_write_ns is not None and headers_done in self._events:
                ttfb_ns = max(0, self._events[headers_done] - self._first_write_ns)
            transfer_ns = self._span(headers_done, "http11.receive_response_body.complete")
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


def _kernel_timestamp_option() -> int | None:
    """``SO_TIMESTAMPNS`` where its value is known (Python does not export it): Linux on x86-64
    and arm64, where it is 35 and the timestamp is a 64-bit ``struct timespec``."""
    if sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64"):
        return 35
    return None


_SO_TIMESTAMPNS = _kernel_timestamp_option()
_TIMESPEC = struct.Struct("qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


class _TimedStream(httpcore.NetworkStream):
    """A connection's network stream that tells the active :class:`PhaseTimer` when request bytes
    are written and response bytes are read (the timer is looked up at each call: a kept-alive
    connection serves several requests, each with its own timer).

    On a plain TCP socket with kernel receive timestamps (``SO_TIMESTAMPNS``, Linux), a read is
    dated by when its bytes reached this machine's network stack, not by when the probe's
    process was next given a core to read them: on a busy machine the probe's own wake-up
    (0.2 ms at the median here, several ms at the tail) is not the target's time.
    """

    def __init__(self, inner: httpcore.NetworkStream, sock: socket.socket | None = None) -> None:
        self._inner = inner
        self._sock = sock  # set when kernel receive timestamps are on

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timer = _active_timer.get()
        if timer is not None:
            timeout = timer.bounded_timeout(timeout)
            if timeout is not None and timeout <= 0:
                raise httpcore.ReadTimeout("the exchange's deadline passed")
        if self._sock is None:
            data = self._inner.read(max_bytes, timeout)
            arrived_ns = time.perf_counter_ns()
        else:
            data, arrived_ns = self._read_stamped(self._sock, max_bytes, timeout)
        if data and timer is not None:
            timer.record_read(arrived_ns)
        return data

    @staticmethod
    def _read_stamped(sock: socket.socket, max_bytes: int, timeout: float | None) -> tuple[bytes, int]:
        """``recv`` with the kernel's receive timestamp, mapped to ``perf_counter_ns``; errors
        mapped as httpcore's own stream maps them."""
        try:
            sock.settimeout(timeout)
            data, ancillary, _flags, _address = sock.recvmsg(max_bytes, _ANCILLARY_BYTES)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc
        now_ns = time.perf_counter_ns()
        wall_ns = time.time_ns()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                age_ns = wall_ns - (seconds * _NS_PER_S + nanoseconds)
                return data, now_ns - min(max(age_ns, 0), now_ns)
        return data, now_ns

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        timer = _active_timer.get()
        if timer is not None:
            timeout = timer.bounded_timeout(timeout)
            if timeout is not None and timeout <= 0:
                raise httpcore.WriteTimeout("the exchange's deadline passed")
            if buffer:
                timer.record_write(time.perf_counter_ns())
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # TLS records are decrypted by Python's ssl module: reads are dated when they return.
        timer = _active_timer.get()
        if timer is not None:
            timeout = timer.bounded_timeout(timeout)
            if timeout is not None and timeout <= 0:
                raise httpcore.ConnectTimeout("the exchange's deadline passed")
        return _TimedStream(self._inner.start_tls(ssl_context, server_hostname=server_hostname, timeout=timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _with_kernel_timestamps(stream: httpcore.NetworkStream) -> _TimedStream:
    sock = stream.get_extra_info("socket")
    if _SO_TIMESTAMPNS is None or not _ANCILLARY_BYTES or not isinstance(sock, socket.socket):
        return _TimedStream(stream)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return _TimedStream(stream)
    return _TimedStream(stream, sock)


class TimedResolverBackend(httpcore.SyncBackend):
    """httpcore's sync network backend, with name resolution done (and timed) separately, and
    streams that report when bytes go out and come in.

    The resolution time and the bytes' moments are reported to the :class:`PhaseTimer` active in
    the calling context. IP literals are not resolved. A name is resolved within the connect
    timeout (``getaddrinfo`` has no timeout of its own: it runs in a helper thread that is left
    behind if it does not answer in time). Addresses are tried in the resolver's order, as
    ``socket.create_connection`` does.

    Args:
        kernel_timestamps: date reads by the kernel's receive timestamp where supported (False:
            when the read returns to Python, as any client would).
    """

    def __init__(self, *, kernel_timestamps: bool = True) -> None:
        self._kernel_timestamps = kernel_timestamps

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timer = _active_timer.get()
        if timer is not None:
            timeout = timer.bounded_timeout(timeout)
            if timeout is not None and timeout <= 0:
                raise httpcore.ConnectTimeout("the exchange's deadline passed")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            addresses = self._resolve(host, port, timer, timeout)
        else:
            addresses = [host]
        last_error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        started_ns = time.perf_counter_ns()
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
            else:
                if timer is not None:
                    timer.record_connect(time.perf_counter_ns() - started_ns)
                return _with_kernel_timestamps(stream) if self._kernel_timestamps else _TimedStream(stream)
        if last_error is None:  # pragma: no cover - getaddrinfo never returns an empty list
            raise httpcore.ConnectError(f"no address for {host}")
        raise last_error

    @staticmethod
    def _resolve(host: str, port: int, timer: PhaseTimer | None, timeout_s: float | None) -> list[str]:
        started_ns = time.perf_counter_ns()
        try:
            infos = _getaddrinfo_within(host, port, timeout_s)
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


class DnsTimeoutError(OSError):
    """Name resolution did not answer within the time it was given."""


def _getaddrinfo_within(host: str, port: int, timeout_s: float | None) -> list[Any]:
    """``socket.getaddrinfo(host, port)`` for TCP, giving up after ``timeout_s`` (None: wait).

    Raises:
        OSError: resolution failed; :class:`DnsTimeoutError` when it did not answer in time.
    """
    if timeout_s is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[list[Any]] = []
    errors: list[OSError] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=resolve, name="wardwatch dns", daemon=True).start()
    if not done.wait(max(timeout_s, 0.0)):
        raise DnsTimeoutError(f"no answer within {timeout_s:g} s")
    if errors:
        raise errors[0]
    return found[0]


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
    kernel_timestamps: bool = True,
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
        kernel_timestamps: see :class:`TimedResolverBackend`.

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
        network_backend=TimedResolverBackend(kernel_timestamps=kernel_timestamps),
    )
    return transport
