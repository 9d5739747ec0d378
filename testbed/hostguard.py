"""The testbed answers only to the addresses it serves, and its admin endpoints only to itself.

A server on 127.0.0.1 is reachable from any web page the same machine's browser opens, by DNS
rebinding (``evil.example`` resolving to 127.0.0.1): the browser then sends ``Host: evil.example``.
So a request whose ``Host`` is not the address the testbed listens on (or ``localhost`` when that is
loopback, or an allowed host given) is refused with 421, and ``/admin/...`` (fault injection, no
authentication) refuses a request whose ``Origin`` is another site (403).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HostGuard", "host_allowed"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


def _hostname(host_header: str) -> str:
    """``[::1]:8765`` -> ``::1``; ``Example.org:80`` -> ``example.org``."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str, bound_host: str, allowed: Iterable[str] = ()) -> bool:
    """Whether ``host_header`` names the address served on ``bound_host`` (or an allowed host).

    Loopback binds also answer to ``localhost``; an all-interfaces bind answers to any IP address
    (an address, unlike a name, cannot be rebound) and to the allowed names.
    """
    name = _hostname(host_header)
    bound = bound_host.strip("[]").lower()
    names = {bound, *(a.lower() for a in allowed)}
    if bound in _WILDCARDS or _is_ip(bound) and ipaddress.ip_address(bound).is_loopback or bound == "localhost":
        names |= _LOOPBACK_NAMES
    if bound in _WILDCARDS and _is_ip(name):
        return True
    return bool(name) and name in names


class HostGuard:
    """ASGI middleware: refuse unknown ``Host`` headers, and cross-origin requests to ``/admin/``."""

    def __init__(self, app: ASGIApp, bound_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.bound_host = bound_host
        self.allowed_hosts = tuple(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not host_allowed(host, self.bound_host, self.allowed_hosts):
            await _refuse(send, 421, "this server does not answer to that Host")
            return
        origin = headers.get("origin")
        if scope["path"].startswith("/admin/") and origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            await _refuse(send, 403, "admin endpoints refuse cross-origin requests")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = message.encode() + b"\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
