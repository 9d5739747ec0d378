"""The ``observatory`` section of the configuration file: who may send spans, and the limits.

Tokens are written as secret references (``${env:NAME}`` or ``${file:PATH}``) and resolved by the
composition root when the observatory starts; this package only ever sees the resolved values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["ObservatoryConfig", "SourceConfig", "TLSFilesConfig", "check_observatory_references"]

MIB = 1024 * 1024
_REFERENCE = re.compile(r"^\$\{(env|file):[^}]+\}$")


def secret_reference(value: str) -> str:
    """A token must be a reference: a token written into the file would be a secret in the file."""
    if not _REFERENCE.match(value):
        raise ValueError("a token is a secret: write ${env:NAME} or ${file:PATH}, never the token itself")
    return value


SecretReference = Annotated[str, AfterValidator(secret_reference)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceConfig(_Model):
    """An EPR that sends its own server spans (any ``service.name`` other than Wardwatch's)."""

    service_name: str = Field(min_length=1, description="The EPR's service.name; its token writes only these spans.")
    target: str | None = Field(default=None, description="The configured target the spans belong to (stored as wardwatch.target).")
    token: SecretReference = Field(description="Bearer token, as ${env:NAME} or ${file:PATH}.")


class TLSFilesConfig(_Model):
    """A certificate and its key (PEM files), for an observatory reachable beyond loopback."""

    certificate: Path = Field(description="PEM certificate (chain) file.")
    key: Path = Field(description="PEM private key file.")


class ObservatoryConfig(_Model):
    """The central observatory: OTLP/HTTP in, per-site tokens, durable acknowledgement, dedupe."""

    tokens: dict[str, SecretReference] = Field(
        default_factory=dict,
        description="Per site (by name) the bearer token its probe sends, as ${env:NAME} or ${file:PATH}.",
    )
    sources: list[SourceConfig] = Field(
        default_factory=list, description="EPRs sending their own server spans, each with its token."
    )
    tls: TLSFilesConfig | None = Field(default=None, description="Serve HTTPS with these files (default: plain HTTP on loopback).")
    max_body_bytes: int = Field(
        default=16 * MIB, gt=0, description="Largest request body, after decompression (larger: 413)."
    )
    max_pending_spans: int = Field(
        default=500_000, gt=0, description="Spans waiting to be written beyond which requests get 429 and Retry-After."
    )
    dedupe_spans: int = Field(
        default=1_000_000, gt=0, description="How many recently stored span ids are remembered to drop repeats."
    )
    dedupe_hours: float = Field(
        default=24.0, gt=0, description="How long a stored span id is remembered to drop repeats (also across restarts)."
    )


def check_observatory_references(config: ObservatoryConfig, sites: set[str], targets: set[str]) -> list[tuple[tuple[object, ...], str]]:
    """Names the section uses that the rest of the file must define: ``(location, message)`` each."""
    problems: list[tuple[tuple[object, ...], str]] = []
    for site in config.tokens:
        if site not in sites:
            problems.append((("observatory", "tokens", site), f"no site named {site!r} in sites"))
    for i, source in enumerate(config.sources):
        if source.target is not None and source.target not in targets:
            problems.append((("observatory", "sources", i, "target"), f"no target named {source.target!r} in targets"))
    return problems
