"""The HTTP client a run uses: httpx over the phase-timing transport, with the target's TLS."""

from __future__ import annotations

import logging
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator

import httpx

from collector.config import OAuth2ClientCredentialsConfig, SmartBackendServicesConfig, TargetConfig, TlsConfig
from collector.errors import ResponseTooLargeError
from collector.timing import build_transport, ssl_context

__all__ = ["USER_AGENT", "BoundedBodies", "ClientFactory", "ProbeClients", "make_client"]

USER_AGENT = "wardwatch-probe/0.1 (synthetic monitoring)"


class _NoRequestUrls(logging.Filter):
    """Drops httpx's ``HTTP Request: GET <url> ...`` records, whatever the application's logging:
    a URL can hold a patient identifier (spans record requests by their URL template)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("HTTP Request:"))


_NO_REQUEST_URLS = _NoRequestUrls()


class _EventNamesOnly(logging.Filter):
    """Cuts httpcore's debug trace records to the event's name (and a failure's exception class):
    their arguments quote what the server sent (``receive_response_headers.complete
    return_value=(..., b'<reason phrase>', [<headers>])``, an exception quoting a malformed status
    line), which may name a patient."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and " " in record.msg:
            name, _, rest = record.msg.partition(" ")
            _, found, exception = rest.partition("exception=")
            record.msg = f"{name} exception={exception.split('(', 1)[0]}" if found else name
            record.args = None
        return True


_EVENT_NAMES_ONLY = _EventNamesOnly()
_HTTPCORE_LOGGERS = ("httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks")

# (target, keep_alive) -> a client; the runner closes it at the end of the run.
ClientFactory = Callable[[TargetConfig, bool], httpx.Client]


def make_client(
    target: TargetConfig, keep_alive: bool, *, context: ssl.SSLContext | None = None, kernel_timestamps: bool = True
) -> httpx.Client:
    """A client for one run against ``target``.

    Args:
        target: base URL and TLS settings (headers and auth are added per request by the runner).
        keep_alive: reuse connections within the run (``connection: reuse``); False opens a new
            connection for every request (``connection: fresh``).
        context: a TLS context built from ``target.tls`` to reuse (default: build one).
        kernel_timestamps: date response bytes by the kernel's receive timestamp where
            supported (:class:`collector.timing.TimedResolverBackend`).

    Redirects are not followed (an unexpected 3xx is a finding), proxies from the environment are
    ignored (a probe measures its own path to the target). httpx's log records of request URLs
    are dropped, and httpcore's debug records are cut to their event names (their arguments quote
    the response), so a probe used as a library never logs a patient identifier. A response body
    larger than ``target.max_response_bytes``, on the wire or once decompressed, ends the read
    with :class:`collector.errors.ResponseTooLargeError` (token endpoints included).
    """
    httpx_logger = logging.getLogger("httpx")
    if _NO_REQUEST_URLS not in httpx_logger.filters:
        httpx_logger.addFilter(_NO_REQUEST_URLS)
    for name in _HTTPCORE_LOGGERS:
        core_logger = logging.getLogger(name)
        if _EVENT_NAMES_ONLY not in core_logger.filters:
            core_logger.addFilter(_EVENT_NAMES_ONLY)
    if context is None and not _uses_tls(target):
        # Plain HTTP everywhere (the FHIR base and any token endpoint) and no TLS settings: no CA
        # store to load (tens of ms of CPU per run). Should a TLS connection ever be made, this
        # context verifies certificates against an empty store, so it fails closed.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    transport = build_transport(
        verify=target.tls.verify,
        ca_bundle=target.tls.ca_bundle,
        client_cert=target.tls.client_cert,
        client_key=target.tls.client_key,
        keep_alive=keep_alive,
        context=context,
        kernel_timestamps=kernel_timestamps,
    )
    return httpx.Client(
        transport=BoundedBodies(transport, target.max_response_bytes),
        follow_redirects=False,
        trust_env=False,
        # Only the encodings whose inflated size BoundedBodies can bound as it goes.
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/fhir+json, application/json",
            "Accept-Encoding": "gzip, deflate",
        },
    )


_PIECE_BYTES = 64 * 1024


