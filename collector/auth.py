"""Credentials for requests: static bearer, basic, and OAuth2 client credentials with a token cache.

A token is cached per target until shortly before it expires (10% of its lifetime, at most 30 s,
early), shared by every run of the probe against that target. Fetching one is the caller's
``auth`` span (see :mod:`collector.runner`); this module only talks HTTP and keeps the cache.
Tokens and secrets never leave this module except in the ``Authorization`` header.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from collector.config import (
    BasicAuthConfig,
    BearerAuthConfig,
    OAuth2ClientCredentialsConfig,
    TargetConfig,
)
from collector.secretref import SecretResolutionError, resolve_secret

__all__ = ["AuthError", "CachedToken", "TokenCache", "static_auth_headers", "token_reuse_s"]

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


class TokenCache:
    """OAuth2 client-credentials tokens, one per target, shared across runs and threads.

    Args:
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, CachedToken] = {}
        self._lock = threading.Lock()

    def cached(self, target_name: str) -> str | None:
        """The cached token for ``target_name`` if it is still good, else None."""
        with self._lock:
            token = self._tokens.get(target_name)
            if token is None or self._clock() >= token.refresh_at_s:
                return None
            return token.access_token

    def invalidate(self, target_name: str) -> None:
        """Forget the token (after the server rejected it)."""
        with self._lock:
            self._tokens.pop(target_name, None)

    def fetch(
        self,
        target_name: str,
        auth: OAuth2ClientCredentialsConfig,
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
            auth: the grant's settings.
            client: the run's HTTP client.
            environ: where the client secret reference is resolved.
            extensions: httpx request extensions (the phase timer's ``trace``).
            extra_headers: added to the request (the W3C ``traceparent`` of the auth span).
            timeout_s: request timeout.

        Raises:
            AuthError: the secret is missing, or the endpoint failed or answered without a token.
            httpx.TransportError: the token endpoint could not be reached.
        """
        try:
            secret = resolve_secret(auth.client_secret.get_secret_value(), environ)
        except SecretResolutionError as exc:
            raise AuthError(str(exc)) from exc
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        headers = {**(extra_headers or {}), "Accept": "application/json"}
        if auth.client_auth == "client_secret_basic":
            raw = f"{auth.client_id}:{secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(raw).decode('ascii')}"
        else:
            form["client_id"] = auth.client_id
            form["client_secret"] = secret
        started_s = self._clock()
        response = client.post(
            auth.token_url, data=form, headers=headers, timeout=timeout_s, extensions=extensions or {}
        )
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
