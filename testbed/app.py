"""The testbed EPR as a Starlette app: FHIR R4 JSON under ``/fhir``, OAuth2 token, admin endpoints.

Routes:
    ``POST /auth/token``                 OAuth2 client credentials: a client secret (form or HTTP
                                         basic), or a signed client assertion (SMART Backend
                                         Services, ``private_key_jwt``)
    ``GET  /fhir/metadata``              CapabilityStatement (no token needed)
    ``GET  /fhir/.well-known/smart-configuration``  SMART configuration (no token needed)
    ``GET  /fhir/{type}/{id}``           read (a deleted resource: 410)
    ``GET  /fhir/{type}?...``            search -> searchset Bundle (``_count``, ``_offset`` paging)
    ``POST /fhir/Observation``           create -> 201 + Location
    ``DELETE /fhir/Observation/{id}``    delete -> 200 OperationOutcome
    ``GET|PUT|DELETE /admin/faults``     fault rules at run time (tests and demo only: NO auth)
    ``GET  /admin/delay``                the modelled delay of ``endpoint``/``site``/``at`` (no auth)
    ``GET  /app/``                       the web front end (:mod:`testbed.web`)

Every request passes :class:`~testbed.middleware.TestbedMiddleware` (delay, faults, spans).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

import pydantic
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from testbed.data import (
    DEFAULT_PATIENT_COUNT,
    DEFAULT_SEED,
    RESOURCE_TYPES,
    Dataset,
    generate_dataset,
)
from testbed.faults import FaultInjector
from testbed.fhir import (
    FhirError,
    UnknownSearchParameter,
    capability_statement,
    operation_outcome,
    parse_paging,
    search,
    searchset_bundle,
)
from testbed.latency import modelled_delay
from testbed.middleware import FHIR_JSON, TRACER_NAME, TestbedMiddleware
from testbed.scenario import FaultRule, Scenario, load_scenario
from testbed.web import web_routes

__all__ = ["TestbedApp", "TestbedState", "create_app"]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGORITHMS = ("RS384", "ES384")  # what SMART Backend Services requires servers to support
_MAX_ASSERTION_LIFETIME_S = 300  # SMART: exp no more than five minutes in the future
_OBSERVATION_STATUSES = {"registered", "preliminary", "final", "amended", "corrected",
                         "cancelled", "entered-in-error", "unknown"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TestbedState:
    """Everything one app instance holds (no globals): data, faults, tokens, created resources."""

    __test__ = False

    scenario: Scenario
    dataset: Dataset
    faults: FaultInjector
    clock: Callable[[], datetime]
    tokens: dict[str, datetime] = field(default_factory=dict)  # token -> expiry (UTC)
    stopping: threading.Event = field(default_factory=threading.Event)  # set on shutdown
    created_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    deleted: set[tuple[str, str]] = field(default_factory=set)  # (type, id), read answers 410
    assertion_ids: dict[str, float] = field(default_factory=dict)  # jti -> exp (replay guard)

    def issue_token(self) -> tuple[str, int]:
        """A new bearer token and its lifetime in whole seconds."""
        now = self.clock()
        for token, expiry in list(self.tokens.items()):
            if expiry <= now:
                del self.tokens[token]
        token = secrets.token_urlsafe(24)
        lifetime_s = self.scenario.auth.token_lifetime_s
        self.tokens[token] = now + timedelta(seconds=lifetime_s)
        return token, int(lifetime_s)

    def token_valid(self, token: str) -> bool:
        """True when ``token`` was issued here and has not expired by the clock."""
        expiry = self.tokens.get(token)
        return expiry is not None and self.clock() < expiry


class FhirResponse(JSONResponse):
    """JSON with the FHIR media type."""

    media_type = FHIR_JSON


class TestbedApp(Starlette):
    """A Starlette app whose outermost layer is the testbed middleware (see ``create_app``)."""

    __test__ = False

    def __init__(self, *, state: TestbedState, tracer: trace.Tracer, sleep: bool,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._testbed_state = state
        self._tracer = tracer
        self._sleep = sleep
        self.state.testbed = state

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return TestbedMiddleware(inner, scenario=self._testbed_state.scenario,
                                 faults=self._testbed_state.faults,
                                 clock=self._testbed_state.clock, sleep=self._sleep,
                                 tracer=self._tracer, stopping=self._testbed_state.stopping)


def _state(request: Request) -> TestbedState:
    state: TestbedState = request.app.state.testbed
    return state


def _fhir_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _require_token(request: Request) -> None:
    state = _state(request)
    if not state.scenario.auth.required:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise FhirError(401, "login", "a bearer token is required")
    if not state.token_valid(token.strip()):
        raise FhirError(401, "login", "the bearer token is invalid or expired")


def _oauth_error(status: int, error: str, description: str,
                 basic: bool = False) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="wardwatch-testbed"' if basic else "Bearer"
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers=headers)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (as UTF-8 bytes, so any characters are safe to compare)."""
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


