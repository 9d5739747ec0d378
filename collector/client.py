"""The HTTP client a run uses: httpx over the phase-timing transport, with the target's TLS."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from collector.config import TargetConfig
from collector.timing import build_transport

__all__ = ["USER_AGENT", "ClientFactory", "make_client"]

USER_AGENT = "wardwatch-probe/0.1 (synthetic monitoring)"

# (target, keep_alive) -> a client; the runner closes it at the end of the run.
ClientFactory = Callable[[TargetConfig, bool], httpx.Client]


def make_client(target: TargetConfig, keep_alive: bool) -> httpx.Client:
    """A client for one run against ``target``.

    Args:
        target: base URL and TLS settings (headers and auth are added per request by the runner).
        keep_alive: reuse connections within the run (``connection: reuse``); False opens a new
            connection for every request (``connection: fresh``).

    Redirects are not followed (an unexpected 3xx is a finding), proxies from the environment are
    ignored (a probe measures its own path to the target).
    """
    transport = build_transport(
        verify=target.tls.verify,
        ca_bundle=target.tls.ca_bundle,
        client_cert=target.tls.client_cert,
        client_key=target.tls.client_key,
        keep_alive=keep_alive,
    )
    return httpx.Client(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/fhir+json, application/json"},
    )
