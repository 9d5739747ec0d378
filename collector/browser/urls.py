"""A page's request URLs as telemetry may hold them: a template for the path, names for the query.

A browser probe does not know the page's routes, so identifiers are recognised by their shape:
a path segment holding a digit (``pat-0001``, ``42``, a UUID), or the segment after a FHIR
resource type (``/Patient/{id}``), becomes ``{id}``; version segments (``v2``, ``r4``) and the
FHIR operations and ``_history`` stay. Query values are replaced by ``REDACTED``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from store import schema

__all__ = ["PageUrl", "page_url"]

_VERSION = re.compile(r"^[vVrR]\d{1,2}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_KEEP = re.compile(r"^(_history|_search|\$[A-Za-z-]+|metadata)$")


@dataclass(frozen=True, slots=True)
class PageUrl:
    """What is recorded of one request the page made."""

    server_address: str
    server_port: int
    template: str
    query: str | None  # parameter names with REDACTED values, None without a query


def _segment(previous: str, segment: str) -> str:
    if not segment or _KEEP.match(segment) or _VERSION.match(segment):
        return segment
    if any(char.isdigit() for char in segment) or (_RESOURCE_TYPE.match(previous) and not _RESOURCE_TYPE.match(segment)):
        return "{id}"
    return segment


def page_url(url: str) -> PageUrl | None:
    """The recordable form of ``url``; None for what is no network request (``data:``, ``blob:``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    segments = parts.path.split("/")
    templated = [_segment(segments[i - 1] if i else "", segment) for i, segment in enumerate(segments)]
    names = [name for name, _value in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{quote(name, safe='')}={schema.REDACTED}" for name in names) if names else None
    return PageUrl(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), "/".join(templated) or "/", query)
