"""The scenario file: everything the testbed's latency model, faults and auth are driven by.

A scenario is a YAML document validated by :class:`Scenario` (unknown keys are errors). The
packaged default (``default_scenario.yaml``) tells the brief's stories; :func:`load_scenario`
reads it or another file. Tests build small, predictable scenarios with :func:`scenario_for_tests`
or :meth:`Scenario.with_overrides`.

Endpoints are named by *route keys*: the HTTP method and the path template relative to the FHIR
base, e.g. ``"GET /Patient/{id}"`` (read), ``"GET /Patient"`` (search), ``"POST /Observation"``,
``"GET /metadata"``; the token endpoint is ``"POST /auth/token"``. Wherever a scenario lists
endpoints, shell-style patterns are accepted (``"GET /DocumentReference*"``, ``"* /Observation"``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "AuthConfig",
    "Change",
    "FaultKind",
    "FaultRule",
    "FrontendModel",
    "FrontendRelease",
    "LoadCurve",
    "Outage",
    "PeriodEffect",
    "Scenario",
    "ScenarioError",
    "SiteModel",
    "Stall",
    "Tail",
    "endpoint_matches",
    "load_scenario",
    "scenario_for_tests",
]

DEFAULT_CLIENT_ID = "wardwatch-probe"
DEFAULT_CLIENT_SECRET = "testbed-demo-secret"  # a demo credential for a simulated EPR only

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FaultKind = Literal["5xx", "hang", "reset", "malformed_json", "401"]


class ScenarioError(ValueError):
    """A scenario file could not be read or is invalid; the message names the file."""


def endpoint_matches(endpoint: str, patterns: Sequence[str] | None) -> bool:
    """True when ``endpoint`` (a route key) matches one of ``patterns``; None or empty matches all.

    Patterns are shell-style (``fnmatch``, case-sensitive): ``"GET /DocumentReference*"``.
    """
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(endpoint, p) for p in patterns)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


class SiteModel(_Model):
    """A site the probes run at: its time zone and the network between it and the EPR."""

    timezone: str = "Europe/London"
    network_delay_ms: float = Field(0.0, ge=0, description="added to every request from the site")
    description: str = ""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)


class Stall(_Model):
    """Within a period, the effect applies only ``duration_min`` out of every ``every_min``."""

    every_min: float = Field(gt=0)
    duration_min: float = Field(gt=0)

    @model_validator(mode="after")
    def _shorter(self) -> Stall:
        if self.duration_min > self.every_min:
            raise ValueError("duration_min must not exceed every_min")
        return self


class PeriodEffect(_Model):
    """A recurring window in the site's local time that slows some endpoints.

    Active on ``days`` from ``start`` (inclusive) to ``end`` (exclusive), local time of the site
    (the scenario's ``timezone`` when the request names no known site). While active, a matching
    request gets ``add_ms + base_ms * (multiplier - 1)`` more service time; with ``stall`` set,
    only during the stall minutes of the window.
    """

    name: str
    description: str = ""
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    start: time
    end: time
    endpoints: list[str] | None = None
    sites: list[str] | None = None
    add_ms: float = 0.0
    multiplier: float = Field(1.0, ge=0)
    stall: Stall | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PeriodEffect:
        if self.end <= self.start:
            raise ValueError("end must be after start (windows do not cross midnight)")
        return self


class Change(_Model):
    """A change released at ``at`` (UTC) that alters matching endpoints from then (until ``until``).

    ``network_add_ms`` is extra network delay at the matching sites (a degraded link, a new proxy):
    the probe waits longer while the EPR's server spans stay as they were.
    """

    name: str
    description: str = ""
    at: datetime
    until: datetime | None = None
    endpoints: list[str] | None = None
    sites: list[str] | None = None
    add_ms: float = 0.0
    multiplier: float = Field(1.0, ge=0)
    network_add_ms: float = Field(0.0, ge=0)

    @field_validator("at", "until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-10-14T07:00:00Z)")
        return v


class Outage(_Model):
    """From ``start`` to ``end`` (UTC) matching requests are answered with ``status``."""

    name: str
    description: str = ""
    start: datetime
    end: datetime
    status: int = Field(503, ge=500, le=599)
    endpoints: list[str] | None = None
    response_ms: float = Field(5.0, ge=0, description="service time of the error response")

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-10-21T03:10:00Z)")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Outage:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class LoadCurve(_Model):
    """Clinical-day load: service-time multipliers at local times, linearly interpolated.

    Each list holds ``[HH:MM, multiplier]`` points (any order); between points the multiplier is
    interpolated linearly, and it wraps around midnight. An empty list means a flat 1.0.
    """

    weekday: list[tuple[time, float]] = Field(default_factory=list)
    weekend: list[tuple[time, float]] = Field(default_factory=list)

    @field_validator("weekday", "weekend")
    @classmethod
    def _positive(cls, v: list[tuple[time, float]]) -> list[tuple[time, float]]:
        for _, m in v:
            if m <= 0:
                raise ValueError("multipliers must be positive")
        return sorted(v)


class Tail(_Model):
    """A rare slow request: a share ``probability`` of matching requests gets ``add_ms`` more.

    Which requests are hit is a pure function of (tail name, endpoint, site, instant), so the
    model stays deterministic; over many requests the share approaches ``probability``.
    """

    name: str
    description: str = ""
    probability: float = Field(ge=0, le=1)
    add_ms: float = Field(ge=0)
    endpoints: list[str] | None = None
    sites: list[str] | None = None


class FaultRule(_Model):
    """Inject ``kind`` into a share ``rate`` of matching requests (decided by a seeded RNG).

    Kinds: ``5xx`` (an OperationOutcome with ``status``), ``hang`` (wait ``hang_s`` before the normal
    response), ``reset`` (abort the TCP connection without a response), ``malformed_json`` (200 with a
    truncated body), ``401`` (reject the token).
    """

    endpoint: str = "*"
    kind: FaultKind
    rate: float = Field(1.0, ge=0, le=1)
    status: int = Field(500, ge=500, le=599)
    hang_s: float = Field(5.0, ge=0)
    sites: list[str] | None = None

    def matches(self, endpoint: str, site: str | None) -> bool:
        """True when the rule covers ``endpoint`` at ``site``."""
        if self.sites is not None and site not in self.sites:
            return False
        return fnmatch.fnmatchcase(endpoint, self.endpoint)


class AuthConfig(_Model):
    """The client ``POST /auth/token`` accepts: by its secret (OAuth2 client credentials), or by a
    client assertion JWT signed with its private key (SMART Backend Services, ``private_key_jwt``)
    when ``jwks`` holds its public keys (a JWKS, ``{"keys": [...]}``)."""

    required: bool = True
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_lifetime_s: float = Field(300.0, gt=0)
    jwks: dict[str, Any] | None = None

    @field_validator("jwks")
    @classmethod
    def _keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and not (isinstance(v.get("keys"), list) and v["keys"]):
            raise ValueError("jwks must be a JWKS: {keys: [public keys]}")
        return v


class FrontendRelease(_Model):
    """A release of the web front end at ``at`` (UTC): from then (until ``until``) the record page
    behaves as given (fields left out keep the front end's defaults)."""

    name: str
    description: str = ""
    at: datetime
    until: datetime | None = None
    sequential_panels: bool | None = None
    note_render_ms: float | None = Field(None, ge=0)
    spinner_linger_ms: float | None = Field(None, ge=0)

    _aware = field_validator("at", "until")(Change._aware.__func__)  # type: ignore[attr-defined]


class FrontendModel(_Model):
    """What the web front end under ``/app/`` adds to the API's time (see ``testbed/web/model.py``).

    Attributes:
        sequential_panels: the record page fetches its panels one after another, not together.
        note_render_ms: main-thread work per note shown (a long notes list renders slowly).
        spinner_linger_ms: the record's spinner stays this long after the last panel is shown.
        releases: front-end releases that change the above from a known moment.
    """

    sequential_panels: bool = False
    note_render_ms: float = Field(0.0, ge=0)
    spinner_linger_ms: float = Field(0.0, ge=0)
    releases: list[FrontendRelease] = Field(default_factory=list)


class Scenario(_Model):
    """A whole scenario; see ``default_scenario.yaml`` for a commented example."""

    name: str = "scenario"
    description: str = ""
    timezone: str = "Europe/London"
    sites: dict[str, SiteModel] = Field(default_factory=dict)
    service_ms: dict[str, float] = Field(default_factory=lambda: {"default": 50.0})
    jitter_ms: float = Field(0.0, ge=0)
    load_curve: LoadCurve = Field(default_factory=LoadCurve)
    periods: list[PeriodEffect] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    outages: list[Outage] = Field(default_factory=list)
    tails: list[Tail] = Field(default_factory=list)
    faults: list[FaultRule] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    frontend: FrontendModel = Field(default_factory=FrontendModel)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)

    @field_validator("service_ms")
    @classmethod
    def _service(cls, v: dict[str, float]) -> dict[str, float]:
        for key, ms in v.items():
            if ms < 0:
                raise ValueError(f"{key}: service time must not be negative")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> Scenario:
        seen: set[str] = set()
        for item in (*self.periods, *self.changes, *self.outages, *self.tails):
            if item.name in seen:
                raise ValueError(f"effect name {item.name!r} is used twice")
            seen.add(item.name)
        return self

    def base_service_ms(self, endpoint: str) -> float:
        """Base service time of ``endpoint``: exact key, else first matching pattern, else default."""
        if endpoint in self.service_ms:
            return self.service_ms[endpoint]
        for pattern, ms in self.service_ms.items():
            if pattern != "default" and fnmatch.fnmatchcase(endpoint, pattern):
                return ms
        return self.service_ms.get("default", 0.0)

    def with_overrides(self, **changes: Any) -> Scenario:
        """A validated copy with top-level fields replaced (plain dicts/lists are accepted).

        Example: ``load_scenario().with_overrides(jitter_ms=0, faults=[], outages=[])``.
        """
        data = self.model_dump(mode="python")
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"unknown scenario field(s): {', '.join(sorted(unknown))}")
        data.update(changes)
        return type(self).model_validate(data)


