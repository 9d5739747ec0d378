"""SMART Backend Services at the testbed's token endpoint: a client assertion JWT is accepted only
when its signature verifies against the client's registered public keys (JWKS) and its claims are
those the SMART specification requires."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from testbed import DEFAULT_CLIENT_ID, TestbedServer, scenario_for_tests

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(public_key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    to_jwk = RSAAlgorithm.to_jwk if algorithm == "RS384" else ECAlgorithm.to_jwk
    return {**json.loads(to_jwk(public_key)), "kid": kid, "alg": algorithm, "use": "sig"}


JWKS = {"keys": [_jwk(RSA_KEY.public_key(), "rsa-1", "RS384"),
                 _jwk(EC_KEY.public_key(), "ec-1", "ES384")]}


@pytest.fixture(scope="module")
def smart_server() -> Iterator[TestbedServer]:
    with TestbedServer(scenario_for_tests(0.0, jwks=JWKS), patients=5) as server:
        yield server


def assertion(server: TestbedServer, *, key: Any = RSA_KEY, algorithm: str = "RS384",
              kid: str | None = "rsa-1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": DEFAULT_CLIENT_ID, "sub": DEFAULT_CLIENT_ID, "aud": server.token_url,
            "exp": now + 240, "jti": str(uuid.uuid4()), **claims}
    body = {name: value for name, value in body.items() if value is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def ask(server: TestbedServer, client_assertion: str, **form: str) -> httpx.Response:
    return httpx.post(server.token_url, data={
        "grant_type": "client_credentials", "scope": "system/Patient.rs",
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion, **form})


@pytest.mark.parametrize(("key", "algorithm", "kid"), [
    (RSA_KEY, "RS384", "rsa-1"), (EC_KEY, "ES384", "ec-1"), (RSA_KEY, "RS384", None)])
def test_a_signed_assertion_gets_a_token_that_opens_records(smart_server: TestbedServer, key: Any,
                                                            algorithm: str, kid: str | None) -> None:
    response = ask(smart_server, assertion(smart_server, key=key, algorithm=algorithm, kid=kid))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "system/Patient.rs"
    read = httpx.get(f"{smart_server.fhir_url}/Patient/pat-0001",
                     headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200


@pytest.mark.parametrize(("build", "reason"), [
    (lambda s: assertion(s, key=OTHER_KEY), "signature"),
    (lambda s: assertion(s, key=OTHER_KEY, kid=None), "signature"),
    (lambda s: assertion(s, aud="http://elsewhere.example/token"), "audience"),
    (lambda s: assertion(s, iss="someone-else", sub="someone-else"), "issuer"),
    (lambda s: assertion(s, sub="someone-else"), "sub"),
    (lambda s: assertion(s, exp=int(time.time()) - 5), "expired"),
    (lambda s: assertion(s, exp=int(time.time()) + 3600), "five minutes"),
    (lambda s: assertion(s, jti=None), "jti"),
    (lambda s: assertion(s, kid="unknown"), "kid"),
    (lambda s: jwt.encode({"iss": DEFAULT_CLIENT_ID}, "a-shared-secret-of-32-bytes-or-more!",
                          algorithm="HS256"), "RS384"),
    (lambda s: "not.a.jwt", "not acceptable"),
])
def test_a_bad_assertion_is_invalid_client(smart_server: TestbedServer, build: Any,
                                           reason: str) -> None:
    response = ask(smart_server, build(smart_server))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert reason.lower() in response.json()["error_description"].lower()
    assert "access_token" not in response.json()


def test_an_assertion_is_accepted_once(smart_server: TestbedServer) -> None:
    once = assertion(smart_server)
    assert ask(smart_server, once).status_code == 200
    replay = ask(smart_server, once)
    assert replay.status_code == 401 and "jti" in replay.json()["error_description"]


def test_an_assertion_and_a_secret_together_are_refused(smart_server: TestbedServer) -> None:
    response = ask(smart_server, assertion(smart_server), client_secret="testbed-demo-secret")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    wrong_type = ask(smart_server, assertion(smart_server), client_assertion_type="jwt")
    assert wrong_type.status_code == 401


def test_without_registered_keys_assertions_are_refused(testbed_server: TestbedServer) -> None:
    response = ask(testbed_server, assertion(testbed_server))
    assert response.status_code == 401
    assert "no public key" in response.json()["error_description"]
