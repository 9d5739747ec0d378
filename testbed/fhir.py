"""FHIR R4 search, paging and resource shapes over a :class:`~testbed.data.Dataset`.

No HTTP here: the app turns requests into calls of :func:`search` and :func:`searchset_bundle` and
turns :class:`FhirError` into an OperationOutcome response.

An unknown search parameter is handled as many real servers handle it (FHIR's "lenient"
default): the search answers an empty Bundle, so a typo (``categroy=vital-signs``) passes
unnoticed unless a step asserts what it expects or ``wardwatch check --online`` compares the
workflow with the CapabilityStatement. ``Prefer: handling=strict`` makes it a 400. A malformed
value of a known parameter is always a 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from testbed.data import RESOURCE_TYPES, Dataset, Resource

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "SEARCH_PARAMS",
    "FhirError",
    "Page",
    "UnknownSearchParameter",
    "capability_statement",
    "operation_outcome",
    "parse_paging",
    "search",
    "searchset_bundle",
]

DEFAULT_COUNT = 20
MAX_COUNT = 100
_COMMON_PARAMS = ("_id", "_count", "_offset", "_format")

# Per type: parameter -> FHIR search parameter type (string, token, reference, date); ``_sort``
# marks the types that can be sorted (by the keys in ``_SORT_FIELDS``).
SEARCH_PARAMS: dict[str, dict[str, str]] = {
    "Patient": {"identifier": "token", "name": "string", "family": "string", "given": "string",
                "gender": "token"},
    "Location": {"name": "string"},
    "Encounter": {"patient": "reference", "subject": "reference", "status": "token",
                  "location": "reference", "class": "token", "date": "date", "_sort": "special"},
    "Observation": {"patient": "reference", "subject": "reference", "category": "token",
                    "code": "token", "encounter": "reference", "date": "date",
                    "_sort": "special"},
    "MedicationRequest": {"patient": "reference", "subject": "reference", "status": "token"},
    "AllergyIntolerance": {"patient": "reference"},
    "DocumentReference": {"patient": "reference", "subject": "reference", "type": "token",
                          "date": "date", "_sort": "special"},
}

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge")


def _instant_key(value: Any) -> datetime:
    """A FHIR dateTime as an aware UTC datetime for sorting (date-only: midnight UTC; a missing
    or unparseable value sorts as the earliest)."""
    if not isinstance(value, str) or not value:
        return _EARLIEST
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _EARLIEST
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Per type: the _sort keys allowed and the instant they order by (created resources may write
# offsets or fractions, so values are parsed rather than compared as strings).
_SORT_FIELDS: dict[str, dict[str, Callable[[Resource], datetime]]] = {
    "Observation": {"date": lambda r: _instant_key(r.get("effectiveDateTime"))},
    "DocumentReference": {"date": lambda r: _instant_key(r.get("date"))},
    "Encounter": {"date": lambda r: _instant_key(r.get("period", {}).get("start"))},
}


def _date_key(rtype: str) -> Callable[[Resource], datetime]:
    return _SORT_FIELDS[rtype]["date"]


class FhirError(Exception):
    """A request the server answers with an OperationOutcome.

    Args:
        status: HTTP status code.
        code: the FHIR issue type (``not-found``, ``invalid``, ``not-supported``, ``login``...).
        diagnostics: a human-readable explanation (never contains tokens or bodies).
    """

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics


class UnknownSearchParameter(FhirError):
    """A search parameter the server does not know (lenient servers answer an empty Bundle)."""

    def __init__(self, rtype: str, name: str, supported: str) -> None:
        super().__init__(400, "not-supported",
                         f"unsupported search parameter {name!r} for {rtype}; supported: {supported}")
        self.name = name


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome resource with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


@dataclass(frozen=True)
class Page:
    """Where a page of a searchset starts and how many entries it holds."""

    count: int
    offset: int


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise FhirError(400, "not-supported", f"parameter {name} may be given only once")
    return values[0] if values else None


def _non_negative_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise FhirError(400, "invalid", f"{name} must be an integer, got {value!r}") from exc
    if number < 0:
        raise FhirError(400, "invalid", f"{name} must not be negative")
    return number


def parse_paging(params: Sequence[tuple[str, str]]) -> Page:
    """Read ``_count`` (default 20, capped at 100; 0 returns only the total) and ``_offset``."""
    raw_count = _single(params, "_count")
    raw_offset = _single(params, "_offset")
    count = DEFAULT_COUNT if raw_count is None else _non_negative_int(raw_count, "_count")
    offset = 0 if raw_offset is None else _non_negative_int(raw_offset, "_offset")
    return Page(count=min(count, MAX_COUNT), offset=offset)


def _codings(value: Any) -> list[dict[str, Any]]:
    """Codings of a CodeableConcept, a list of them, or a Coding."""
    if isinstance(value, list):
        return [c for item in value for c in _codings(item)]
    if isinstance(value, dict):
        if "coding" in value:
            return list(value["coding"])
        if "code" in value:
            return [value]
    return []


def _token_match(query: str, pairs: list[tuple[str | None, str | None]]) -> bool:
    """FHIR token matching of ``system|code``, ``|code``, ``system|`` or ``code``."""
    if "|" in query:
        system, _, code = query.partition("|")
        for s, c in pairs:
            if system and s != system:
                continue
            if not system and s is not None:
                continue
            if code and c != code:
                continue
            return True
        return False
    return any(c == query for _, c in pairs)


def _token_pairs(rtype: str, name: str, res: Resource) -> list[tuple[str | None, str | None]]:
    if name == "identifier":
        return [(i.get("system"), i.get("value")) for i in res.get("identifier", [])]
    if name in ("status", "gender"):
        return [(None, res.get(name))]
    field_name = {"category": "category", "code": "code", "class": "class", "type": "type"}[name]
    return [(c.get("system"), c.get("code")) for c in _codings(res.get(field_name))]


def _references(name: str, res: Resource) -> list[dict[str, str]]:
    if name in ("patient", "subject"):
        return [res.get("subject") or res.get("patient") or {}]
    if name == "location":
        return [loc.get("location", {}) for loc in res.get("location", [])]
    if name == "encounter":
        return [res.get("encounter", {})]
    return []


def _reference_match(query: str, target_type: str, refs: list[dict[str, str]]) -> bool:
    """``Type/id`` or a bare ``id``; a location also matches its display name (``Ward 7``)."""
    wanted = query if "/" in query else f"{target_type}/{query}"
    for ref in refs:
        if ref.get("reference") == wanted:
            return True
        if target_type == "Location" and ref.get("display", "").casefold() == query.casefold():
            return True
    return False


def _string_values(name: str, res: Resource) -> list[str]:
    if name == "name" and res.get("resourceType") == "Location":
        return [res.get("name", "")]
    out: list[str] = []
    for human in res.get("name", []):
        if name in ("name", "family") and human.get("family"):
            out.append(human["family"])
        if name in ("name", "given"):
            out.extend(human.get("given", []))
        if name == "name" and human.get("text"):
            out.append(human["text"])
            out.extend(human["text"].split())
    return out


def _date_criterion(value: str) -> tuple[str, datetime]:
    """``[prefix]YYYY-MM-DD[Thh:mm[:ss][+zz:zz]]`` -> (prefix, instant); date-only and zone-less
    values are read as UTC (the testbed's data is in UTC)."""
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    raw = value[2:] if value[:2] in _DATE_PREFIXES else value
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise FhirError(400, "invalid", f"date must be [prefix]YYYY-MM-DD[Thh:mm:ss], got {value!r}") from exc
    return prefix, moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _date_match(criterion: tuple[str, datetime], moment: datetime) -> bool:
    prefix, at = criterion
    return {"eq": moment == at, "ne": moment != at, "lt": moment < at, "gt": moment > at,
            "le": moment <= at, "ge": moment >= at}[prefix]


def _string_match(query: str, values: list[str]) -> bool:
    q = query.casefold()
    return any(v.casefold().startswith(q) for v in values)


_REF_TARGETS = {"patient": "Patient", "subject": "Patient", "location": "Location",
                "encounter": "Encounter"}


def search(dataset: Dataset, rtype: str, params: Sequence[tuple[str, str]]) -> list[Resource]:
    """All resources of ``rtype`` matching ``params`` (AND across parameters, OR across commas).

    Raises:
        UnknownSearchParameter: a parameter the type does not support (the caller decides
            between an empty Bundle and a 400).
        FhirError: 404 for an unknown type, 400 for a bad value.
    """
    if rtype not in SEARCH_PARAMS:
        raise FhirError(404, "not-found", f"unknown resource type {rtype}")
    allowed = SEARCH_PARAMS[rtype]
    criteria: list[tuple[str, list[str]]] = []
    sort_spec: str | None = None
    for name, value in params:
        if name in ("_count", "_offset", "_format"):
            continue
        if name == "_sort" and name not in allowed:
            raise FhirError(400, "not-supported", f"{rtype} cannot be sorted")
        if name != "_id" and name not in allowed:
            supported = ", ".join(sorted({*allowed, *_COMMON_PARAMS} - {"_format"}))
            raise UnknownSearchParameter(rtype, name, supported)
        if name == "_sort":
            sort_spec = _single(params, "_sort")
            continue
        alternatives = [v for v in value.split(",") if v != ""]
        if not alternatives:
            raise FhirError(400, "invalid", f"parameter {name} has no value")
        if name != "_id" and allowed[name] == "date":
            for alternative in alternatives:
                _date_criterion(alternative)  # a malformed date is a 400 before any matching
        criteria.append((name, alternatives))

    candidates: list[Resource] | None = None
    for name, alternatives in criteria:
        if name in ("patient", "subject") and rtype != "Patient":
            ids = [a.rpartition("/")[2] for a in alternatives]
            candidates = [r for pid in ids for r in dataset.for_patient(rtype, pid)]
            break
    pool = candidates if candidates is not None else list(dataset.of_type(rtype))

    def keep(res: Resource) -> bool:
        for name, alternatives in criteria:
            if name == "_id":
                ok = res.get("id") in alternatives
            else:
                kind = allowed[name]
                if kind == "token":
                    pairs = _token_pairs(rtype, name, res)
                    ok = any(_token_match(a, pairs) for a in alternatives)
                elif kind == "reference":
                    refs = _references(name, res)
                    ok = any(_reference_match(a, _REF_TARGETS[name], refs) for a in alternatives)
                elif kind == "date":
                    moment = _date_key(rtype)(res)
                    ok = moment != _EARLIEST and any(
                        _date_match(_date_criterion(a), moment) for a in alternatives)
                else:
                    values = _string_values(name, res)
                    ok = any(_string_match(a, values) for a in alternatives)
            if not ok:
                return False
        return True

    matches = [r for r in pool if keep(r)]
    if sort_spec is not None:
        descending = sort_spec.startswith("-")
        key_name = sort_spec.lstrip("-")
        fields = _SORT_FIELDS.get(rtype, {})
        if key_name not in fields:
            raise FhirError(400, "not-supported",
                            f"_sort={sort_spec} is not supported for {rtype}; "
                            f"supported: {', '.join(sorted(fields)) or 'none'}")
        matches.sort(key=lambda r: r["id"])
        matches.sort(key=fields[key_name], reverse=descending)
    return matches


def searchset_bundle(
    matches: Sequence[Resource],
    *,
    fhir_base: str,
    rtype: str,
    params: Sequence[tuple[str, str]],
    page: Page,
) -> dict[str, Any]:
    """A searchset Bundle of one page of ``matches`` with ``total`` and ``self``/``next`` links.

    Args:
        matches: every matching resource, in result order.
        fhir_base: absolute URL of the FHIR base, without a trailing slash.
        rtype: the searched resource type.
        params: the request's query parameters (repeated in the links).
        page: the page to return.
    """
    rest = [(k, v) for k, v in params if k not in ("_count", "_offset")]

    def link(offset: int) -> str:
        query = urlencode([*rest, ("_count", str(page.count)), ("_offset", str(offset))])
        return f"{fhir_base}/{rtype}?{query}"

    window = list(matches[page.offset: page.offset + page.count]) if page.count else []
    links = [{"relation": "self", "url": link(page.offset)}]
    if page.count and page.offset + page.count < len(matches):
        links.append({"relation": "next", "url": link(page.offset + page.count)})
    if page.offset > 0 and page.count:
        links.append({"relation": "previous", "url": link(max(0, page.offset - page.count))})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": [
            {"fullUrl": f"{fhir_base}/{r['resourceType']}/{r['id']}", "resource": r,
             "search": {"mode": "match"}}
            for r in window
        ],
    }


def capability_statement(fhir_base: str, token_url: str, date: str) -> dict[str, Any]:
    """The server's CapabilityStatement (FHIR R4, JSON, SMART-style OAuth token URL): each
    resource type with its interactions and search parameters (``_sort`` is a result parameter,
    not declared; its keys are declared search parameters, ``date``)."""
    resources = []
    for rtype in RESOURCE_TYPES:
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if rtype == "Observation":
            interactions += [{"code": "create"}, {"code": "delete"}]
        params = [{"name": "_id", "type": "token"}]
        params += [{"name": n, "type": t} for n, t in SEARCH_PARAMS[rtype].items() if n != "_sort"]
        resources.append({"type": rtype, "interaction": interactions, "searchParam": params})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "Wardwatch testbed EPR"},
        "implementation": {"description": "A simulated EPR for Wardwatch demos and tests",
                           "url": fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}],
                }],
            },
            "resource": resources,
        }],
    }
