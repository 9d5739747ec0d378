"""TLS: the handshake is its own phase, the target's CA bundle is honoured, a bad certificate is
a ``tls`` failure. The certificate is made for the test by the openssl command line tool."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.config import SiteConfig, TargetConfig, WorkflowConfig
from collector.runner import run_workflow
from store import schema

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

SITE = SiteConfig(name="ward-7", timezone="Europe/London")
WORKFLOW = WorkflowConfig.model_validate(
    {"name": "w", "target": "t", "connection": "fresh", "steps": [{"name": "a", "path": "/delay"}, {"name": "b", "path": "/delay"}]}
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_url(serve_app: Any, mini_app: Any, certificate: tuple[Path, Path]) -> Any:
    cert, key = certificate
    with serve_app(mini_app, certfile=cert, keyfile=key) as url:
        yield url.replace("127.0.0.1", "localhost")


def run(target: TargetConfig, tracer: Any) -> Any:
    return run_workflow(WORKFLOW, target, SITE, tracer=tracer, environ={}, rng=random.Random(1))


def test_tls_is_its_own_phase_with_the_target_ca_bundle(https_url, certificate, tracer, span_exporter):
    target = TargetConfig.model_validate({"base_url": f"{https_url}/fhir", "tls": {"ca_bundle": str(certificate[0])}})
    result = run(target, tracer)
    assert result.status == "ok", result.message
    for step in result.steps:
        (timing,) = step.requests
        assert timing.dns_ns > 0 and timing.connect_ns > 0 and timing.tls_ns > 0
    spans = [s for s in span_exporter.get_finished_spans() if s.attributes[schema.ATTR_SPAN_TYPE] == schema.SPAN_TYPE_STEP]
    assert all(s.attributes[schema.ATTR_TLS_S] > 0 for s in spans)
    assert all(s.attributes[schema.SERVER_PORT] == int(https_url.rsplit(":", 1)[1]) for s in spans)


def test_an_untrusted_certificate_is_a_tls_failure(https_url, tracer):
    result = run(TargetConfig(base_url=f"{https_url}/fhir"), tracer)
    assert (result.status, result.error_type) == ("failed", "tls")
    assert result.steps[0].requests[0].failed_phase == "tls"


def test_verification_can_be_switched_off_for_a_test_rig(https_url, tracer):
    result = run(TargetConfig.model_validate({"base_url": f"{https_url}/fhir", "tls": {"verify": False}}), tracer)
    assert result.status == "ok", result.message
