"""The FHIR R4 template runs unchanged against the testbed: only the values marked CHANGE are
replaced (base URL, client id, private key, load budget, sites, test patients), and every run of
every workflow is ok, with sorted, paged searches and an assertion on every step."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from collector.auth import TokenCache
from collector.config import (
    SiteConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    check_references,
)
from collector.runner import run_workflow
from store import schema
from testbed import DEFAULT_CLIENT_ID, DEFAULT_SEED, MRN_SYSTEM, TestbedServer, generate_dataset, scenario_for_tests

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "workflows" / "fhir-r4-template.yaml"
PATIENT_COUNT = 20
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "probe", "alg": "RS384"}]}


def full_record_patients(count: int = 2) -> list[str]:
    """Testbed patients with entries in every section the record screen opens (what the
    template asks a trust to choose), as ``system|value`` identifiers."""
    dataset = generate_dataset(DEFAULT_SEED, PATIENT_COUNT)
    chosen = []
    for patient in dataset.of_type("Patient"):
        pid = patient["id"]
        labs = [o for o in dataset.for_patient("Observation", pid) if o["category"][0]["coding"][0]["code"] == "laboratory"]
        active = [m for m in dataset.for_patient("MedicationRequest", pid) if m["status"] == "active"]
        if labs and active and dataset.for_patient("AllergyIntolerance", pid):
            chosen.append(f"{MRN_SYSTEM}|{patient['identifier'][0]['value']}")
    assert len(chosen) >= count
    return chosen[:count]


def substitute_change_values(text: str, values: dict[str, str], patients: list[str]) -> str:
    """Replace the value on each line marked ``# CHANGE`` (by its key, from ``values``), and the
    test patients listed under ``patients:`` (whose line is marked CHANGE); nothing else."""
    out: list[str] = []
    in_patients = False
    for line in text.splitlines():
        if in_patients and line.lstrip().startswith("- identifier:"):
            continue
        in_patients = False
        if "# CHANGE" in line:
            match = re.match(r"^(\s*(?:- )?)([A-Za-z_]+):(.*?)(\s+# CHANGE.*)?$", line)
            assert match, line
            indent, key, _old, _comment = match.groups()
            if key == "patients":
                out.append(line)
                out += [f"  - identifier: {identifier}" for identifier in patients]
                in_patients = True
                continue
            if key in values:
                line = f"{indent}{key}: {values[key]}"
        out.append(line)
    return "\n".join(out) + "\n"


def changed_lines(before: str, after: str) -> set[str]:
    return set(before.splitlines()) - set(after.splitlines())


@pytest.fixture(scope="module")
def epr() -> Iterator[TestbedServer]:
    with TestbedServer(scenario_for_tests(0.0, jwks=JWKS), patients=PATIENT_COUNT) as server:
        yield server


@pytest.fixture(scope="module")
def template_for_testbed(epr: TestbedServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template")
    key_file = directory / "probe-key.pem"
    key_file.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    original = TEMPLATE.read_text(encoding="utf-8")
    text = substitute_change_values(
        original,
        {"base_url": epr.fhir_url, "client_id": DEFAULT_CLIENT_ID, "private_key": f"${{file:{key_file}}}",
         "max_requests_per_min": "30"},
        full_record_patients(),
    )
    # only lines marked CHANGE (and the patient list) differ
    assert all("# CHANGE" in line or "- identifier:" in line for line in changed_lines(original, text))
    path = directory / "wardwatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def sections(path: Path) -> tuple[dict[str, TargetConfig], list[SiteConfig], list[TestPatientConfig], list[WorkflowConfig]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return (
        {name: TargetConfig.model_validate(value) for name, value in raw["targets"].items()},
        [SiteConfig.model_validate(value) for value in raw["sites"]],
        [TestPatientConfig.model_validate(value) for value in raw["patients"]],
        [WorkflowConfig.model_validate(value) for value in raw["workflows"]],
    )


def test_the_template_asks_what_a_record_screen_asks_and_asserts_every_step():
    _targets, _sites, _patients, workflows = sections(TEMPLATE)
    for workflow in workflows:
        for step in workflow.steps:
            assert step.assertions or step.expect_status, f"{workflow.name}.{step.name} asserts nothing"
            if step.method == "GET" and not step.path.startswith("/Patient"):
                assert "_count" in step.query, f"{workflow.name}.{step.name} leaves the page size to the server"
    record = next(w for w in workflows if w.name == "open-patient-record")
    sorted_steps = {s.name for s in record.steps if s.query.get("_sort") == "-date"}
    assert {"encounters", "vital-signs", "results", "notes"} <= sorted_steps
    charting = next(w for w in workflows if w.name == "chart-observation")
    assert [(s.method, s.path) for s in charting.cleanup] == [("DELETE", "/Observation/{{ observation_id }}")]


def test_the_template_runs_unchanged_against_the_testbed(template_for_testbed, epr, tracer, span_exporter):
    targets, sites, patients, workflows = sections(template_for_testbed)
    assert check_references(targets, sites, patients, workflows, environ={}) == []
    cache = TokenCache()
    rng = random.Random(7)
    results = []
    for workflow in workflows:
        for site in sites:
            for patient in patients:
                results.append(run_workflow(
                    workflow.model_copy(update={"think_time_s": 0.0}), targets["epr"], site, tracer=tracer,
                    patients=[patient], environ={}, rng=rng, token_cache=cache, target_name="epr"))
    assert [(r.workflow, r.status, r.message) for r in results if r.status != "ok"] == []
    assert len(results) == len(workflows) * len(sites) * len(patients)
    steps = [s for s in span_exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_STEP]
    queries = {s.attributes[schema.ATTR_STEP]: s.attributes.get(schema.URL_QUERY, "") for s in steps}
    assert "_sort=REDACTED" in queries["vital-signs"] and "_count=REDACTED" in queries["medications"]
    auth = [s for s in span_exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_AUTH]
    assert len(auth) == 1  # SMART Backend Services: one signed assertion, one token, cached


def test_a_typo_in_a_search_parameter_fails_the_run_instead_of_passing_empty(template_for_testbed, tracer):
    targets, sites, patients, workflows = sections(template_for_testbed)
    record = next(w for w in workflows if w.name == "open-patient-record")
    steps = [s.model_copy(update={"query": {("categroy" if k == "category" else k): v for k, v in s.query.items()}})
             if s.name == "vital-signs" else s for s in record.steps]
    typo = record.model_copy(update={"steps": tuple(steps), "think_time_s": 0.0})
    result = run_workflow(typo, targets["epr"], sites[0], tracer=tracer, patients=patients, environ={},
                          rng=random.Random(1), token_cache=TokenCache(), target_name="epr")
    assert (result.status, result.error_type) == ("failed", "assertion")
    assert "vital-signs" in [s.name for s in result.steps if s.status != "ok"]


def test_the_charting_workflow_cleans_up_what_it_wrote(template_for_testbed, epr, tracer):
    """The cleanup step, run as a step of its own, deletes the charted Observation on the testbed."""
    targets, sites, patients, workflows = sections(template_for_testbed)
    charting = next(w for w in workflows if w.name == "chart-observation")
    (cleanup,) = charting.cleanup
    as_steps = charting.model_copy(update={"steps": (*charting.steps, cleanup), "cleanup": (), "think_time_s": 0.0})
    dataset = epr.app.state.testbed.dataset
    before = dataset.counts()["Observation"]
    result = run_workflow(as_steps, targets["epr"], sites[0], tracer=tracer, patients=patients[:1], environ={},
                          rng=random.Random(2), token_cache=TokenCache(), target_name="epr")
    assert result.status == "ok", result.message
    assert dataset.counts()["Observation"] == before
    assert [s.name for s in result.steps][-1] == "delete-heart-rate"


def test_secrets_never_reach_spans(template_for_testbed, span_exporter, tracer):
    targets, sites, patients, workflows = sections(template_for_testbed)
    run_workflow(workflows[0].model_copy(update={"think_time_s": 0.0}), targets["epr"], sites[0], tracer=tracer,
                 patients=patients, environ={}, rng=random.Random(3), token_cache=TokenCache(), target_name="epr")
    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    recorded = " ".join(json.dumps(dict(s.attributes), default=str) for s in span_exporter.get_finished_spans())
    assert pem.splitlines()[3] not in recorded and "PRIVATE KEY" not in recorded
    assert "MRN0000" not in recorded  # the test patients' identifiers are redacted too