async def token(request: Request) -> Response:
    """OAuth2 client credentials grant (RFC 6749 4.4): form fields or HTTP basic client auth."""
    state = _state(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = (await request.body()).decode("utf-8", errors="replace")
    if content_type != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request",
                            "use Content-Type application/x-www-form-urlencoded")
    form = dict(parse_qsl(body, keep_blank_values=True))
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    basic = False
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        basic = True
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return _oauth_error(401, "invalid_client", "malformed basic credentials", basic)
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            return _oauth_error(401, "invalid_client", "malformed basic credentials", basic)
        client_id, client_secret = unquote(raw_id), unquote(raw_secret)
    grant_type = form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    auth = state.scenario.auth
    if "client_assertion" in form or "client_assertion_type" in form:
        if basic or client_secret is not None:
            return _oauth_error(400, "invalid_request", "use one client authentication method")
        problem = _assertion_problem(form, str(request.url.replace(query="")), state)
        if problem is not None:
            return _oauth_error(401, "invalid_client", problem)
        scope = form.get("scope") or "system/*.rs"
    elif not (client_id is not None and client_secret is not None
              and _same(client_id, auth.client_id) and _same(client_secret, auth.client_secret)):
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret", basic)
    else:
        scope = form.get("scope") or "system/*.read system/Observation.write"
    access_token, lifetime_s = state.issue_token()
    return JSONResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime_s,
         "scope": scope},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _assertion_problem(form: dict[str, str], token_url: str, state: TestbedState) -> str | None:
    """Why a SMART Backend Services client assertion is refused, or None when it is good.

    The JWT must be signed (RS384 or ES384) by a key in the client's JWKS, name the client as
    ``iss`` and ``sub``, this token endpoint as ``aud``, expire within five minutes, and carry a
    ``jti`` not seen before.
    """
    import jwt  # with cryptography (about 15 MB): only once a client signs in this way

    auth = state.scenario.auth
    if form.get("client_assertion_type") != _ASSERTION_TYPE:
        return f"client_assertion_type must be {_ASSERTION_TYPE}"
    assertion = form.get("client_assertion", "")
    if auth.jwks is None:
        return "no public key is registered for private_key_jwt"
    try:
        header = jwt.get_unverified_header(assertion)
        algorithm = header.get("alg")
        if algorithm not in _ASSERTION_ALGORITHMS:
            return f"the assertion must be signed with {' or '.join(_ASSERTION_ALGORITHMS)}"
        key_type = "RSA" if algorithm == "RS384" else "EC"
        keys = [key for key in jwt.PyJWKSet.from_dict(auth.jwks).keys
                if key.key_type == key_type and header.get("kid") in (None, key.key_id)]
        if not keys:
            return "no registered key has the assertion's kid"
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(assertion, key.key, algorithms=[algorithm], audience=token_url,
                                    issuer=auth.client_id,
                                    options={"require": ["iss", "sub", "aud", "exp", "jti"]})
                break
            except jwt.InvalidSignatureError:
                continue
        if claims is None:
            return "the assertion's signature does not verify with the registered keys"
    except (jwt.PyJWTError, ValueError) as exc:
        return f"the assertion is not acceptable: {exc}"
    if claims["sub"] != auth.client_id:
        return "the assertion's sub must be the client id"
    now_s = datetime.now(UTC).timestamp()
    if claims["exp"] > now_s + _MAX_ASSERTION_LIFETIME_S:
        return "the assertion must expire within five minutes"
    for jti, exp in list(state.assertion_ids.items()):
        if exp < now_s:
            del state.assertion_ids[jti]
    if claims["jti"] in state.assertion_ids:
        return "the assertion's jti was used before"
    state.assertion_ids[str(claims["jti"])] = float(claims["exp"])
    return None


