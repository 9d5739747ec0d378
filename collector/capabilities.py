"""What the EPR says it can do, held against what the workflows ask of it (``check --online``).

A FHIR server lists in its CapabilityStatement (``GET <base>/metadata``) each resource type it
serves, the interactions on it (``read``, ``search-type``, ``create``, ``delete``...) and the
search parameters it understands. Many servers answer a search with an unknown parameter with an
empty Bundle rather than an error, so a typo (``categroy=vital-signs``) gives quick, empty, "ok"
runs. :func:`check_capabilities` reads each target's statement once and reports every step whose
resource type, interaction or search parameter the server does not declare, located at the step's
``path`` or at the query key, before a single run is timed.

What a step asks is read from its method and path: ``GET /Type`` is ``search-type``, ``GET
/Type/{id}`` ``read``, ``POST /Type`` ``create``, ``PUT``/``PATCH``/``DELETE /Type/{id}``
``update``/``patch``/``delete``, ``/_history`` paths ``vread``/``history-*``, ``POST
/Type/_search`` ``search-type``. A path whose type is a template, an operation (``$everything``)
or the system level (``/``, ``/metadata``) is not checked. Result parameters (``_count``,
``_include``, ``_summary``...) are the specification's own and always accepted; ``_sort`` keys,
when written literally, must be declared search parameters; modifiers (``name:exact``) and chains
(``subject.name``) are checked by their first parameter.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from collector.client import make_client
from collector.config import ConfigProblem, StepConfig, TargetConfig, WorkflowConfig
from collector.templating import Template

__all__ = [
    "CapabilityError",
    "ResourceCapability",
    "ServerCapabilities",
    "check_capabilities",
    "fetch_capabilities",
    "step_problems",
]

# Parameters the FHIR specification defines for every search, which no server lists per type.
RESULT_PARAMETERS = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_elements", "_contained",
    "_containedType", "_format", "_pretty", "_offset",
})
# Common search parameters every server supports in practice, declared or not.
ALWAYS_SEARCHABLE = frozenset({"_id", "_lastUpdated"})
_TIMEOUT_S = 30.0


class CapabilityError(Exception):
    """The CapabilityStatement could not be read or is not one."""


@dataclass(frozen=True)
class ResourceCapability:
    """One resource type as the server declares it."""

    interactions: frozenset[str]
    search_parameters: frozenset[str]


@dataclass(frozen=True)
class ServerCapabilities:
    """The server side of a CapabilityStatement: resource types, and parameters for all types."""

    resources: Mapping[str, ResourceCapability]
    common_search_parameters: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_statement(cls, statement: Any) -> ServerCapabilities:
        """Read a CapabilityStatement resource (parsed JSON).

        Raises:
            CapabilityError: it is not a CapabilityStatement with a server ``rest`` entry.
        """
        if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
            raise CapabilityError("the answer is not a CapabilityStatement")
        rests = [r for r in statement.get("rest") or [] if isinstance(r, dict) and r.get("mode") == "server"]
        if not rests:
            raise CapabilityError("the CapabilityStatement declares no server (rest.mode = server)")
        resources: dict[str, ResourceCapability] = {}
        common: set[str] = set()
        for rest in rests:
            common |= _names(rest.get("searchParam"))
            for resource in rest.get("resource") or []:
                if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                    continue
                interactions = {i.get("code") for i in resource.get("interaction") or [] if isinstance(i, dict)}
                resources[resource["type"]] = ResourceCapability(
                    frozenset(code for code in interactions if isinstance(code, str)),
                    frozenset(_names(resource.get("searchParam"))),
                )
        return cls(resources, frozenset(common))


def _names(params: Any) -> set[str]:
    return {p["name"] for p in params or [] if isinstance(p, dict) and isinstance(p.get("name"), str)}


def fetch_capabilities(target: TargetConfig, *, timeout_s: float = _TIMEOUT_S) -> ServerCapabilities:
    """``GET <base_url>/metadata`` with the target's TLS settings and no credentials (FHIR servers
    serve their CapabilityStatement to anyone, as SMART clients need it before signing in).

    Raises:
        CapabilityError: the server could not be reached, answered an error, or not a statement.
    """
    try:
        with make_client(target, True) as client:
            response = client.get(f"{target.base_url}/metadata", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise CapabilityError(f"cannot reach {target.base_url}/metadata: {exc}") from exc
    if response.status_code != 200:
        hint = " (it is read without credentials, as FHIR servers serve it)" if response.status_code in (401, 403) else ""
        raise CapabilityError(f"{target.base_url}/metadata answered {response.status_code}{hint}")
    try:
        statement = response.json()
    except ValueError as exc:
        raise CapabilityError(f"{target.base_url}/metadata is not JSON") from exc
    return ServerCapabilities.from_statement(statement)


def _literal_segments(step: StepConfig) -> list[str | None]:
    """The path's segments, None where a segment holds a template."""
    segments = []
    for segment in step.path.strip("/").split("/"):
        segments.append(None if Template.parse(segment).variables else segment)
    return segments if segments != [""] else []