class BoundedBodies(httpx.BaseTransport):
    """A transport whose response bodies end with :class:`ResponseTooLargeError` past a size.

    The size is counted on the wire and, for ``gzip`` and ``deflate`` bodies, once inflated: each
    chunk is inflated here first, a piece at a time into nothing (memory stays a piece), before
    httpx is given it to decode for real, so httpx never holds more than the limit and one chunk.

    Args:
        inner: the transport that talks to the server.
        max_body_bytes: the largest body allowed.
    """

    def __init__(self, inner: httpx.BaseTransport, max_body_bytes: int) -> None:
        self._inner = inner
        self.max_body_bytes = max_body_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _BoundedStream(response.stream, response.headers, self.max_body_bytes)
        return response

    def close(self) -> None:
        self._inner.close()


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, headers: httpx.Headers, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._declared = headers.get("content-length", "")
        encodings = [value.strip().lower() for value in headers.get_list("content-encoding", split_commas=True)]
        # httpx decodes the listed encodings in reverse order and passes others through.
        self._inflaters: list[_Inflater] | None = [
            _Inflater(value) for value in reversed(encodings) if value in ("gzip", "deflate")
        ]
        # br or zstd, when their modules are installed: httpx would inflate them unbounded.
        self._unbounded = any(
            value in httpx._decoders.SUPPORTED_DECODERS and value not in ("gzip", "deflate", "identity")
            for value in encodings
        )

    def __iter__(self) -> Iterator[bytes]:
        if self._unbounded:
            raise httpx.DecodingError("an encoding the probe did not ask for")
        if self._declared.strip().isdigit() and int(self._declared) > self._limit:
            raise ResponseTooLargeError(self._limit)
        raw_bytes = decoded_bytes = 0
        for chunk in self._inner:
            raw_bytes += len(chunk)
            if self._inflaters:
                try:
                    decoded_bytes += _inflated_size(self._inflaters, chunk, self._limit - decoded_bytes)
                except zlib.error:
                    self._inflaters = None  # not decodable: httpx says so as it decodes
            if max(raw_bytes, decoded_bytes) > self._limit:
                raise ResponseTooLargeError(self._limit)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _Inflater:
    """One ``gzip`` or ``deflate`` layer, as httpx decodes it (deflate: zlib, else raw)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.first = True
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """``data`` inflated, a piece of at most 64 KiB at a time."""
        if self.first and self.encoding == "deflate":
            self.first = False
            probe = self.inflater.copy()
            try:
                probe.decompress(data[:_PIECE_BYTES], 1)
            except zlib.error:
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = data
        while True:
            piece = self.inflater.decompress(pending, _PIECE_BYTES)
            pending = self.inflater.unconsumed_tail
            if piece:
                yield piece
            if not pending and len(piece) < _PIECE_BYTES:
                return


def _inflated_size(layers: list[_Inflater], data: bytes, budget: int) -> int:
    """The size of ``data`` through every layer, stopping once past ``budget``."""
    if not layers:
        return len(data)
    total = 0
    for piece in layers[0].inflate(data):
        total += _inflated_size(layers[1:], piece, budget - total)
        if total > budget:
            break
    return total


def _uses_tls(target: TargetConfig) -> bool:
    if target.tls != TlsConfig():
        return True
    urls = [target.base_url]
    if isinstance(target.auth, (OAuth2ClientCredentialsConfig, SmartBackendServicesConfig)):
        # a SMART token endpoint still to be discovered may be https: assume it is
        urls.append(target.auth.token_url or "https:")
    return any(not url.lower().startswith("http://") for url in urls)


class ProbeClients:
    """A :data:`ClientFactory` that builds each distinct TLS context once and shares it.

    Every run still gets its own client and connections; only the (costly, immutable) TLS
    context is shared. A certificate file changed on disk is read again by a new instance.
    """

    def __init__(self) -> None:
        self._contexts: dict[TlsConfig, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __call__(self, target: TargetConfig, keep_alive: bool) -> httpx.Client:
        with self._lock:
            context = self._contexts.get(target.tls)
            if context is None:
                tls = target.tls
                context = ssl_context(
                    verify=tls.verify, ca_bundle=tls.ca_bundle, client_cert=tls.client_cert, client_key=tls.client_key
                )
                self._contexts[target.tls] = context
        return make_client(target, keep_alive, context=context)
