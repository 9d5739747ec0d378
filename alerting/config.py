"""The ``alerting`` section of the configuration file: receivers, routes, intervals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AlertingConfig", "AlertmanagerReceiver", "AppriseReceiver", "EmailReceiver", "RouteConfig", "WebhookReceiver", "check_alerting"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertmanagerReceiver(_Model):
    """A Prometheus Alertmanager: Wardwatch posts its alerts to its API v2, as Prometheus does."""

    name: str = Field(pattern=_NAME, description="Unique among the receivers.")
    type: Literal["alertmanager"]
    url: str = Field(description="Alertmanager's base URL, e.g. http://alertmanager:9093 (no credentials).")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Limit on one post.")


class WebhookReceiver(_Model):
    """Any HTTP endpoint that takes Alertmanager's webhook format (version 4)."""

    name: str = Field(pattern=_NAME, description="Unique among the receivers.")
    type: Literal["webhook"]
    url: str = Field(description="Where notifications are POSTed (no credentials in the URL).")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Limit on one post.")


class EmailReceiver(_Model):
    """E-mail through an SMTP server (the standard library's client), grouped as webhooks are."""

    name: str = Field(pattern=_NAME, description="Unique among the receivers.")
    type: Literal["email"]
    host: str = Field(min_length=1, description="The SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="Its port (587 for submission with STARTTLS).")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before signing in.")
    sender: str = Field(min_length=3, description="The From address.")
    to: list[str] = Field(min_length=1, description="The addresses notified.")
    username: str | None = Field(None, description="Sign in as this user (with password).")
    password: str | None = Field(
        None, description="The password, as a secret reference only: ${env:NAME} or ${file:PATH}.")
    timeout_s: float = Field(10.0, gt=0, le=60, description="Limit on one delivery.")

    @field_validator("password")
    @classmethod
    def _a_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\$\{(env|file):.+\}", value):
            raise ValueError("write a secret reference, ${env:NAME} or ${file:PATH}, never the password itself")
        return value


class AppriseReceiver(_Model):
    """Chat and the rest through the apprise library, grouped as webhooks are."""

    name: str = Field(pattern=_NAME, description="Unique among the receivers.")
    type: Literal["apprise"]
    urls: list[str] = Field(
        min_length=1, description="apprise URLs (they hold tokens), each a secret reference: ${env:NAME} or ${file:PATH}.")

    @field_validator("urls")
    @classmethod
    def _references(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"\$\{(env|file):.+\}", value):
                raise ValueError("write each URL as a secret reference, ${env:NAME} or ${file:PATH}: it holds a token")
        return values


Receiver = Annotated[AlertmanagerReceiver | WebhookReceiver | EmailReceiver | AppriseReceiver,
                     Field(discriminator="type")]


class RouteConfig(_Model):
    """Alerts whose labels equal every matcher go to these receivers."""

    matchers: dict[str, str] = Field(default_factory=dict, description="Label = value, all must hold; empty: every alert.")
    receivers: list[str] = Field(min_length=1, description="Names of receivers in alerting.receivers.")


class AlertingConfig(_Model):
    """What is evaluated how often, and where alerts are delivered."""

    interval_s: float = Field(60.0, ge=1, le=3600, description="How often every alert is evaluated.")
    for_s: float = Field(0.0, ge=0, le=86_400, description="How long a condition holds (pending) before it fires.")
    group_interval_s: float = Field(
        300.0, ge=0, le=86_400, description="Webhook: least time between notifications of one group when it changes.")
    repeat_interval_s: float = Field(
        14_400.0, ge=1, le=7 * 86_400, description="Webhook: a group still firing is notified again after this.")
    silent_slots: int = Field(5, ge=1, le=10_000, description="A site is silent after this many slots without a run.")
    failing_runs: int = Field(3, ge=1, le=100, description="Every run failing: this many latest runs all failed.")
    findings_days: int = Field(
        7, ge=0, le=90, description="Unwatched waits: the days of runs the findings read (0: no such alerts).")
    findings_every_s: float = Field(
        900.0, ge=60, le=86_400, description="Unwatched waits: how often the findings are read again (they cost seconds).")
    dashboard_url: str = Field("http://127.0.0.1:8050", description="The dashboard's address, for links in messages.")
    receivers: list[Receiver] = Field(default_factory=list, description="Where alerts go: alertmanager, webhook, email or apprise.")
    routes: list[RouteConfig] = Field(
        default_factory=list, description="Which alerts go to which receivers; none: every alert to every receiver.")


def check_alerting(config: AlertingConfig) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Receiver names unique, routes naming receivers that exist: ``(location, message)``."""
    seen: set[str] = set()
    for i, receiver in enumerate(config.receivers):
        if receiver.name in seen:
            yield ("alerting", "receivers", i, "name"), f"a second receiver named {receiver.name!r}"
        seen.add(receiver.name)
    for i, route in enumerate(config.routes):
        for j, name in enumerate(route.receivers):
            if name not in seen:
                known = ", ".join(sorted(seen)) or "none configured"
                yield ("alerting", "routes", i, "receivers", j), f"no receiver named {name!r} (known: {known})"
