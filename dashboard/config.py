"""The `dashboard` section of the configuration file."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DashboardConfig"]


class DashboardConfig(BaseModel):
    """Where the dashboard listens and how often live pages refresh."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless you mean otherwise.")
    port: int = Field(8050, ge=1, le=65535, description="TCP port of the dashboard.")
    refresh_interval_s: float = Field(
        15.0, gt=0, description="How often live pages look for new runs, in seconds."
    )
    timezone: str = Field("Europe/London", description="IANA time zone in which times are shown.")
    recent_runs: int = Field(200, ge=1, le=100_000, description="How many recent runs the runs page lists.")
    allowed_hosts: tuple[str, ...] = Field(
        (), description="Host names the dashboard answers to besides the address it listens on "
        "(and localhost): e.g. its DNS name. Any other Host header is refused (DNS rebinding)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value
