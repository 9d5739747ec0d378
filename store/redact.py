"""No patient data in stored telemetry: paths as templates, query values redacted, messages dropped.

The probe records what its configuration says (``url.template`` from the step's path template, the
query's parameter names with every value ``REDACTED``); spans and request logs imported from
elsewhere carry whatever their writer put in them (``/fhir/Patient/MRN123456?family=SMITH``), so the
importers pass them through the same rules here before anything is stored:

- a path keeps its words (``fhir``, ``Patient``, ``_history``, ``$everything``, ``r4``) and every
  other segment becomes ``{id}``: one with a digit, a character outside letters and ``_$.-``, or
  the segment after a collection, i.e. after a resource type (``/Patient/SMITH``, FHIR's
  ``/{type}/{id}``) or a plural word (``/api/patients/smith``); ``_search`` and ``$everything``
  after one stay. Erring on the side of privacy, ``/api/users/me`` becomes ``/api/users/{id}``;
- a query keeps its parameter names, each value ``REDACTED`` (:func:`redacted_query`, which the
  collector uses too);
- a free-text status message is dropped, unless it is a bare class name (``TimeoutError``).

And one rule for text that leaves as a spreadsheet: :func:`spreadsheet_safe` (CSV cells).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlsplit

from store import schema

__all__ = ["ID", "redact_attributes", "redact_span_name", "redact_target", "redacted_query", "redact_query", "redact_url",
           "spreadsheet_safe", "status_class", "template_path", "template_target"]

ID = "{id}"
_WORD = re.compile(r"^[A-Za-z_$][A-Za-z_$.\-]{0,63}$")
_VERSION = re.compile(r"^(?:[vVrR]\d{1,2}|STU\d|stu\d)$")
_PLACEHOLDER = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)*$")
_PLURAL = re.compile(r"^[a-z]{3,}s$")  # a REST collection: patients, encounters, records
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def template_path(path: str) -> str:
    """``/fhir/Patient/MRN123456/_history/2`` as ``/fhir/Patient/{id}/_history/{id}``."""
    out: list[str] = []
    after_type = False
    for segment in path.split("/"):
        if segment == "" or _PLACEHOLDER.match(segment) or _VERSION.match(segment):
            out.append(segment)
            after_type = False
            continue
        is_word = bool(_WORD.match(segment))
        if after_type and not segment.startswith(("_", "$")) or not is_word:
            out.append(ID)
            after_type = False
        else:
            out.append(segment)
            after_type = bool(_RESOURCE_TYPE.match(segment) or _PLURAL.match(segment))
    return "/".join(out)


def redacted_query(names: Iterable[object]) -> str:
    """``url.query`` from parameter names: ``identifier=REDACTED&_count=REDACTED``."""
    return "&".join(f"{quote(str(name), safe='')}={schema.REDACTED}" for name in names)


@functools.lru_cache(maxsize=4096)  # imported spans repeat a few queries, templates and URLs
def redact_query(query: str) -> str:
    """A query string with every value ``REDACTED`` (names kept, in order)."""
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    return redacted_query(names)


@functools.lru_cache(maxsize=4096)
def template_target(target: str) -> str:
    """A path with an optional query (``/Patient/1?x=2``): the path templated, the query redacted."""
    path, mark, query = target.partition("?")
    path = path.partition("#")[0]
    return template_path(path) + (mark + redact_query(query) if mark else "")


@functools.lru_cache(maxsize=4096)
def redact_url(url: str) -> str:
    """A whole URL: scheme and host kept (credentials dropped), path templated, query redacted."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return template_target(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    query = f"?{redact_query(parts.query)}" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{template_path(parts.path)}{query}"


# Attributes of an imported span that hold a path, a whole URL, or free text about a patient.
_PATH_KEYS = (schema.URL_TEMPLATE, schema.HTTP_ROUTE, "http.target", "url.path")
_URL_KEYS = ("url.full", "http.url")
_DROPPED_KEYS = ("exception.message", "exception.stacktrace", "enduser.id")
_REQUEST_NAME = re.compile(r"^([A-Z]+)\s+(\S.*)$")


def redact_attributes(attributes: dict[str, str]) -> dict[str, str]:
    """A span's attributes as the probe records them (in place): templates, redacted queries, no messages."""
    for key in _DROPPED_KEYS:
        attributes.pop(key, None)
    for key in _PATH_KEYS:
        if key in attributes:
            attributes[key] = template_target(attributes[key])
    for key in _URL_KEYS:
        if key in attributes:
            attributes[key] = redact_url(attributes[key])
    if schema.URL_QUERY in attributes:
        attributes[schema.URL_QUERY] = redact_query(attributes[schema.URL_QUERY])
    return attributes


def redact_span_name(name: str) -> str:
    """A span name holding a request (``GET /fhir/Patient/MRN1``) names its template instead."""
    match = _REQUEST_NAME.match(name)
    if match and match.group(2).startswith(("/", "http:", "https:")):
        return f"{match.group(1)} {redact_target(match.group(2))}"
    if name.startswith(("/", "http:", "https:")):
        return redact_target(name)
    return name


def redact_target(target: str) -> str:
    """A whole URL or a path with its query, redacted as :func:`redact_url` or :func:`template_target`."""
    return redact_url(target) if target.startswith(("http:", "https:")) else template_target(target)


def status_class(message: str) -> str:
    """A status message reduced to its class: kept when it is a bare class name, otherwise dropped."""
    text = message.strip()
    return text if _CLASS_NAME.match(text) else ""


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting ``= + - @`` (or a tab or CR) gets a
    leading ``'`` (OWASP's advice against CSV injection); numbers and other values pass unchanged."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_PREFIXES):
        try:
            float(cell)  # "-0.5" is a number, not a formula
        except ValueError:
            return "'" + cell
    return cell
