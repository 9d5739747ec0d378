"""What a step asks of a FHIR server, held against a CapabilityStatement."""

from __future__ import annotations

from typing import Any

import pytest

from collector.capabilities import CapabilityError, ServerCapabilities, check_capabilities, step_problems
from collector.config import ConfigProblem, StepConfig, TargetConfig, WorkflowConfig

STATEMENT = {
    "resourceType": "CapabilityStatement",
    "rest": [{
        "mode": "server",
        "searchParam": [{"name": "_text", "type": "string"}],
        "resource": [
            {"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "vread"}],
             "searchParam": [{"name": "identifier", "type": "token"}, {"name": "name", "type": "string"}]},
            {"type": "Observation",
             "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "delete"}],
             "searchParam": [{"name": "patient", "type": "reference"}, {"name": "category", "type": "token"},
                             {"name": "date", "type": "date"}, {"name": "subject", "type": "reference"}]},
        ],
    }],
}
CAPABILITIES = ServerCapabilities.from_statement(STATEMENT)


def problems(method: str, path: str, **query: Any) -> list[str]:
    step = StepConfig.model_validate({"name": "s", "method": method, "path": path, "query": query})
    found = step_problems(step, ("workflows", 0, "steps", 0), CAPABILITIES)
    assert all(isinstance(p, ConfigProblem) and p.loc[:4] == ("workflows", 0, "steps", 0) for p in found)
    return [f"{'.'.join(map(str, p.loc[4:]))}: {p.message}" for p in found]


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/Patient", {"identifier": "x", "_count": 1, "_include": "Patient:x", "_summary": "true"}),
    ("GET", "/Patient/{{ pid }}", {}),
    ("GET", "/Patient/{{ pid }}/_history/{{ v }}", {}),
    ("GET", "/Observation", {"patient": "p", "category:text": "v", "subject.name": "x", "_sort": "-date,_id",
                             "_text": "t", "_lastUpdated": "ge2026"}),
    ("POST", "/Observation", {}),
    ("DELETE", "/Observation/{{ oid }}", {}),
    ("GET", "/Observation", {"_sort": "{{ order }}"}),   # a templated sort cannot be judged
    ("GET", "/{{ kind }}/{{ id }}", {}),                  # nor a templated type
    ("GET", "/Patient/{{ pid }}/$everything", {}),        # operations are not checked
    ("GET", "/metadata", {}),
])
def test_what_the_server_declares_passes(method, path, query):
    assert problems(method, path, **query) == []


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/Encounter", {}, "path: the server does not declare resource type Encounter (declared: Observation, Patient)"),
    ("DELETE", "/Patient/{{ pid }}", {}, "path: the server does not declare the delete interaction on Patient"),
    ("PUT", "/Observation/{{ oid }}", {}, "path: the server does not declare the update interaction on Observation"),
    ("GET", "/Patient/{{ pid }}/_history", {}, "path: the server does not declare the history-instance interaction"),
    ("GET", "/Observation", {"categroy": "v"}, "query.categroy: search parameter 'categroy' is not declared by the server for Observation (did you mean 'category'?)"),
    ("GET", "/Observation", {"zzz:exact": "v"}, "query.zzz:exact: search parameter 'zzz' is not declared by the server for Observation (declared: "),
    ("GET", "/Observation", {"_sort": "-date,-effective"}, "query._sort: _sort by 'effective': the server declares no such search parameter on Observation"),
    ("POST", "/Patient/_search", {"birthdate": "x"}, "query.birthdate: search parameter 'birthdate'"),
])
def test_what_it_does_not_declare_is_named(method, path, query, expected):
    (found,) = problems(method, path, **query)
    assert found.startswith(expected), found


@pytest.mark.parametrize("statement", [None, {"resourceType": "Bundle"}, {"resourceType": "CapabilityStatement", "rest": [{"mode": "client"}]}])
def test_something_else_is_not_a_capability_statement(statement):
    with pytest.raises(CapabilityError):
        ServerCapabilities.from_statement(statement)


def test_each_target_is_read_once_and_a_failure_is_reported_at_the_target():
    targets = {"a": TargetConfig(base_url="https://a.example/fhir"), "b": TargetConfig(base_url="https://b.example/fhir")}
    workflows = [
        WorkflowConfig.model_validate({"name": f"w{i}", "target": target, "steps": [{"name": "s", "path": "/Encounter"}],
                                       "cleanup": [{"name": "c", "method": "DELETE", "path": "/Patient/{{ site }}"}]})
        for i, target in enumerate(["a", "b", "a", "b"])
    ]
    asked: list[str] = []

    def fetch(target: TargetConfig) -> ServerCapabilities:
        asked.append(target.base_url)
        if target.base_url.startswith("https://b."):
            raise CapabilityError("https://b.example/fhir/metadata answered 401")
        return CAPABILITIES

    found = check_capabilities(targets, workflows, fetch=fetch)
    assert asked == ["https://a.example/fhir", "https://b.example/fhir"]
    assert [p.loc for p in found] == [
        ("workflows", 0, "steps", 0, "path"), ("workflows", 0, "cleanup", 0, "path"),
        ("targets", "b", "base_url"),
        ("workflows", 2, "steps", 0, "path"), ("workflows", 2, "cleanup", 0, "path"),
    ]
