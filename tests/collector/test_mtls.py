"""Mutual TLS: the probe presents a client certificate (given by file reference) to a loopback
server that requires one signed by a test CA, generated here with cryptography."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import random
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.config import SiteConfig, TargetConfig, WorkflowConfig, check_references
from collector.runner import run_workflow

SITE = SiteConfig(name="ward-7", timezone="Europe/London")
WORKFLOW = WorkflowConfig.model_validate({"name": "w", "target": "t", "steps": [{"name": "a", "path": "/delay"}]})


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool = False,
                 server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, certificate: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate and a client certificate it signed, and a stranger's."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, stranger_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Wardwatch test CA", ca_key, None, ca=True)
    server_key, client_key, stranger_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    files = {"ca": _write(directory, "ca", ca, ca_key)[0]}
    files["server_cert"], files["server_key"] = _write(
        directory, "server", _certificate("127.0.0.1", server_key, ("Wardwatch test CA", ca_key), server=True), server_key)
    files["client_cert"], files["client_key"] = _write(
        directory, "client", _certificate("wardwatch-probe", client_key, ("Wardwatch test CA", ca_key)), client_key)
    files["stranger_cert"], files["stranger_key"] = _write(
        directory, "stranger", _certificate("someone", stranger_key, ("Another CA", stranger_ca_key)), stranger_key)
    return files


@pytest.fixture(scope="module")
def mtls_url(pki: dict[str, Path]) -> Iterator[str]:
    from tests.collector.conftest import mini_fhir_app

    config = uvicorn.Config(
        mini_fhir_app(), host="127.0.0.1", port=0, log_level="critical", lifespan="off", ws="none",
        ssl_certfile=str(pki["server_cert"]), ssl_keyfile=str(pki["server_key"]),
        ssl_ca_certs=str(pki["ca"]), ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "mTLS server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def target(url: str, pki: dict[str, Path], cert: str | None, key: str | None) -> TargetConfig:
    tls: dict[str, Any] = {"ca_bundle": f"${{file:{pki['ca']}}}"}
    if cert is not None:
        tls["client_cert"] = f"${{file:{pki[cert]}}}"
    if key is not None:
        tls["client_key"] = f"${{file:{pki[key]}}}"
    return TargetConfig.model_validate({"base_url": f"{url}/fhir", "tls": tls})


def run(t: TargetConfig, tracer: Any) -> Any:
    return run_workflow(WORKFLOW, t, SITE, tracer=tracer, environ={}, rng=random.Random(1))


def test_the_client_certificate_signed_by_the_ca_opens_the_door(mtls_url, pki, tracer):
    t = target(mtls_url, pki, "client_cert", "client_key")
    assert t.tls.client_key == str(pki["client_key"])  # a file reference is kept as its path
    result = run(t, tracer)
    assert result.status == "ok", result.message
    assert check_references({"t": t}, [SITE], [], [], environ={}) == []


@pytest.mark.parametrize(("cert", "key"), [(None, None), ("stranger_cert", "stranger_key")])
def test_without_an_accepted_client_certificate_the_run_fails_and_no_key_leaks(mtls_url, pki, tracer, span_exporter,
                                                                                caplog, cert, key):
    caplog.set_level(logging.DEBUG)
    result = run(target(mtls_url, pki, cert, key), tracer)
    assert result.status == "failed"
    # TLS 1.3 finishes the client's handshake before the server checks its certificate: the
    # refusal arrives as a closed connection, where a TLS 1.2 server fails the handshake itself
    assert result.error_type in ("tls", "connect")
    key_line = pki["client_key"].read_text().splitlines()[2]
    texts = [result.message or "", caplog.text] + [str(dict(s.attributes)) for s in span_exporter.get_finished_spans()]
    assert not any(key_line in text or "PRIVATE KEY" in text for text in texts)


def test_tls_files_are_paths_or_file_references_only(pki):
    with pytest.raises(pydantic.ValidationError, match=r"give its path, or \$\{file:PATH\}"):
        TargetConfig.model_validate({"base_url": "https://x.example", "tls": {"client_key": "${env:KEY}"}})
    missing = TargetConfig.model_validate(
        {"base_url": "https://x.example", "tls": {"client_cert": "${file:/nonexistent/probe.pem}"}})
    (problem,) = check_references({"t": missing}, [SITE], [], [], environ={})
    assert problem.loc == ("targets", "t", "tls", "client_cert")
    assert "/nonexistent/probe.pem is not a readable file" in problem.message
