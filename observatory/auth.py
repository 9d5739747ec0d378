"""Who may write what: a bearer token per site, and one per EPR sending its own server spans.

A token is compared with every known token in constant time (``hmac.compare_digest``, no early
exit), so neither a match nor a near miss shows in the response time. A site's token writes only
that site's spans (every ``wardwatch.site`` in the request must be its site); an EPR's token writes
only spans of its ``service.name`` that name no site.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Forbidden", "Principal", "Tokens", "Unauthorized"]


class Unauthorized(PermissionError):
    """No token, or one the observatory does not know (401)."""


class Forbidden(PermissionError):
    """A known token, writing what it may not (403)."""


@dataclass(frozen=True)
class Principal:
    """What one token vouches for: a site's probe, or an EPR (``service``, and its ``target``)."""

    site: str | None = None
    service: str | None = None
    target: str | None = None

    def __str__(self) -> str:
        return f"site {self.site!r}" if self.site is not None else f"service {self.service!r}"

    def check(self, sites: set[str], services: set[str], site_less: bool) -> None:
        """Raise :class:`Forbidden` unless every span of the request is this principal's to write."""
        if self.site is not None:
            others = sorted(sites - {self.site})
            if others:
                raise Forbidden(f"the token of site {self.site!r} cannot write spans of site {others[0]!r}")
            if site_less:
                raise Forbidden(f"the token of site {self.site!r} writes only spans whose resource names "
                                f"wardwatch.site={self.site!r}")
            return
        if sites:
            raise Forbidden(f"the token of service {self.service!r} cannot write spans of site {sorted(sites)[0]!r}")
        others = sorted(services - {self.service or ""})
        if others:
            raise Forbidden(f"the token of service {self.service!r} cannot write spans of service {others[0]!r}")


class Tokens:
    """The known tokens. Built from resolved values: references are the composition root's job."""

    def __init__(self, sites: Mapping[str, str], sources: Iterable[tuple[str, str | None, str]] = ()) -> None:
        """``sites``: site name -> token; ``sources``: (service name, target, token) per EPR.

        Raises:
            ValueError: a token is empty or given twice (two senders could not be told apart).
        """
        self._known: list[tuple[bytes, Principal]] = []
        for site, token in sites.items():
            self._add(token, Principal(site=site))
        for service, target, token in sources:
            self._add(token, Principal(service=service, target=target))

    def _add(self, token: str, principal: Principal) -> None:
        if not token:
            raise ValueError(f"the token of {principal} is empty")
        encoded = token.encode("utf-8")
        if any(hmac.compare_digest(encoded, known) for known, _ in self._known):
            raise ValueError(f"the token of {principal} is also another sender's token")
        self._known.append((encoded, principal))

    def __len__(self) -> int:
        return len(self._known)

    def principal(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization: Bearer <token>`` header.

        Raises:
            Unauthorized: no bearer token, or an unknown one.
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <the site's token>")
        presented = token.strip().encode("utf-8")
        found: Principal | None = None
        for known, principal in self._known:  # every one compared: no early exit
            if hmac.compare_digest(presented, known):
                found = principal
        if found is None:
            raise Unauthorized("the bearer token is not one this observatory knows")
        return found