async def metadata(request: Request) -> Response:
    """The CapabilityStatement; readable without a token, as SMART clients expect."""
    state = _state(request)
    base = str(request.base_url).rstrip("/")
    return FhirResponse(capability_statement(
        f"{base}/fhir", f"{base}/auth/token", state.clock().astimezone(UTC).date().isoformat()))


async def smart_configuration(request: Request) -> Response:
    """SMART App Launch's ``.well-known/smart-configuration``: where the token endpoint is and
    which client authentication it accepts (a Backend Services client discovers it here)."""
    base = str(request.base_url).rstrip("/")
    return JSONResponse({
        "token_endpoint": f"{base}/auth/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post",
                                                  "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": list(_ASSERTION_ALGORITHMS),
        "scopes_supported": ["system/*.rs", "system/*.read", "system/Observation.write",
                             "system/Observation.cud"],
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric"],
    })


def _check_type(rtype: str) -> None:
    if rtype not in RESOURCE_TYPES:
        raise FhirError(404, "not-found", f"unknown resource type {rtype}")


async def read(request: Request) -> Response:
    """``GET /fhir/{type}/{id}``."""
    _require_token(request)
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    _check_type(rtype)
    state = _state(request)
    resource = state.dataset.get(rtype, rid)
    if resource is None:
        if (rtype, rid) in state.deleted:
            raise FhirError(410, "deleted", f"{rtype}/{{id}} was deleted")
        raise FhirError(404, "not-found", f"{rtype}/{{id}} not found")
    return FhirResponse(resource)


async def delete_observation(request: Request) -> Response:
    """``DELETE /fhir/Observation/{id}``: remove it (a probe's cleanup undoes what it charted)."""
    _require_token(request)
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    if rtype != "Observation":
        _check_type(rtype)
        raise FhirError(405, "not-supported", "delete is supported for Observation only")
    state = _state(request)
    if state.dataset.remove(rtype, rid) is None:
        if (rtype, rid) in state.deleted:
            raise FhirError(410, "deleted", "Observation/{id} was already deleted")
        raise FhirError(404, "not-found", "Observation/{id} not found")
    state.deleted.add((rtype, rid))
    return FhirResponse(operation_outcome("informational", "deleted", severity="information"))


async def search_type(request: Request) -> Response:
    """``GET /fhir/{type}?params``: a searchset Bundle, paged by ``_count``/``_offset``."""
    _require_token(request)
    rtype = request.path_params["rtype"]
    _check_type(rtype)
    params = list(request.query_params.multi_items())
    page = parse_paging(params)
    try:
        matches = search(_state(request).dataset, rtype, params)
    except UnknownSearchParameter:
        # As many servers do: an unknown parameter matches nothing (a 400 only when asked).
        if "handling=strict" in request.headers.get("prefer", "").replace(" ", ""):
            raise
        matches = []
    return FhirResponse(searchset_bundle(matches, fhir_base=_fhir_base(request), rtype=rtype,
                                         params=params, page=page))


def _validate_observation(body: Any, state: TestbedState) -> tuple[dict[str, Any], str]:
    if not isinstance(body, dict) or body.get("resourceType") != "Observation":
        raise FhirError(400, "invalid", "the body must be an Observation resource")
    if body.get("status") not in _OBSERVATION_STATUSES:
        raise FhirError(400, "required", "Observation.status is missing or not a valid code")
    if not isinstance(body.get("code"), dict):
        raise FhirError(400, "required", "Observation.code is required")
    subject = body.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise FhirError(400, "required", "Observation.subject must reference a Patient")
    patient_id = reference.partition("/")[2]
    if state.dataset.get("Patient", patient_id) is None:
        raise FhirError(422, "processing", "Observation.subject references an unknown Patient")
    return body, patient_id


