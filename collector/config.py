"""The collector's sections of the config file: ``targets``, ``sites``, ``patients``, ``workflows``.

Every model is frozen and forbids unknown keys. Quantities carry their unit in the name (``_s``).
Secrets (client secrets, tokens, passwords) are written as references, ``${env:NAME}`` or
``${file:PATH}``, and resolved only when a request needs them (see :mod:`collector.secretref`).

Schema problems are raised by pydantic; problems that need several sections at once (a workflow
naming a target that does not exist, a variable used before any step extracts it) are found by
:func:`check_references`, which reports every one with its location relative to the config root.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from collector.jsonpath import JsonPath, JsonPathError
from collector.secretref import (
    SecretResolutionError,
    parse_reference,
    resolve_secret,
    secret_reference_error,
)
from collector.templating import Template, TemplateError, iter_json_templates

__all__ = [
    "AnyWorkflowConfig",
    "BrowserStepConfig",
    "BrowserWorkflowConfig",
    "BUILTIN_VARIABLES",
    "ITEM_VARIABLE",
    "PATIENT_VARIABLES",
    "AssertionConfig",
    "AuthConfig",
    "BasicAuthConfig",
    "BearerAuthConfig",
    "ConfigProblem",
    "NoAuthConfig",
    "OAuth2ClientCredentialsConfig",
    "SiteConfig",
    "SmartBackendServicesConfig",
    "StepConfig",
    "TargetConfig",
    "TestPatientConfig",
    "TlsConfig",
    "WorkflowConfig",
    "check_references",
    "requests_per_min",
    "requests_per_run",
    "step_templates",
]

# Variables every run defines before its first step.
RUN_VARIABLES = ("site", "site_timezone", "workflow", "run_id", "now_utc")
# Variables from the test patient picked for the run (needs at least one configured patient).
PATIENT_VARIABLES = ("patient_identifier", "patient_system", "patient_mrn")
BUILTIN_VARIABLES = RUN_VARIABLES + PATIENT_VARIABLES
# The current element inside a ``for_each`` step.
ITEM_VARIABLE = "item"
# Target headers are rendered once per run, before any step: only run variables are known there.
TARGET_HEADER_VARIABLES = ("site", "site_timezone", "workflow", "run_id")

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)


def _check_json_templates(value: Any) -> Any:
    """``value`` unchanged when every ``{{ }}`` template inside its JSON parses."""
    try:
        for _loc, _template in iter_json_templates(value):
            pass
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _check_template(value: str) -> str:
    try:
        Template.parse(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _check_secret(value: SecretStr) -> SecretStr:
    message = secret_reference_error(value.get_secret_value())
    if message is not None:
        raise ValueError(message)
    return value


# -- Targets ---------------------------------------------------------------------------------


class TlsConfig(_Model):
    """TLS settings of a target. Files are given as a path or as a file reference,
    ``${file:/run/secrets/probe.key}`` (kept as its path: the key is read by the TLS library,
    never by Wardwatch, and never appears in an error).

    Attributes:
        verify: verify the server certificate (never switch off outside a test rig).
        ca_bundle: a PEM file of CA certificates to trust instead of the system store.
        client_cert: a PEM client certificate for mutual TLS (may include the key).
        client_key: the client certificate's key, when not in ``client_cert``.
    """

    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @field_validator("ca_bundle", "client_cert", "client_key")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value is None or not value.startswith("${"):
            return value
        reference = parse_reference(value)
        if reference is None or reference.kind != "file":
            raise ValueError("a certificate or key is a file: give its path, or ${file:PATH}")
        return reference.name

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key is given without client_cert")
        return self


class NoAuthConfig(_Model):
    """No credentials."""

    type: Literal["none"] = "none"


class BearerAuthConfig(_Model):
    """A static bearer token, normally a reference: ``token: ${env:EPR_TOKEN}``."""

    type: Literal["bearer"]
    token: SecretStr = Field(description="the bearer token, as a reference: ``${file:/run/secrets/epr-token}``.")

    _check = field_validator("token")(_check_secret)


class BasicAuthConfig(_Model):
    """HTTP basic authentication; the password normally a reference."""

    type: Literal["basic"]
    username: str = Field(min_length=1, description="the user name for HTTP basic authentication.")
    password: SecretStr = Field(description="the password, as a reference: ``${env:EPR_PASSWORD}``.")

    _check = field_validator("password")(_check_secret)


class OAuth2ClientCredentialsConfig(_Model):
    """OAuth2 client credentials grant. The token is cached until shortly before it expires.

    Attributes:
        token_url: absolute URL of the token endpoint.
        client_id: the probe's client id.
        client_secret: normally a reference: ``${env:EPR_CLIENT_SECRET}``.
        scope: requested scope, if the server needs one.
        client_auth: ``client_secret_post`` (credentials in the form body) or
            ``client_secret_basic`` (HTTP basic header).
    """

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    client_auth: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"

    _check = field_validator("client_secret")(_check_secret)

    @field_validator("token_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _check_http_url(value)


class SmartBackendServicesConfig(_Model):
    """SMART Backend Services (as Epic, Oracle Health and most NHS FHIR APIs sign in a system):
    the OAuth2 client credentials grant with ``private_key_jwt`` client authentication, a short
    client assertion JWT signed with the probe's private key, whose public key the EPR holds as
    a JWKS. The token is cached until shortly before it expires.

    Attributes:
        client_id: the client id the EPR registered for the probe.
        private_key: the PEM private key (RSA for RS384, P-384 for ES384), as a reference:
            ``${file:/run/secrets/probe-key.pem}`` (or ``${env:NAME}`` holding the PEM).
        algorithm: ``RS384`` or ``ES384``, the algorithms SMART servers must accept.
        key_id: the ``kid`` of the public key in the JWKS the EPR holds (when it holds several).
        scope: the system scopes asked for, e.g. ``system/Patient.rs system/Observation.rs``.
        token_url: the token endpoint; when absent it is read once from
            ``<base_url>/.well-known/smart-configuration``.
    """

    type: Literal["smart_backend_services"]
    client_id: str = Field(min_length=1)
    private_key: SecretStr
    algorithm: Literal["RS384", "ES384"] = "RS384"
    key_id: str | None = None
    scope: str = Field(min_length=1)
    token_url: str | None = None

    @field_validator("private_key")
    @classmethod
    def _reference_only(cls, value: SecretStr) -> SecretStr:
        if parse_reference(value.get_secret_value()) is None:
            raise ValueError("give the key by reference, ${file:PATH} or ${env:NAME}, never in this file")
        return value

    @field_validator("token_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)


AuthConfig = Annotated[
    OAuth2ClientCredentialsConfig
    | SmartBackendServicesConfig
    | BearerAuthConfig
    | BasicAuthConfig
    | NoAuthConfig,
    Field(discriminator="type"),
]


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value


class TargetConfig(_Model):
    """An HTTP API the probes run workflows against (an EPR's FHIR base, or the testbed).

    Attributes:
        base_url: absolute URL that step paths are relative to (``https://epr.example/fhir``).
        headers: sent with every request; values may use run variables
            (``X-Wardwatch-Site: "{{ site }}"``) or be secret references.
        tls: certificate settings.
        auth: credentials, by ``type``: ``oauth2_client_credentials``,
            ``smart_backend_services``, ``bearer``, ``basic``, ``none``; ``auth: none`` (the
            plain word) is short for ``{type: none}``.
        max_concurrent_runs: at most this many runs against the target at once (all sites and
            workflows of this probe process); a run waiting for its turn starts late, and its
            offset from its slot says so.
        max_requests_per_min: the most load the EPR's owners agreed to; the configured workflows'
            worst case is checked against it when the config is loaded.
        max_response_bytes: the largest response body read, after decompression (a page of a
            FHIR Bundle fits easily); a larger one ends the read as ``invalid_response``.
    """

    base_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsConfig = TlsConfig()
    auth: AuthConfig = NoAuthConfig()
    max_concurrent_runs: int = Field(default=4, ge=1, le=100)
    max_requests_per_min: float | None = Field(default=None, gt=0)
    max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024**3)

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    @field_validator("auth", mode="before")
    @classmethod
    def _plain_none(cls, value: Any) -> Any:
        if value == "none":
            return {"type": "none"}
        if isinstance(value, str):
            raise ValueError(
                "write auth: none, or a mapping whose type is oauth2_client_credentials, "
                "smart_backend_services, bearer, basic or none"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value.values():
            message = secret_reference_error(item)
            if message is not None:
                raise ValueError(message)
            _check_template(item)
        return value


# -- Sites and patients ----------------------------------------------------------------------


class SiteConfig(_Model):
    """Where a probe runs: a ward, a clinic, a community hospital.

    Attributes:
        name: short identifier used in spans and in the ``X-Wardwatch-Site`` header.
        timezone: IANA time zone name (``Europe/London``).
        title: human name for reports (``Ward 7``).
    """

    name: str = Field(pattern=_NAME_PATTERN)
    timezone: str
    title: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class TestPatientConfig(_Model):
    """A test patient the probes may open: never a real patient.

    Attributes:
        identifier: ``system|value``, e.g. ``https://testbed.wardwatch.example/mrn|MRN000001``.
    """

    __test__ = False  # not a pytest test class, despite the name

    identifier: str

    @field_validator("identifier")
    @classmethod
    def _system_and_value(cls, value: str) -> str:
        system, bar, code = value.partition("|")
        if not bar or not system or not code or "|" in code:
            raise ValueError("a patient identifier is written system|value")
        return value

    @property
    def system(self) -> str:
        """The identifier's system (the part before ``|``)."""
        return self.identifier.partition("|")[0]

    @property
    def value(self) -> str:
        """The identifier's value, e.g. the MRN (the part after ``|``)."""
        return self.identifier.partition("|")[2]


# -- Workflows -------------------------------------------------------------------------------


class AssertionConfig(_Model):
    """A check on a step's JSON response. Exactly one of ``exists``, ``equals``, ``count_gte``.

    Attributes:
        path: JSON path (``$.total``, ``$.entry[*].resource.id``).
        exists: the path matches something (true) or nothing (false).
        equals: the first match equals this value; strings in it are templates
            (``Patient/{{ patient_id }}``: the Bundle holds this patient's entries).
        count_gte: the path selects at least this many values (see :meth:`JsonPath.count`).
    """

    path: str
    exists: bool | None = None
    equals: JsonValue = None
    count_gte: int | None = Field(default=None, ge=0)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        try:
            JsonPath.parse(value)
        except JsonPathError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("equals")
    @classmethod
    def _equals_templates(cls, value: Any) -> Any:
        return _check_json_templates(value)

    @model_validator(mode="after")
    def _one_check(self) -> AssertionConfig:
        given = [name for name in ("exists", "equals", "count_gte") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of exists, equals, count_gte")
        return self

    @property
    def kind(self) -> str:
        """Which check this is: ``exists``, ``equals`` or ``count_gte``."""
        return next(name for name in ("exists", "equals", "count_gte") if name in self.model_fields_set)


class StepConfig(_Model):
    """One HTTP request of a workflow (or several, when it follows Bundle ``next`` links).

    Attributes:
        name: unique within the workflow.
        method: HTTP method.
        path: URL template relative to the target's base URL (``/Patient/{{ patient_id }}``).
        query: query parameters; values are templates and are never recorded.
        headers: extra request headers; values are templates.
        json_body: the JSON request body (key ``json``); strings in it are templates, and a string
            that is exactly one placeholder keeps the variable's type.
        expect_status: acceptable status codes; when absent, any 2xx.
        assertions: checks on the JSON response (key ``assert``).
        extract: variables for later steps: ``{patient_id: $.entry[0].resource.id}``.
        follow_next_pages: follow the Bundle's ``next`` link up to this many extra pages.
        for_each: name of a variable holding a list (extracted with a ``[*]`` path): the request
            is sent once per element, in order, with the element as ``{{ item }}`` (the N+1
            pattern of a ward list). Assertions apply to every response.
        max_items: at most this many elements of ``for_each`` are requested (bounded load).
        think_time_s: pause after this step (overrides the workflow's ``think_time_s``).
    """

    name: str = Field(pattern=_NAME_PATTERN)
    method: str = "GET"
    path: str
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: JsonValue = Field(default=None, alias="json")
    expect_status: tuple[int, ...] | None = None
    assertions: tuple[AssertionConfig, ...] = Field(default=(), alias="assert")
    extract: dict[str, str] = Field(default_factory=dict)
    follow_next_pages: int = Field(default=0, ge=0, le=100)
    for_each: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_items: int = Field(default=50, ge=1, le=1000)
    think_time_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _for_each_alone(self) -> StepConfig:
        if self.for_each is not None and (self.extract or self.follow_next_pages):
            raise ValueError("a for_each step cannot also extract or follow next pages")
        return self

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in _HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(_HTTP_METHODS)}")
        return upper

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with '/' (it is relative to the target's base_url)")
        if "?" in value or "#" in value:
            raise ValueError("put query parameters under 'query', not in the path")
        return _check_template(value)

    @field_validator("query", "headers")
    @classmethod
    def _value_templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        for item in value.values():
            if isinstance(item, str):
                _check_template(item)
        return value

    @field_validator("json_body")
    @classmethod
    def _body_templates(cls, value: Any) -> Any:
        return _check_json_templates(value)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, int) else value

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one status code, or leave expect_status out for any 2xx")
            for code in value:
                if not 100 <= code <= 599:
                    raise ValueError(f"{code} is not an HTTP status code")
        return value

    @field_validator("extract")
    @classmethod
    def _extractions(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _VARIABLE.match(name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits, underscore)")
            if name in BUILTIN_VARIABLES or name == ITEM_VARIABLE:
                raise ValueError(f"{name!r} is a built-in variable and cannot be extracted")
            try:
                JsonPath.parse(path)
            except JsonPathError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @property
    def path_template(self) -> Template:
        """The parsed path."""
        return Template.parse(self.path)


class WorkflowConfig(_Model):
    """A clinical task: ordered steps run against one target from one or more sites.

    Attributes:
        kind: ``http`` (the default: steps are HTTP requests); ``kind: browser`` is a
            :class:`BrowserWorkflowConfig`.
        name: unique among workflows.
        description: what a clinician is doing.
        target: name of a target in ``targets``.
        sites: names of the sites that run it; empty means every configured site.
        interval_s: cadence: a slot every ``interval_s`` seconds per site.
        jitter_s: a run starts at its slot plus a random offset in ``[0, jitter_s)``.
        think_time_s: pause between steps; waited, but not part of the waiting time.
        timeout_s: limit on the whole run (steps and think time); the run is ``timed_out`` after.
        step_timeout_s: limit on each HTTP request (connect, each read, each write).
        connection: ``reuse`` keeps connections alive within a run (a browser session);
            ``fresh`` opens a new connection for every request (DNS, connect and TLS paid as on
            a first click). No connection outlives its run.
        on_error: ``stop`` ends the run at the first failing step; ``continue`` runs the rest
            (steps needing a value that a failed step would have extracted are skipped).
        steps: the requests, in order.
        cleanup: steps in the same form as ``steps``, run after them to undo what the run wrote
            (``DELETE /Observation/{{ observation_id }}``); they may use every variable the steps
            extracted. Not part of the waiting time, but their requests count against the
            target's ``max_requests_per_min``.
    """

    kind: Literal["http"] = "http"
    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    target: str
    sites: tuple[str, ...] = ()
    interval_s: float = Field(default=60.0, gt=0)
    jitter_s: float = Field(default=0.0, ge=0)
    think_time_s: float = Field(default=0.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    step_timeout_s: float = Field(default=10.0, gt=0)
    connection: Literal["fresh", "reuse"] = "reuse"
    on_error: Literal["stop", "continue"] = "stop"
    steps: tuple[StepConfig, ...] = Field(min_length=1)
    cleanup: tuple[StepConfig, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowConfig:
        if self.jitter_s >= self.interval_s:
            raise ValueError("jitter_s must be smaller than interval_s")
        if self.step_timeout_s > self.timeout_s:
            raise ValueError("step_timeout_s must not exceed timeout_s")
        seen: set[str] = set()
        # Cleanup steps are recorded by name beside the timed ones: one namespace for both.
        for step in (*self.steps, *self.cleanup):
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        return self


# -- Browser workflows ------------------------------------------------------------------------


class WaitForConfig(_Model):
    """What a step waits for: a CSS selector visible (with a text, when given), or gone.

    Attributes:
        selector: a CSS selector (``#record[data-state=ready]``).
        state: ``visible`` (present and shown) or ``gone`` (absent or hidden: "the spinner is gone").
        text: with ``visible``, the element's text must contain this (a template).
    """

    selector: str = Field(min_length=1)
    state: Literal["visible", "gone"] = "visible"
    text: str | None = None

    _text = field_validator("text")(lambda value: value if value is None else _check_template(value))

    @model_validator(mode="after")
    def _text_when_visible(self) -> WaitForConfig:
        if self.text is not None and self.state == "gone":
            raise ValueError("text applies to state visible only")
        return self


class FillConfig(_Model):
    """Type a value into a field.

    Attributes:
        selector: the field (``#mrn``).
        value: what is typed: a template (``{{ patient_mrn }}``), or a secret reference
            (``${env:EPR_PASSWORD}``) for a password, resolved only when typed.
    """

    selector: str = Field(min_length=1)
    value: str

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if value.startswith("${"):
            message = secret_reference_error(value)
            if message is not None:
                raise ValueError(message)
            return value
        return _check_template(value)


class PressConfig(_Model):
    """Press a key in an element.

    Attributes:
        selector: the element that has the focus when the key is pressed.
        key: the key, by Playwright's names (``Enter``, ``Tab``, ``ArrowDown``).
    """

    selector: str = Field(min_length=1)
    key: str = Field(min_length=1)


class AssertTextConfig(_Model):
    """An element's text contains a value. The page's text is never recorded: it is compared in
    the page, and a failed assertion names the selector only.

    Attributes:
        selector: the element (``#banner``).
        contains: the text it must contain (a template: ``{{ patient_mrn }}``).
    """

    selector: str = Field(min_length=1)
    contains: str

    _contains = field_validator("contains")(lambda value: _check_template(value))


_BROWSER_ACTIONS = ("goto", "fill", "click", "press")


class BrowserStepConfig(_Model):
    """One step of a browser workflow, as a person would write it: at most one action, then what
    the step waits for, then what it checks. Its duration is the time from the action (the
    input event in the page, or the navigation's start) until what it waits for is on the
    screen (judged in the page, frame by frame).

    Attributes:
        name: unique within the workflow.
        goto: open this address: a path relative to the workflow's ``url``, or an absolute URL
            (a template).
        fill: type into a field: ``{selector, value}``.
        click: click the element this selector finds.
        press: press a key in an element: ``{selector, key}``.
        wait_for: what the step waits for: ``{selector, state: visible|gone, text}``.
        assert_text: an element's text contains a value: ``{selector, contains}``.
        timeout_s: the most the step may take, action and wait together.
        think_time_s: pause after this step (overrides the workflow's ``think_time_s``).
    """

    name: str = Field(pattern=_NAME_PATTERN)
    goto: str | None = None
    fill: FillConfig | None = None
    click: str | None = Field(default=None, min_length=1)
    press: PressConfig | None = None
    wait_for: WaitForConfig | None = None
    assert_text: AssertTextConfig | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    think_time_s: float | None = Field(default=None, ge=0)

    _goto = field_validator("goto")(lambda value: value if value is None else _check_template(value))

    @model_validator(mode="after")
    def _one_action(self) -> BrowserStepConfig:
        actions = [name for name in _BROWSER_ACTIONS if getattr(self, name) is not None]
        if len(actions) > 1:
            raise ValueError(f"a step has at most one action; this one has {', '.join(actions)}")
        if not actions and self.wait_for is None and self.assert_text is None:
            raise ValueError(f"give an action ({', '.join(_BROWSER_ACTIONS)}), wait_for or assert_text")
        return self

    @property
    def action(self) -> str | None:
        """``goto``, ``fill``, ``click``, ``press``, or None (a step that only waits or checks)."""
        return next((name for name in _BROWSER_ACTIONS if getattr(self, name) is not None), None)

    def templates(self) -> list[tuple[tuple[str | int, ...], Template]]:
        """Every template of the step with its location inside the step."""
        found: list[tuple[tuple[str | int, ...], Template]] = []
        if self.goto is not None:
            found.append((("goto",), Template.parse(self.goto)))
        if self.fill is not None and not self.fill.value.startswith("${"):
            found.append((("fill", "value"), Template.parse(self.fill.value)))
        if self.wait_for is not None and self.wait_for.text is not None:
            found.append((("wait_for", "text"), Template.parse(self.wait_for.text)))
        if self.assert_text is not None:
            found.append((("assert_text", "contains"), Template.parse(self.assert_text.contains)))
        return found


class BrowserWorkflowConfig(_Model):
    """A clinical task done in the EPR's web front end, in a real browser (``kind: browser``).

    One browser per probe process (Chromium, driven by Playwright), a fresh browser context per
    run: no cookies, storage or cache carried over (every run is a first visit), unless
    ``warm_cache``. Nothing of the page leaves the process: no DOM, no texts, and no screenshots
    unless ``screenshot_on_failure``; the page's requests are recorded as URL templates with
    redacted queries.

    Attributes:
        kind: ``browser``.
        name: unique among workflows.
        description: what a clinician is doing.
        target: the EPR's target: its ``headers`` are sent with the page's requests and its
            ``max_requests_per_min`` counts ``max_page_requests`` per run.
        url: the web front end's address; ``goto`` paths are relative to it.
        sites: names of the sites that run it; empty means every configured site.
        interval_s: cadence: a slot every ``interval_s`` seconds per site.
        jitter_s: a run starts at its slot plus a random offset in ``[0, jitter_s)``.
        think_time_s: pause between steps; waited, but not part of the waiting time.
        timeout_s: limit on the whole run; the run is ``timed_out`` after.
        max_page_requests: the most requests one run's pages may make, for the load budget.
        warm_cache: keep one browser context per site across this workflow's runs, as a
            clinician's browser keeps its HTTP cache (and its cookies and storage) from one visit
            to the next; each run opens a new page in it. Off: every run is a first visit.
        screenshot_on_failure: when a run fails, a PNG of the page as it was, written under the
            data directory (``<store.path>/screenshots/``) and nowhere else; it shows what the
            page showed, a test patient's record included. Off by default.
        steps: the steps, in order; the run stops at the first failing one.
    """

    kind: Literal["browser"]
    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    target: str
    url: str
    sites: tuple[str, ...] = ()
    interval_s: float = Field(default=60.0, gt=0)
    jitter_s: float = Field(default=0.0, ge=0)
    think_time_s: float = Field(default=0.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_page_requests: int = Field(default=30, ge=1, le=10_000)
    warm_cache: bool = False
    screenshot_on_failure: bool = False
    steps: tuple[BrowserStepConfig, ...] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BrowserWorkflowConfig:
        if self.jitter_s >= self.interval_s:
            raise ValueError("jitter_s must be smaller than interval_s")
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        return self


def _workflow_kind(value: Any) -> str:
    kind = value.get("kind", "http") if isinstance(value, dict) else getattr(value, "kind", "http")
    return "browser" if kind == "browser" else "http"


# A workflow of either kind, told apart by ``kind`` (``http`` when absent).
AnyWorkflowConfig = Annotated[
    Annotated[WorkflowConfig, Tag("http")] | Annotated[BrowserWorkflowConfig, Tag("browser")],
    Discriminator(_workflow_kind),
]


# -- Checks across sections ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """A problem found across sections.

    Attributes:
        loc: location relative to the config root, e.g. ``("workflows", 0, "steps", 2, "path")``.
        message: what is wrong, in words a config author can act on.
    """

    loc: tuple[str | int, ...]
    message: str


def step_templates(step: StepConfig) -> list[tuple[tuple[str | int, ...], Template]]:
    """Every template of a step with its location inside the step (``("query", "patient")``)."""
    found: list[tuple[tuple[str | int, ...], Template]] = [(("path",), step.path_template)]
    for key, value in step.query.items():
        if isinstance(value, str):
            found.append((("query", key), Template.parse(value)))
    for key, value in step.headers.items():
        found.append((("headers", key), Template.parse(value)))
    for loc, template in iter_json_templates(step.json_body):
        found.append((("json", *loc), template))
    for index, assertion in enumerate(step.assertions):
        for loc, template in iter_json_templates(assertion.equals):
            found.append((("assert", index, "equals", *loc), template))
    return found


def requests_per_run(workflow: WorkflowConfig | BrowserWorkflowConfig) -> int:
    """The most HTTP requests one run can make, its cleanup steps included (pages followed, every
    ``for_each`` item; token requests are not counted: a token is fetched once per lifetime, not
    per run). A browser workflow counts its ``max_page_requests``."""
    if isinstance(workflow, BrowserWorkflowConfig):
        return workflow.max_page_requests
    total = 0
    for step in (*workflow.steps, *workflow.cleanup):
        total += step.max_items if step.for_each is not None else 1 + step.follow_next_pages
    return total


def requests_per_min(target_name: str, workflows: Sequence[WorkflowConfig | BrowserWorkflowConfig], sites: Sequence[SiteConfig]) -> float:
    """The worst-case load the workflows put on one target, in requests per minute.

    Each workflow counts :func:`requests_per_run` at each of its sites (every site when it names
    none) once per ``interval_s``.
    """
    site_count = len(sites)
    total = 0.0
    for workflow in workflows:
        if workflow.target != target_name:
            continue
        at = len(workflow.sites) if workflow.sites else site_count
        total += requests_per_run(workflow) * at * 60.0 / workflow.interval_s
    return total


def check_references(
    targets: Mapping[str, TargetConfig],
    sites: Sequence[SiteConfig],
    patients: Sequence[TestPatientConfig],
    workflows: Sequence[WorkflowConfig | BrowserWorkflowConfig],
    *,
    environ: Mapping[str, str] | None = None,
) -> list[ConfigProblem]:
    """Every problem that needs more than one section to see, in config order.

    Args:
        targets: the ``targets`` section.
        sites: the ``sites`` section.
        patients: the ``patients`` section.
        workflows: the ``workflows`` section.
        environ: when given, the run-time environment is checked too: secret references are
            resolved against it (and secret files read), TLS files must be readable, and each
            failure is a problem. A secret itself is never reported.

    Returns:
        The problems, each with its location relative to the config root; empty when all is well.
    """
    problems: list[ConfigProblem] = []
    site_names = [site.name for site in sites]
    for index, name in enumerate(site_names):
        if name in site_names[:index]:
            problems.append(ConfigProblem(("sites", index, "name"), f"site {name!r} is defined twice"))
    identifiers = [patient.identifier for patient in patients]
    for index, identifier in enumerate(identifiers):
        if identifier in identifiers[:index]:
            problems.append(ConfigProblem(("patients", index, "identifier"), "patient is listed twice"))

    for target_name, target in targets.items():
        for key, value in target.headers.items():
            for variable in Template.parse(value).variables:
                if variable not in TARGET_HEADER_VARIABLES:
                    problems.append(
                        ConfigProblem(
                            ("targets", target_name, "headers", key),
                            f"target headers may use only {', '.join(TARGET_HEADER_VARIABLES)}; "
                            f"{variable!r} is not one of them",
                        )
                    )
        if environ is not None:
            problems.extend(_secret_problems(target_name, target, environ))
        if target.max_requests_per_min is not None:
            load = requests_per_min(target_name, workflows, sites)
            if load > target.max_requests_per_min:
                problems.append(
                    ConfigProblem(
                        ("targets", target_name, "max_requests_per_min"),
                        f"the workflows on this target can make up to {load:.1f} requests per minute, "
                        f"more than the stated maximum of {target.max_requests_per_min:g}",
                    )
                )

    workflow_names = [workflow.name for workflow in workflows]
    for w_index, workflow in enumerate(workflows):
        where: tuple[str | int, ...] = ("workflows", w_index)
        if workflow.name in workflow_names[:w_index]:
            problems.append(ConfigProblem((*where, "name"), f"workflow {workflow.name!r} is defined twice"))
        if workflow.target not in targets:
            known = ", ".join(sorted(targets)) or "none are defined"
            problems.append(
                ConfigProblem((*where, "target"), f"target {workflow.target!r} is not defined (known: {known})")
            )
        for s_index, site in enumerate(workflow.sites):
            if site not in site_names:
                known = ", ".join(site_names) or "none are defined"
                problems.append(
                    ConfigProblem((*where, "sites", s_index), f"site {site!r} is not defined (known: {known})")
                )
        if isinstance(workflow, BrowserWorkflowConfig):
            problems.extend(_browser_template_problems(where, workflow, patients))
            continue
        defined = set(RUN_VARIABLES) | set(PATIENT_VARIABLES)
        # Cleanup runs after the steps, with every variable they extracted.
        sequence = [("steps", index, step) for index, step in enumerate(workflow.steps)]
        sequence += [("cleanup", index, step) for index, step in enumerate(workflow.cleanup)]
        for section, st_index, step in sequence:
            step_where = (*where, section, st_index)
            if step.for_each is not None and step.for_each not in defined:
                problems.append(
                    ConfigProblem(
                        (*step_where, "for_each"),
                        f"variable {step.for_each!r} is used before any step extracts it",
                    )
                )
            for loc, template in step_templates(step):
                for variable in template.variables:
                    if variable == ITEM_VARIABLE and step.for_each is not None:
                        continue
                    if variable == ITEM_VARIABLE:
                        problems.append(
                            ConfigProblem((*step_where, *loc), f"{ITEM_VARIABLE!r} is defined only in a for_each step")
                        )
                    elif variable in PATIENT_VARIABLES and not patients:
                        problems.append(
                            ConfigProblem(
                                (*step_where, *loc),
                                f"{variable!r} needs a test patient, and the patients section is empty",
                            )
                        )
                    elif variable not in defined:
                        problems.append(
                            ConfigProblem(
                                (*step_where, *loc),
                                f"variable {variable!r} is used before any step extracts it",
                            )
                        )
            defined.update(step.extract)
    return problems


def _browser_template_problems(
    where: tuple[str | int, ...], workflow: BrowserWorkflowConfig, patients: Sequence[TestPatientConfig]
) -> list[ConfigProblem]:
    """A browser step's templates may use the run's and the test patient's variables (a browser
    step extracts nothing: the page's content never leaves the browser)."""
    problems = []
    for index, step in enumerate(workflow.steps):
        for loc, template in step.templates():
            for variable in template.variables:
                if variable in PATIENT_VARIABLES and not patients:
                    message = f"{variable!r} needs a test patient, and the patients section is empty"
                elif variable not in BUILTIN_VARIABLES:
                    message = f"variable {variable!r} is not defined in a browser workflow (use {', '.join(BUILTIN_VARIABLES)})"
                else:
                    continue
                problems.append(ConfigProblem((*where, "steps", index, *loc), message))
    return problems


def _secret_problems(
    target_name: str, target: TargetConfig, environ: Mapping[str, str]
) -> list[ConfigProblem]:
    where = ("targets", target_name)
    secrets: list[tuple[tuple[str | int, ...], str]] = []
    auth = target.auth
    if isinstance(auth, OAuth2ClientCredentialsConfig):
        secrets.append(((*where, "auth", "client_secret"), auth.client_secret.get_secret_value()))
    elif isinstance(auth, SmartBackendServicesConfig):
        secrets.append(((*where, "auth", "private_key"), auth.private_key.get_secret_value()))
    elif isinstance(auth, BearerAuthConfig):
        secrets.append(((*where, "auth", "token"), auth.token.get_secret_value()))
    elif isinstance(auth, BasicAuthConfig):
        secrets.append(((*where, "auth", "password"), auth.password.get_secret_value()))
    for key, value in target.headers.items():
        if value.startswith("${"):
            secrets.append(((*where, "headers", key), value))
    problems = []
    for loc, value in secrets:
        try:
            resolved = resolve_secret(value, environ)
        except SecretResolutionError as exc:
            problems.append(ConfigProblem(loc, str(exc)))
            continue
        if isinstance(auth, SmartBackendServicesConfig) and loc[-1] == "private_key":
            from collector.auth import AuthError, load_signing_key  # auth builds on this module

            try:
                load_signing_key(resolved, auth.algorithm)
            except AuthError as exc:
                problems.append(ConfigProblem(loc, str(exc)))
    for key in ("ca_bundle", "client_cert", "client_key"):
        path = getattr(target.tls, key)
        if path is not None and not os.access(Path(path).expanduser(), os.R_OK):
            problems.append(ConfigProblem((*where, "tls", key), f"{path} is not a readable file"))
    return problems
