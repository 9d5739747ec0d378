"""Sign-in as real EPRs do it: ``auth: none``, and SMART Backend Services against the testbed's
token endpoint, which verifies the client assertion's signature against the client's JWKS."""

from __future__ import annotations

import json
import logging
import random
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from collector.auth import TokenCache
from collector.config import (
    NoAuthConfig,
    SiteConfig,
    SmartBackendServicesConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    check_references,
)
from collector.runner import run_workflow
from store import schema
from testbed import MRN_SYSTEM, TestbedServer, scenario_for_tests

SITE = SiteConfig(name="ward-7", timezone="Europe/London")
PATIENTS = [TestPatientConfig(identifier=f"{MRN_SYSTEM}|MRN000001")]
WORKFLOW = WorkflowConfig.model_validate({
    "name": "open", "target": "epr",
    "steps": [
        {"name": "find", "path": "/Patient", "query": {"identifier": "{{ patient_identifier }}"},
         "assert": [{"path": "$.total", "equals": 1}], "extract": {"pid": "$.entry[0].resource.id"}},
        {"name": "read", "path": "/Patient/{{ pid }}", "assert": [{"path": "$.name[0].family", "exists": True}]},
    ],
})
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def key_body(key: Any) -> str:
    """A line from the middle of the key's PEM: what a leak would contain."""
    return pem(key).splitlines()[5]


JWKS = {"keys": [
    {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "probe-rsa", "alg": "RS384"},
    {**json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key())), "kid": "probe-ec", "alg": "ES384"},
]}


@pytest.fixture(scope="module")
def epr() -> Iterator[TestbedServer]:
    with TestbedServer(scenario_for_tests(0.0, jwks=JWKS, token_lifetime_s=100.0), patients=5) as server:
        yield server


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, key in (("rsa", RSA_KEY), ("ec", EC_KEY), ("stranger", STRANGER_KEY)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pem(key))
    return files


def smart_target(epr: TestbedServer, key_file: Path, **auth: Any) -> TargetConfig:
    return TargetConfig.model_validate({
        "base_url": epr.fhir_url,
        "auth": {"type": "smart_backend_services", "client_id": "wardwatch-probe",
                 "private_key": f"${{file:{key_file}}}", "scope": "system/Patient.rs", **auth},
    })


def run(target: TargetConfig, tracer: Any, cache: TokenCache, environ: dict[str, str] | None = None) -> Any:
    return run_workflow(WORKFLOW, target, SITE, tracer=tracer, patients=PATIENTS, environ=environ or {},
                        rng=random.Random(3), token_cache=cache, target_name="epr")


def auth_spans(exporter: Any) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_AUTH]


@pytest.mark.parametrize("auth", ["none", {"type": "none"}, None])
def test_auth_none_is_the_plain_word_or_the_typed_form(auth: Any) -> None:
    data = {"base_url": "https://epr.example/fhir"} | ({} if auth is None else {"auth": auth})
    assert TargetConfig.model_validate(data).auth == NoAuthConfig()


def test_an_unknown_auth_word_names_the_kinds() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        TargetConfig.model_validate({"base_url": "https://epr.example/fhir", "auth": "nobody"})
    assert "write auth: none, or a mapping whose type is oauth2_client_credentials, smart_backend_services" in str(caught.value)


def test_smart_backend_services_signs_in_and_the_token_is_cached_until_expiry(epr, key_files, tracer, span_exporter):
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    target = smart_target(epr, key_files["rsa"], key_id="probe-rsa")  # no token_url: discovered
    first = run(target, tracer, cache)
    assert first.status == "ok", first.message
    (span,) = auth_spans(span_exporter)
    assert span.attributes[schema.URL_TEMPLATE] == "/auth/token"
    assert span.attributes[schema.HTTP_RESPONSE_STATUS_CODE] == 200
    now[0] += 80.0  # within the 100 s lifetime less 10 s: the cached token is used
    assert run(target, tracer, cache).status == "ok"
    assert len(auth_spans(span_exporter)) == 1
    now[0] += 15.0  # past the refresh point: a new assertion, a new token
    assert run(target, tracer, cache).status == "ok"
    assert len(auth_spans(span_exporter)) == 2


def test_es384_with_the_token_url_given(epr, key_files, tracer):
    target = smart_target(epr, key_files["ec"], algorithm="ES384", token_url=epr.token_url)
    result = run(target, tracer, TokenCache())
    assert result.status == "ok", result.message


