"""Credentials for requests: static bearer, basic, and OAuth2 client credentials (a client secret,
or SMART Backend Services' signed client assertion) with a token cache.

A token is cached per target until shortly before it expires (10% of its lifetime, at most 30 s,
early), shared by every run of the probe against that target. Fetching one is the caller's
``auth`` span (see :mod:`collector.runner`); this module only talks HTTP and keeps the cache.
Tokens, secrets and private keys never leave this module except in the ``Authorization`` header
and, for SMART Backend Services, as the signature of a client assertion: no message names them.

SMART Backend Services: the client assertion is a JWT signed by PyJWT (RS384 or ES384) with
``iss`` = ``sub`` = the client id, ``aud`` = the token endpoint, a unique ``jti`` and an ``exp``
a few minutes ahead; the token endpoint, when not configured, is read once per target from
``<base_url>/.well-known/smart-configuration`` and kept for the life of the process.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

from collector.config import (
    BasicAuthConfig,
    BearerAuthConfig,
    OAuth2ClientCredentialsConfig,
    SmartBackendServicesConfig,
    TargetConfig,
)
from collector.secretref import SecretResolutionError, resolve_secret

__all__ = [
    "TOKEN_AUTH_TYPES",
    "AuthError",
    "CachedToken",
    "TokenAuth",
    "TokenCache",
    "client_assertion",
    "load_signing_key",
    "static_auth_headers",
    "token_reuse_s",
]

# The kinds of auth that fetch a token from a token endpoint.
TokenAuth = OAuth2ClientCredentialsConfig | SmartBackendServicesConfig
TOKEN_AUTH_TYPES = (OAuth2ClientCredentialsConfig, SmartBackendServicesConfig)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART asks for an assertion expiring no more than five minutes ahead; two leaves room for a
# probe whose clock runs a little ahead of the server's.
_ASSERTION_LIFETIME_S = 120

_MAX_EARLY_S = 30.0
_EARLY_FRACTION = 0.1
_DEFAULT_LIFETIME_S = 300.0


def token_reuse_s(lifetime_s: float) -> float:
    """How long a token with ``lifetime_s`` seconds to live is used before a new one is fetched:
    its lifetime less 10% of it, at most 30 s (shared by the live cache and simulated history)."""
    return lifetime_s - min(_MAX_EARLY_S, _EARLY_FRACTION * lifetime_s)


class AuthError(Exception):
    """Credentials could not be obtained (secret missing, token endpoint refused or broken).

    The message names the cause, never the secret or the token.

    Attributes:
        status_code: the token endpoint's status, when it answered.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A bearer token and when to stop using it (``time.monotonic`` seconds)."""

    access_token: str
    refresh_at_s: float


