"""The collector's config sections: schema errors, and problems across sections with locations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from collector.config import (
    AnyWorkflowConfig,
    ConfigProblem,
    OAuth2ClientCredentialsConfig,
    SiteConfig,
    StepConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    check_references,
    requests_per_min,
    requests_per_run,
)
from collector.secretref import SecretResolutionError, resolve_secret

TARGETS = {
    "testbed": TargetConfig.model_validate(
        {
            "base_url": "http://127.0.0.1:8765/fhir/",
            "headers": {"X-Wardwatch-Site": "{{ site }}"},
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": "http://127.0.0.1:8765/auth/token",
                "client_id": "wardwatch-probe",
                "client_secret": "${env:EPR_CLIENT_SECRET}",
            },
        }
    )
}
SITES = [SiteConfig(name="ward-7", timezone="Europe/London")]
PATIENTS = [TestPatientConfig(identifier="https://testbed.wardwatch.example/mrn|MRN000001")]


def wf(steps: list[dict[str, Any]], **fields: Any) -> WorkflowConfig:
    return WorkflowConfig.model_validate({"name": "w", "target": "testbed", "steps": steps, **fields})


def error_locs(model: type[pydantic.BaseModel], data: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    return [error["loc"] for error in caught.value.errors()]


def test_target_normalises_base_url_and_keeps_secret_out_of_repr():
    target = TARGETS["testbed"]
    assert target.base_url == "http://127.0.0.1:8765/fhir"
    assert isinstance(target.auth, OAuth2ClientCredentialsConfig)
    assert "EPR_CLIENT_SECRET" not in repr(target)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"base_url": "ftp://x"}, ("base_url",)),
        ({"base_url": "http://x", "unknown": 1}, ("unknown",)),
        ({"base_url": "http://x", "auth": {"type": "kerberos"}}, ("auth",)),
        ({"base_url": "http://x", "auth": {"type": "bearer"}}, ("auth", "bearer", "token")),
        ({"base_url": "http://x", "auth": {"type": "bearer", "token": "${env:}"}}, ("auth", "bearer", "token")),
        ({"base_url": "http://x", "auth": {"type": "basic", "username": "u", "password": "${vault:x}"}}, ("auth", "basic", "password")),
        ({"base_url": "http://x", "headers": {"X": "{{ site"}}, ("headers",)),
        ({"base_url": "http://x", "tls": {"client_key": "k.pem"}}, ("tls",)),
        (
            {"base_url": "http://x", "auth": {"type": "oauth2_client_credentials", "token_url": "/token", "client_id": "c", "client_secret": "s"}},
            ("auth", "oauth2_client_credentials", "token_url"),
        ),
    ],
)
def test_target_schema_errors(data, loc):
    assert loc in error_locs(TargetConfig, data)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"name": "ward 7", "timezone": "Europe/London"}, ("name",)),
        ({"name": "ward-7", "timezone": "Europe/Londn"}, ("timezone",)),
        ({"name": "ward-7", "timezone": "UTC", "tz": "x"}, ("tz",)),
    ],
)
def test_site_schema_errors(data, loc):
    assert loc in error_locs(SiteConfig, data)


@pytest.mark.parametrize("identifier", ["MRN000001", "|MRN1", "sys|", "a|b|c"])
def test_patient_identifier_needs_system_and_value(identifier):
    assert ("identifier",) in error_locs(TestPatientConfig, {"identifier": identifier})


@pytest.mark.parametrize(
    ("step", "loc"),
    [
        ({"name": "s", "path": "Patient"}, ("steps", 0, "path")),
        ({"name": "s", "path": "/Patient?x=1"}, ("steps", 0, "path")),
        ({"name": "s", "path": "/Patient/{{ id"}, ("steps", 0, "path")),
        ({"name": "s", "path": "/x", "method": "FETCH"}, ("steps", 0, "method")),
        ({"name": "s", "path": "/x", "assert": [{"path": "$.a"}]}, ("steps", 0, "assert", 0)),
        ({"name": "s", "path": "/x", "assert": [{"path": "$.a", "exists": True, "count_gte": 1}]}, ("steps", 0, "assert", 0)),
        ({"name": "s", "path": "/x", "assert": [{"path": "a", "exists": True}]}, ("steps", 0, "assert", 0, "path")),
        ({"name": "s", "path": "/x", "extract": {"site": "$.id"}}, ("steps", 0, "extract")),
        ({"name": "s", "path": "/x", "extract": {"id": "$..id"}}, ("steps", 0, "extract")),
        ({"name": "s", "path": "/x", "expect_status": [700]}, ("steps", 0, "expect_status")),
        ({"name": "s", "path": "/x", "follow_next_pages": -1}, ("steps", 0, "follow_next_pages")),
        ({"name": "s", "path": "/x", "json": {"a": "{{ b c }}"}}, ("steps", 0, "json")),
        ({"name": "s", "path": "/x", "timeout": 3}, ("steps", 0, "timeout")),
    ],
)
def test_step_schema_errors(step, loc):
    assert loc in error_locs(WorkflowConfig, {"name": "w", "target": "t", "steps": [step]})


@pytest.mark.parametrize(
    "fields",
    [
        {"interval_s": 0},
        {"interval_s": 10, "jitter_s": 10},
        {"timeout_s": 1, "step_timeout_s": 2},
        {"connection": "pooled"},
        {"on_error": "retry"},
        {"steps": []},
    ],
)
def test_workflow_schema_errors(fields):
    data = {"name": "w", "target": "t", "steps": [{"name": "s", "path": "/x"}], **fields}
    with pytest.raises(pydantic.ValidationError):
        WorkflowConfig.model_validate(data)


def test_duplicate_step_names_are_rejected():
    with pytest.raises(pydantic.ValidationError, match="used twice"):
        wf([{"name": "s", "path": "/x"}, {"name": "s", "path": "/y"}])


def test_step_defaults_and_aliases():
    step = wf([{"name": "s", "path": "/x", "json": {"a": 1}, "assert": [{"path": "$.a", "equals": None}], "expect_status": 201}]).steps[0]
    assert step.method == "GET" and step.json_body == {"a": 1} and step.expect_status == (201,)
    assert step.assertions[0].kind == "equals"


def test_a_consistent_config_has_no_problems():
    steps = [
        {"name": "find", "path": "/Patient", "query": {"identifier": "{{ patient_identifier }}"}, "extract": {"pid": "$.entry[0].resource.id"}},
        {"name": "read", "path": "/Patient/{{ pid }}", "headers": {"X-Run": "{{ run_id }}"}, "json": {"s": ["{{ site }}"]}},
    ]
    assert check_references(TARGETS, SITES, PATIENTS, [wf(steps, sites=["ward-7"])]) == []


def test_every_reference_problem_is_reported_with_its_location():
    workflows = [
        wf([{"name": "a", "path": "/x"}]),
        WorkflowConfig.model_validate(
            {
                "name": "w",
                "target": "elsewhere",
                "sites": ["ward-7", "ward-9"],
                "steps": [
                    {"name": "a", "path": "/Patient/{{ pid }}", "extract": {"pid": "$.id"}},
                    {"name": "b", "path": "/x", "query": {"q": "{{ later }}"}, "json": {"v": ["{{ patient_mrn }}"]}},
                    {"name": "c", "path": "/x/{{ later }}", "extract": {"later": "$.x"}},
                ],
            }
        ),
    ]
    targets = {"t": TARGETS["testbed"].model_copy(update={"headers": {"X-P": "{{ patient_mrn }}"}})}
    problems = check_references(targets, SITES + SITES, [], workflows)
    assert [p.loc for p in problems] == [
        ("sites", 1, "name"),
        ("targets", "t", "headers", "X-P"),
        ("workflows", 0, "target"),
        ("workflows", 1, "name"),
        ("workflows", 1, "target"),
        ("workflows", 1, "sites", 1),
        ("workflows", 1, "steps", 0, "path"),
        ("workflows", 1, "steps", 1, "query", "q"),
        ("workflows", 1, "steps", 1, "json", "v", 0),
        ("workflows", 1, "steps", 2, "path"),
    ]
    assert all(isinstance(p, ConfigProblem) and p.message for p in problems)
    assert "needs a test patient" in problems[-2].message
    assert "used before any step extracts it" in problems[-1].message


def test_secrets_are_checked_against_the_environment_given():
    assert check_references(TARGETS, SITES, PATIENTS, [], environ={"EPR_CLIENT_SECRET": "s"}) == []
    (problem,) = check_references(TARGETS, SITES, PATIENTS, [], environ={})
    assert problem.loc == ("targets", "testbed", "auth", "client_secret")
    assert "EPR_CLIENT_SECRET" in problem.message


def test_secret_references_resolve_from_env_and_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert resolve_secret("${env:A}", {"A": "x"}) == "x"
    assert resolve_secret(f"${{file:{secret_file}}}", {}) == "from-file"
    assert resolve_secret("literal", {}) == "literal"
    with pytest.raises(SecretResolutionError, match="B is not set"):
        resolve_secret("${env:B}", {})
    with pytest.raises(SecretResolutionError, match="cannot be read"):
        resolve_secret(f"${{file:{tmp_path / 'missing'}}}", {})


def test_worst_case_load_is_checked_against_the_stated_maximum():
    workflows = [
        wf([{"name": "a", "path": "/x", "follow_next_pages": 2}, {"name": "b", "path": "/y"}], interval_s=30),  # 4 per run
        WorkflowConfig.model_validate(
            {
                "name": "n1", "target": "testbed", "sites": ["ward-7"], "interval_s": 60,
                "steps": [
                    {"name": "list", "path": "/E", "extract": {"refs": "$.entry[*].id"}},
                    {"name": "each", "path": "/O", "for_each": "refs", "max_items": 9, "query": {"p": "{{ item }}"}},
                ],
            }
        ),
    ]
    sites = SITES + [SiteConfig(name="clinic", timezone="Europe/London")]
    assert [requests_per_run(w) for w in workflows] == [4, 10]
    assert requests_per_min("testbed", workflows, sites) == pytest.approx(4 * 2 * 2 + 10)
    targets = {"testbed": TARGETS["testbed"].model_copy(update={"max_requests_per_min": 25.0})}
    (problem,) = check_references(targets, sites, PATIENTS, workflows)
    assert problem.loc == ("targets", "testbed", "max_requests_per_min")
    assert "26.0 requests per minute" in problem.message
    targets = {"testbed": TARGETS["testbed"].model_copy(update={"max_requests_per_min": 26.0})}
    assert check_references(targets, sites, PATIENTS, workflows) == []


def test_cleanup_requests_count_against_the_load_budget():
    steps = [{"name": "chart", "method": "POST", "path": "/Observation", "json": {"a": 1}, "extract": {"obs": "$.id"}}]
    cleanup = [{"name": "remove", "method": "DELETE", "path": "/Observation/{{ obs }}", "expect_status": [200, 204]}]
    workflow = wf(steps, cleanup=cleanup, interval_s=60)
    assert requests_per_run(workflow) == 2
    assert requests_per_min("testbed", [workflow], SITES) == pytest.approx(2.0)
    targets = {"testbed": TARGETS["testbed"].model_copy(update={"max_requests_per_min": 1.5})}
    (problem,) = check_references(targets, SITES, PATIENTS, [workflow])
    assert problem.loc == ("targets", "testbed", "max_requests_per_min")
    assert "2.0 requests per minute" in problem.message
    targets = {"testbed": TARGETS["testbed"].model_copy(update={"max_requests_per_min": 2.0})}
    assert check_references(targets, SITES, PATIENTS, [workflow]) == []


def test_cleanup_steps_see_every_extracted_variable_and_are_checked_like_steps():
    workflow = wf(
        [{"name": "chart", "method": "POST", "path": "/Observation", "extract": {"obs": "$.id"}}],
        cleanup=[
            {"name": "remove", "method": "DELETE", "path": "/Observation/{{ obs }}", "extract": {"gone": "$.id"}},
            {"name": "again", "method": "DELETE", "path": "/Observation/{{ gone }}/{{ nowhere }}"},
        ],
    )
    (problem,) = check_references(TARGETS, SITES, PATIENTS, [workflow])
    assert problem.loc == ("workflows", 0, "cleanup", 1, "path")
    assert "'nowhere'" in problem.message
    assert wf([{"name": "a", "path": "/x"}]).cleanup == ()
    with pytest.raises(pydantic.ValidationError, match="step name 'a' is used twice"):
        wf([{"name": "a", "path": "/x"}], cleanup=[{"name": "a", "method": "DELETE", "path": "/x"}])
    assert ("cleanup", 0, "path") in error_locs(
        WorkflowConfig, {"name": "w", "target": "t", "steps": [{"name": "a", "path": "/x"}], "cleanup": [{"name": "b", "path": "x"}]}
    )


def test_item_is_known_only_inside_for_each_and_its_list_must_exist_first():
    workflows = [
        WorkflowConfig.model_validate(
            {
                "name": "w", "target": "testbed",
                "steps": [
                    {"name": "each", "path": "/O", "for_each": "refs", "query": {"p": "{{ item }}"}},
                    {"name": "after", "path": "/O/{{ item }}"},
                ],
            }
        )
    ]
    problems = check_references(TARGETS, SITES, PATIENTS, workflows)
    assert [p.loc for p in problems] == [("workflows", 0, "steps", 0, "for_each"), ("workflows", 0, "steps", 1, "path")]


def test_for_each_cannot_extract_or_page():
    with pytest.raises(pydantic.ValidationError, match="for_each"):
        wf([{"name": "e", "path": "/x", "for_each": "v", "extract": {"a": "$.id"}}])


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"


@pytest.mark.parametrize("path", [EXAMPLES.parent / "testbed.yaml", EXAMPLES / "fhir-r4-template.yaml",
                                  EXAMPLES / "browser-template.yaml"])
def test_example_workflow_files_are_valid_and_consistent(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {"targets", "sites", "patients", "workflows"} <= set(raw)
    targets = {key: TargetConfig.model_validate(value) for key, value in raw["targets"].items()}
    sites = [SiteConfig.model_validate(value) for value in raw["sites"]]
    patients = [TestPatientConfig.model_validate(value) for value in raw["patients"]]
    workflows = [pydantic.TypeAdapter(AnyWorkflowConfig).validate_python(value) for value in raw["workflows"]]
    assert check_references(targets, sites, patients, workflows) == []


def test_environment_checks_name_missing_tls_files_and_secrets(tmp_path):
    raw = yaml.safe_load((EXAMPLES / "fhir-r4-template.yaml").read_text(encoding="utf-8"))
    raw["targets"]["epr"]["tls"] = {"ca_bundle": str(tmp_path / "ca.pem")}
    targets = {key: TargetConfig.model_validate(value) for key, value in raw["targets"].items()}
    problems = check_references(targets, [], [], [], environ={})
    assert [p.loc for p in problems] == [("targets", "epr", "auth", "private_key"), ("targets", "epr", "tls", "ca_bundle")]
    assert "wardwatch-probe-key.pem cannot be read" in problems[0].message
    (tmp_path / "ca.pem").write_text("x")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    auth = targets["epr"].auth.model_copy(update={"private_key": pydantic.SecretStr("${env:EPR_PRIVATE_KEY}")})
    targets = {"epr": targets["epr"].model_copy(update={"auth": auth})}
    assert check_references(targets, [], [], [], environ={"EPR_PRIVATE_KEY": pem.decode()}) == []
    (problem,) = check_references(targets, [], [], [], environ={"EPR_PRIVATE_KEY": "not a key"})
    assert problem.message == "the private key is not a PEM private key without a passphrase"


def test_assertion_values_are_templates_checked_like_any_other():
    workflow = wf([
        {"name": "find", "path": "/Patient", "extract": {"pid": "$.entry[0].resource.id"},
         "assert": [{"path": "$.entry[0].resource.id", "exists": True}]},
        {"name": "vitals", "path": "/Observation", "assert": [
            {"path": "$.entry[0].resource.subject.reference", "equals": "Patient/{{ pid }}"},
            {"path": "$.entry[0].resource.encounter", "equals": {"reference": "Encounter/{{ enc }}"}},
        ]},
    ])
    (problem,) = check_references(TARGETS, SITES, PATIENTS, [workflow])
    assert problem.loc == ("workflows", 0, "steps", 1, "assert", 1, "equals", "reference")
    assert "'enc'" in problem.message
    assert ("assert", 0, "equals") in error_locs(StepConfig, {"name": "s", "path": "/x", "assert": [{"path": "$.a", "equals": "{{ broken"}]})