def load_scenario(path: Path | None = None) -> Scenario:
    """Read and validate a scenario file; ``None`` loads the packaged default scenario.

    Raises:
        ScenarioError: the file cannot be read, is not YAML, or does not validate.
    """
    if path is None:
        label = "default_scenario.yaml"
        try:
            text = resources.files("testbed").joinpath("default_scenario.yaml").read_text("utf-8")
        except OSError as exc:
            raise ScenarioError(f"{label}: cannot read the packaged scenario: {exc}") from exc
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{label}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{label}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{label}: the top level must be a mapping")
    try:
        return Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{label}: {problems}") from exc


_DEFAULT_TEST_SITES = ("ward-7", "outpatient-clinic", "community-hospital")


def scenario_for_tests(
    default_ms: float = 0.0,
    *,
    service_ms: Mapping[str, float] | None = None,
    network_ms: Mapping[str, float] | None = None,
    sites: Iterable[str] = _DEFAULT_TEST_SITES,
    faults: Sequence[FaultRule | Mapping[str, Any]] = (),
    auth_required: bool = True,
    jwks: Mapping[str, Any] | None = None,
    token_lifetime_s: float = 300.0,
    timezone: str = "Europe/London",
) -> Scenario:
    """A flat, predictable scenario for tests: fixed service times, no load curve, no jitter.

    No periods, changes, outages or tails: the modelled delay of a request is exactly
    ``service_ms.get(endpoint, default_ms) + network_ms.get(site, 0)`` milliseconds, whatever the
    clock says.

    Args:
        default_ms: service time of every endpoint not named in ``service_ms``.
        service_ms: per route key (or pattern) service times, e.g. ``{"GET /Patient/{id}": 100}``.
        network_ms: per-site network delay; sites named here are added to ``sites``.
        sites: site names known to the scenario (network delay 0 unless in ``network_ms``).
        faults: fault rules active from the start (``FaultRule`` or plain mappings).
        auth_required: False lets FHIR requests through without a bearer token.
        jwks: the client's public keys: the token endpoint then also accepts a client assertion
            JWT signed with the private key (SMART Backend Services).
        token_lifetime_s: lifetime of the tokens the token endpoint issues.
        timezone: time zone for requests that name no known site.
    """
    network = dict(network_ms or {})
    site_names = list(dict.fromkeys([*sites, *network]))
    return Scenario.model_validate({
        "name": "tests",
        "description": "Flat delays for tests.",
        "timezone": timezone,
        "sites": {s: {"timezone": timezone, "network_delay_ms": network.get(s, 0.0)}
                  for s in site_names},
        "service_ms": {"default": default_ms, **dict(service_ms or {})},
        "jitter_ms": 0.0,
        "faults": [f.model_dump() if isinstance(f, FaultRule) else dict(f) for f in faults],
        "auth": {"required": auth_required, "token_lifetime_s": token_lifetime_s,
                 "jwks": dict(jwks) if jwks is not None else None},
    })
