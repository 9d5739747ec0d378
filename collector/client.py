"""The HTTP client a run uses: httpx over the phase-timing transport, with the target's TLS."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import httpx

from collector.config import OAuth2ClientCredentialsConfig, SmartBackendServicesConfig, TargetConfig, TlsConfig
from collector.timing import build_transport, ssl_context

__all__ = ["USER_AGENT", "ClientFactory", "ProbeClients", "make_client"]

USER_AGENT = "wardwatch-probe/0.1 (synthetic monitoring)"


class _NoRequestUrls(logging.Filter):
    """Drops httpx's ``HTTP Request: GET <url> ...`` records, whatever the application's logging:
    a URL can hold a patient identifier (spans record requests by their URL template)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("HTTP Request:"))


_NO_REQUEST_URLS = _NoRequestUrls()

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
    are dropped, so a probe used as a library never logs a patient identifier.
    """
    httpx_logger = logging.getLogger("httpx")
    if _NO_REQUEST_URLS not in httpx_logger.filters:
        httpx_logger.addFilter(_NO_REQUEST_URLS)
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
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/fhir+json, application/json"},
    )


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