def static_auth_headers(target: TargetConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``Authorization`` header for ``bearer`` and ``basic`` auth; empty for other kinds.

    Raises:
        AuthError: a referenced secret is not available.
    """
    auth = target.auth
    try:
        if isinstance(auth, BearerAuthConfig):
            return {"Authorization": f"Bearer {resolve_secret(auth.token.get_secret_value(), environ)}"}
        if isinstance(auth, BasicAuthConfig):
            password = resolve_secret(auth.password.get_secret_value(), environ)
            raw = f"{auth.username}:{password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(raw).decode('ascii')}"}
    except SecretResolutionError as exc:
        raise AuthError(str(exc)) from exc
    return {}


def load_signing_key(pem: str, algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key in ``pem``, checked to suit ``algorithm`` (RSA for RS384, P-384 for ES384).

    Raises:
        AuthError: not a PEM private key (or one with a passphrase), or the wrong kind of key;
            the message never quotes the key.
    """
    # Imported here: cryptography costs a probe about 15 MB, and only SMART targets need it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise AuthError("the private key is not a PEM private key without a passphrase") from exc
    if algorithm == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if algorithm == "ES384" and isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    wanted = "an RSA key" if algorithm == "RS384" else "an EC key on curve P-384"
    raise AuthError(f"{algorithm} needs {wanted}; the private key is not one")


def client_assertion(
    auth: SmartBackendServicesConfig, token_url: str, environ: Mapping[str, str], *, now_s: float | None = None
) -> str:
    """A SMART Backend Services client assertion for ``token_url``, signed with the client's key.

    Raises:
        AuthError: the key reference cannot be resolved, or the key does not suit the algorithm.
    """
    import jwt  # with cryptography: only when a SMART target signs in

    try:
        pem = resolve_secret(auth.private_key.get_secret_value(), environ)
    except SecretResolutionError as exc:
        raise AuthError(str(exc)) from exc
    key = load_signing_key(pem, auth.algorithm)
    issued_s = int(time.time() if now_s is None else now_s)
    claims = {
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": token_url,
        "iat": issued_s,
        "exp": issued_s + _ASSERTION_LIFETIME_S,
        "jti": str(uuid.uuid4()),
    }
    headers = {"typ": "JWT", **({"kid": auth.key_id} if auth.key_id else {})}
    try:
        return jwt.encode(claims, key, algorithm=auth.algorithm, headers=headers)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:  # the library's words, not the key's
        raise AuthError(f"the private key cannot sign an {auth.algorithm} assertion") from exc


class TokenCache:
    """OAuth2 client-credentials tokens, one per target, shared across runs and threads.

    Args:
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, CachedToken] = {}
        self._endpoints: dict[str, str] = {}  # target -> token endpoint discovered
        self._lock = threading.Lock()

    def cached(self, target_name: str) -> str | None:
        """The cached token for ``target_name`` if it is still good, else None."""
        with self._lock:
            token = self._tokens.get(target_name)
            if token is None or self._clock() >= token.refresh_at_s:
                return None
            return token.access_token

    def token_url(
        self, target_name: str, auth: TokenAuth, base_url: str, client: httpx.Client, *, timeout_s: float
    ) -> str:
        """The token endpoint: configured, or discovered from the FHIR base's
        ``.well-known/smart-configuration`` (once per target and process).

        Raises:
            AuthError: the SMART configuration is missing, broken or names no token endpoint.
            httpx.TransportError: the FHIR base could not be reached.
        """
        if auth.token_url is not None:
            return auth.token_url
        with self._lock:
            known = self._endpoints.get(target_name)
        if known is not None:
            return known
        response = client.get(
            f"{base_url}/.well-known/smart-configuration", headers={"Accept": "application/json"}, timeout=timeout_s
        )
        if response.status_code != 200:
            raise AuthError(
                f"no token_url given, and .well-known/smart-configuration answered {response.status_code}",
                response.status_code,
            )
        try:
            payload: Any = response.json()
        except ValueError as exc:
            raise AuthError(".well-known/smart-configuration is not valid JSON") from exc
        endpoint = payload.get("token_endpoint") if isinstance(payload, dict) else None
        if not isinstance(endpoint, str) or not endpoint.lower().startswith(("http://", "https://")):
            raise AuthError(".well-known/smart-configuration names no token_endpoint URL")
        with self._lock:
            self._endpoints[target_name] = endpoint
        return endpoint

    def invalidate(self, target_name: str) -> None:
        """Forget the token (after the server rejected it)."""
        with self._lock:
            self._tokens.pop(target_name, None)

    def fetch(
        self,
        target_name: str,
        auth: TokenAuth,
        client: httpx.Client,
        environ: Mapping[str, str],
        *,
        extensions: dict[str, object] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout_s: float,
    ) -> str:
        """Request a new token, cache it and return it.

        Args:
            target_name: cache key.
            auth: the grant's settings (for SMART Backend Services without a ``token_url``,
                :meth:`token_url` must have discovered the endpoint first).
            client: the run's HTTP client.
            environ: where the client secret or private key reference is resolved.
            extensions: httpx request extensions (the phase timer's ``trace``).
            extra_headers: added to the request (the W3C ``traceparent`` of the auth span).
            timeout_s: request timeout.

        Raises:
            AuthError: the secret is missing, or the endpoint failed or answered without a token.
            httpx.TransportError: the token endpoint could not be reached.
        """
        with self._lock:
            token_url = auth.token_url or self._endpoints.get(target_name)
        if token_url is None:
            raise AuthError("the token endpoint has not been discovered")
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        headers = {**(extra_headers or {}), "Accept": "application/json"}
        if isinstance(auth, SmartBackendServicesConfig):
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = client_assertion(auth, token_url, environ)
        else:
            try:
                secret = resolve_secret(auth.client_secret.get_secret_value(), environ)
            except SecretResolutionError as exc:
                raise AuthError(str(exc)) from exc
            if auth.client_auth == "client_secret_basic":
                raw = f"{auth.client_id}:{secret}".encode()
                headers["Authorization"] = f"Basic {base64.b64encode(raw).decode('ascii')}"
            else:
                form["client_id"] = auth.client_id
                form["client_secret"] = secret
        started_s = self._clock()
        response = client.post(token_url, data=form, headers=headers, timeout=timeout_s, extensions=extensions or {})
        if response.status_code != 200:
            raise AuthError(f"the token endpoint answered {response.status_code}", response.status_code)
        try:
            payload = response.json()
        except ValueError as exc:
            raise AuthError("the token endpoint answered with invalid JSON", 200) from exc
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("the token endpoint answered without an access_token", 200)
        lifetime_s = payload.get("expires_in", _DEFAULT_LIFETIME_S)
        if not isinstance(lifetime_s, (int, float)) or lifetime_s <= 0:
            lifetime_s = _DEFAULT_LIFETIME_S
        with self._lock:
            self._tokens[target_name] = CachedToken(token, started_s + token_reuse_s(float(lifetime_s)))
        return token