async def create_observation(request: Request) -> Response:
    """``POST /fhir/Observation``: store in memory, answer 201 with Location and the resource."""
    _require_token(request)
    if request.path_params["rtype"] != "Observation":
        _check_type(request.path_params["rtype"])
        raise FhirError(405, "not-supported", "create is supported for Observation only")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (FHIR_JSON, "application/json"):
        raise FhirError(415, "not-supported", "send application/fhir+json")
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirError(400, "structure", "the body is not valid JSON") from exc
    state = _state(request)
    resource, patient_id = _validate_observation(body, state)
    resource = dict(resource)
    resource["id"] = f"obs-new-{next(state.created_ids):06d}"
    resource["meta"] = {"versionId": "1",
                        "lastUpdated": state.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    state.dataset.add(resource, patient_id)
    location = f"{_fhir_base(request)}/Observation/{resource['id']}/_history/1"
    return FhirResponse(resource, status_code=201,
                        headers={"Location": location, "ETag": 'W/"1"'})


async def admin_faults(request: Request) -> Response:
    """Fault rules at run time: GET lists, PUT replaces (JSON list), DELETE clears.

    For tests and the demo only; there is no authentication on admin endpoints.
    """
    state = _state(request)
    if request.method == "PUT":
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
        if not isinstance(payload, list):
            return JSONResponse({"error": "the body must be a JSON list of fault rules"},
                                status_code=400)
        try:
            rules = [FaultRule.model_validate(item) for item in payload]
        except pydantic.ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        state.faults.replace(rules)
    elif request.method == "DELETE":
        state.faults.clear()
        return Response(status_code=204)
    return JSONResponse([rule.model_dump() for rule in state.faults.rules])


async def admin_delay(request: Request) -> Response:
    """The modelled delay for ``endpoint`` (route key), ``site`` and ``at`` (ISO, default now).

    For tests and the demo only; no authentication.
    """
    state = _state(request)
    endpoint = request.query_params.get("endpoint")
    if not endpoint:
        return JSONResponse({"error": "endpoint (a route key) is required"}, status_code=400)
    raw_at = request.query_params.get("at")
    try:
        at = datetime.fromisoformat(raw_at) if raw_at else state.clock()
        delay = modelled_delay(endpoint, request.query_params.get("site"), at, state.scenario)
    except (ValueError, OverflowError) as exc:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        return JSONResponse({"error": f"bad at: {exc}"}, status_code=400)
    return JSONResponse(delay.as_dict())


async def _fhir_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, FhirError):  # pragma: no cover - registered for FhirError only
        raise exc
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="wardwatch-testbed"'
    return FhirResponse(operation_outcome(exc.code, exc.diagnostics), status_code=exc.status,
                        headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not-found", 405: "not-supported"}.get(status, "exception")
    message = {404: "no such endpoint", 405: "method not allowed here"}.get(status, "error")
    return FhirResponse(operation_outcome(code, message), status_code=status)


def create_app(
    scenario: Scenario | None = None,
    *,
    seed: int = DEFAULT_SEED,
    tracer_provider: trace.TracerProvider | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: bool = True,
    patients: int = DEFAULT_PATIENT_COUNT,
) -> Starlette:
    """Build the testbed EPR app.

    Args:
        scenario: the scenario (None loads the packaged default).
        seed: seed of the synthetic data and of the fault RNG.
        tracer_provider: where server spans go (None: the global OpenTelemetry provider).
        clock: returns "now" as an aware datetime for the latency model and token expiry
            (None: the real UTC clock).
        sleep: True really waits the modelled delay before answering; False answers at once.
        patients: how many synthetic patients (fewer start faster; the default has 240).

    Returns:
        A Starlette app (a :class:`TestbedApp`); ``app.state.testbed`` is its :class:`TestbedState`.
    """
    scenario = scenario if scenario is not None else load_scenario()
    state = TestbedState(
        scenario=scenario,
        dataset=generate_dataset(seed, patients),
        faults=FaultInjector(scenario.faults, seed),
        clock=clock if clock is not None else _utc_now,
    )
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    tracer = provider.get_tracer(TRACER_NAME)
    routes = [
        Route("/auth/token", token, methods=["POST"]),
        Route("/fhir/metadata", metadata, methods=["GET"]),
        Route("/fhir/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
        Route("/fhir/{rtype}", search_type, methods=["GET"]),
        Route("/fhir/{rtype}", create_observation, methods=["POST"]),
        Route("/fhir/{rtype}/{rid}", read, methods=["GET"]),
        Route("/fhir/{rtype}/{rid}", delete_observation, methods=["DELETE"]),
        Route("/admin/faults", admin_faults, methods=["GET", "PUT", "DELETE"]),
        Route("/admin/delay", admin_delay, methods=["GET"]),
        *web_routes(),  # the web front end under /app/
    ]
    return TestbedApp(
        state=state,
        tracer=tracer,
        sleep=sleep,
        routes=routes,
        exception_handlers={FhirError: _fhir_error, HTTPException: _http_error},
    )
