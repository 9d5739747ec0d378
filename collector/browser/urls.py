"""A page's request URLs as telemetry may hold them: a template for the path, names for the query.

A browser probe does not know the page's routes, so the store's own redaction rules apply
(:mod:`store.redact`, as for imported spans): identifiers recognised by their shape become
``{id}`` (``/fhir/Patient/{id}``, ``/api/patients/{id}``), query values become ``REDACTED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from store.redact import redacted_query, template_path

__all__ = ["PageUrl", "page_url"]


@dataclass(frozen=True, slots=True)
class PageUrl:
    """What is recorded of one request the page made."""

    server_address: str
    server_port: int
    template: str
    query: str | None  # parameter names with REDACTED values, None without a query


def page_url(url: str) -> PageUrl | None:
    """The recordable form of ``url``; None for what is no network request (``data:``, ``blob:``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    names = [name for name, _value in parse_qsl(parts.query, keep_blank_values=True)]
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443 if parts.scheme == "https" else 80
    return PageUrl(parts.hostname, port, template_path(parts.path) or "/", redacted_query(names) if names else None)