def test_a_wrong_key_is_an_auth_failure_and_no_secret_leaks(epr, key_files, tracer, span_exporter, caplog):
    caplog.set_level(logging.DEBUG)
    result = run(smart_target(epr, key_files["stranger"]), tracer, TokenCache())
    assert (result.status, result.error_type) == ("failed", "auth")
    assert "401" in result.message
    (span,) = auth_spans(span_exporter)
    assert span.attributes[schema.ERROR_TYPE] == "auth"
    leaks = [key_body(STRANGER_KEY), "BEGIN PRIVATE KEY", str(key_files["stranger"].read_text())[40:80]]
    recorded = [result.message or "", caplog.text]
    for recorded_span in span_exporter.get_finished_spans():
        recorded.append(json.dumps(dict(recorded_span.attributes), default=str))
        recorded.append(recorded_span.status.description or "")
        recorded += [json.dumps(dict(event.attributes or {}), default=str) for event in recorded_span.events]
    for leak in leaks:
        assert not any(leak in text for text in recorded), leak


def test_a_key_that_does_not_suit_the_algorithm_is_named_without_quoting_it(epr, key_files, tracer):
    result = run(smart_target(epr, key_files["ec"], algorithm="RS384"), tracer, TokenCache())
    assert (result.status, result.error_type) == ("failed", "auth")
    assert "RS384 needs an RSA key" in result.message and key_body(EC_KEY) not in result.message
    targets = {"epr": smart_target(epr, key_files["ec"])}
    (problem,) = check_references(targets, [SITE], PATIENTS, [], environ={})
    assert problem.loc == ("targets", "epr", "auth", "private_key")
    assert "RS384 needs an RSA key" in problem.message
    assert check_references({"epr": smart_target(epr, key_files["rsa"])}, [SITE], PATIENTS, [], environ={}) == []


def test_the_key_may_come_from_the_environment(epr, tracer):
    target = TargetConfig.model_validate({
        "base_url": epr.fhir_url,
        "auth": {"type": "smart_backend_services", "client_id": "wardwatch-probe",
                 "private_key": "${env:EPR_PRIVATE_KEY}", "scope": "system/Patient.rs"},
    })
    assert run(target, tracer, TokenCache(), {"EPR_PRIVATE_KEY": pem(RSA_KEY)}).status == "ok"
    missing = run(target, tracer, TokenCache(), {})
    assert (missing.status, missing.error_type) == ("failed", "auth")
    assert "EPR_PRIVATE_KEY is not set" in missing.message


@pytest.mark.parametrize("value", ["${nonsense}", pem(RSA_KEY), "probe-key.pem"])
def test_the_private_key_is_given_by_reference_only(value):
    with pytest.raises(pydantic.ValidationError, match=r"by reference, \$\{file:PATH\}") as caught:
        SmartBackendServicesConfig.model_validate({
            "type": "smart_backend_services", "client_id": "c", "private_key": value, "scope": "s"})
    assert key_body(RSA_KEY) not in str(caught.value)


def test_no_smart_configuration_is_an_auth_failure_naming_it(mini_url, key_files, tracer):
    target = TargetConfig.model_validate({
        "base_url": f"{mini_url}/fhir",
        "auth": {"type": "smart_backend_services", "client_id": "c",
                 "private_key": f"${{file:{key_files['rsa']}}}", "scope": "system/Patient.rs"},
    })
    result = run(target, tracer, TokenCache())
    assert (result.status, result.error_type) == ("failed", "auth")
    assert ".well-known/smart-configuration answered 404" in result.message


def test_the_readme_commands_make_a_key_and_a_jwks_the_testbed_accepts(tmp_path, tracer):
    """The README's two commands (openssl for the key, Python for the JWKS) give a key pair
    that signs in against a token endpoint holding that JWKS."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    openssl_line = next(line.strip() for line in readme.splitlines() if line.strip().startswith("openssl genpkey"))
    python_line = next(line.strip() for line in readme.splitlines() if line.strip().startswith(".venv/bin/python -c"))
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    subprocess.run(shlex.split(openssl_line), cwd=tmp_path, check=True, capture_output=True)
    code = shlex.split(python_line)[2]
    jwks = json.loads(subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True,
                                     text=True).stdout)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", jwks["keys"][0]["n"])
    with TestbedServer(scenario_for_tests(0.0, jwks=jwks), patients=2) as server:
        target = TargetConfig.model_validate({
            "base_url": server.fhir_url,
            "auth": {"type": "smart_backend_services", "client_id": "wardwatch-probe", "key_id": "wardwatch-probe-1",
                     "private_key": f"${{file:{tmp_path / 'probe-key.pem'}}}", "scope": "system/Patient.rs"},
        })
        result = run(target, tracer, TokenCache())
    assert result.status == "ok", result.message


def test_a_probe_without_a_smart_target_never_loads_the_jwt_library():
    """PyJWT with cryptography costs a process about 15 MB: loaded only when a SMART target
    signs in (or the testbed verifies an assertion)."""
    code = ("import sys, collector, collector.auth, collector.runner, wardwatch.cli, wardwatch.wiring, testbed\n"
            "print(' '.join(m for m in ('jwt', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == []
