"""The `periods` and `objectives` sections of the configuration file."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ObjectiveConfig", "PeriodConfig", "WEEKDAYS"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class PeriodConfig(BaseModel):
    """A named, recurring clinical period in each site's local time (e.g. ward rounds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Name shown in reports, e.g. 'ward rounds'.")
    weekdays: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"],
        min_length=1,
        description="Days the period recurs on.",
    )
    start: dt.time = Field(description="Local start time, HH:MM.")
    end: dt.time = Field(description="Local end time, HH:MM (after start).")
    sites: list[str] = Field(default_factory=list, description="Sites it applies to; empty means all.")
    except_dates: list[dt.date] = Field(
        default_factory=list, description="Dates it does not happen on (bank holidays)."
    )
    weight: float = Field(1.0, gt=0, description="Clinical criticality relative to other periods.")

    @model_validator(mode="after")
    def _end_after_start(self) -> PeriodConfig:
        if self.end <= self.start:
            raise ValueError("end must be after start (periods that cross midnight are two periods)")
        return self


class ObjectiveConfig(BaseModel):
    """An experience objective on whole workflow runs, judged per short window per site."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    workflow: str = Field(description="The workflow whose runs it judges.")
    threshold_s: float = Field(gt=0, description="A run is good when its waiting time is at most this.")
    target: float = Field(gt=0, lt=1, description="Share of good runs required, e.g. 0.9.")
    periods: list[str] = Field(default_factory=list, description="Clinical periods it applies in; empty: all hours.")
    window_minutes: int = Field(15, ge=1, description="Length of the windows it is judged in.")
    budgeting_method: Literal["Occurrences", "Timeslices", "RatioTimeslices"] = "Occurrences"
    time_slice_target: float | None = Field(
        None, gt=0, le=1, description="For Timeslices: a window is good when its ratio meets this."
    )
    apdex_t_s: float | None = Field(None, gt=0, description="Apdex T for this workflow; defaults to threshold_s.")

    @model_validator(mode="after")
    def _timeslices_need_target(self) -> ObjectiveConfig:
        if self.budgeting_method == "Timeslices" and self.time_slice_target is None:
            raise ValueError("Timeslices budgeting needs time_slice_target")
        return self