def _interaction(method: str, segments: Sequence[str | None]) -> tuple[str, str] | None:
    """(resource type, interaction) a request asks for, or None when it cannot be told."""
    if not segments or segments[0] is None or not segments[0][:1].isupper():
        return None  # system level (/, /metadata, /$op) or a templated type
    rtype, rest = segments[0], list(segments[1:])
    if any(s is not None and s.startswith("$") for s in rest):
        return None  # an operation
    if not rest:
        return rtype, {"GET": "search-type", "POST": "create", "PUT": "update", "DELETE": "delete",
                       "PATCH": "patch"}.get(method, "search-type")
    if rest == ["_search"] and method == "POST":
        return rtype, "search-type"
    if rest == ["_history"]:
        return rtype, "history-type"
    if len(rest) == 1:
        return rtype, {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "patch",
                       "DELETE": "delete"}.get(method, "read")
    if rest[1] == "_history":
        return rtype, "vread" if len(rest) == 3 else "history-instance"
    return None


def _declared(names: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def step_problems(
    step: StepConfig, where: tuple[str | int, ...], capabilities: ServerCapabilities
) -> list[ConfigProblem]:
    """What ``step`` asks that the server does not declare; ``where`` locates the step."""
    asked = _interaction(step.method, _literal_segments(step))
    if asked is None:
        return []
    rtype, interaction = asked
    resource = capabilities.resources.get(rtype)
    if resource is None:
        return [ConfigProblem((*where, "path"),
                              f"the server does not declare resource type {rtype} "
                              f"(declared: {_declared(set(capabilities.resources))})")]
    if interaction not in resource.interactions:
        return [ConfigProblem((*where, "path"),
                              f"the server does not declare the {interaction} interaction on {rtype} "
                              f"(declared: {_declared(resource.interactions)})")]
    if interaction != "search-type":
        return []
    searchable = resource.search_parameters | capabilities.common_search_parameters | ALWAYS_SEARCHABLE
    problems = []
    for key, value in step.query.items():
        name = key.split(":", 1)[0].split(".", 1)[0]
        if name == "_sort" and isinstance(value, str) and not Template.parse(value).variables:
            for sort_key in (k.strip().lstrip("-") for k in value.split(",") if k.strip()):
                if sort_key not in searchable:
                    problems.append(ConfigProblem((*where, "query", key),
                                                  f"_sort by {sort_key!r}: the server declares no such "
                                                  f"search parameter on {rtype}{_suggestion(sort_key, searchable)}"))
        elif name not in RESULT_PARAMETERS and name not in searchable:
            problems.append(ConfigProblem((*where, "query", key),
                                          f"search parameter {name!r} is not declared by the server for "
                                          f"{rtype}{_suggestion(name, searchable)}; a server may answer "
                                          f"an unknown parameter with an empty Bundle"))
    return problems


def _suggestion(name: str, names: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (declared: {_declared(names)})"


def check_capabilities(
    targets: Mapping[str, TargetConfig],
    workflows: Sequence[WorkflowConfig],
    *,
    fetch: Any = fetch_capabilities,
) -> list[ConfigProblem]:
    """Read each used target's CapabilityStatement once and check every step and cleanup step.

    Args:
        targets: the ``targets`` section.
        workflows: the ``workflows`` section (already checked offline).
        fetch: ``fetch(target) -> ServerCapabilities`` (for tests that hand a statement in).

    Returns:
        Every problem in config order, located relative to the config root; an unreadable
        statement is one problem at the target's ``base_url``.
    """
    problems: list[ConfigProblem] = []
    known: dict[str, ServerCapabilities | None] = {}
    for w_index, workflow in enumerate(workflows):
        target = targets.get(workflow.target)
        if target is None or workflow.kind != "http":  # a browser workflow's page asks what it asks
            continue
        if workflow.target not in known:
            try:
                known[workflow.target] = fetch(target)
            except CapabilityError as exc:
                known[workflow.target] = None
                problems.append(ConfigProblem(("targets", workflow.target, "base_url"), str(exc)))
        capabilities = known[workflow.target]
        if capabilities is None:
            continue
        for section in ("steps", "cleanup"):
            for index, step in enumerate(getattr(workflow, section)):
                problems.extend(step_problems(step, ("workflows", w_index, section, index), capabilities))
    return problems
