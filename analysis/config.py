"""The `periods` and `objectives` sections of the configuration file."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "WEEKDAYS",
    "ChangeEventConfig",
    "ExclusionConfig",
    "ObjectiveConfig",
    "PeriodConfig",
    "SLAConfig",
    "ServiceHoursConfig",
    "TaskVolumeConfig",
    "check_analysis_references",
]

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

    name: str = Field(min_length=1, description="Name shown in reports and on the dashboard.")
    workflow: str = Field(description="The workflow whose runs it judges.")
    threshold_s: float = Field(gt=0, description="A run is good when its waiting time is at most this.")
    target: float = Field(gt=0, lt=1, description="Share of good runs required, e.g. 0.9.")
    periods: list[str] = Field(default_factory=list, description="Clinical periods it applies in; empty: all hours.")
    window_minutes: int = Field(15, ge=1, description="Length of the windows it is judged in.")
    budgeting_method: Literal["Occurrences", "Timeslices", "RatioTimeslices"] = Field(
        "Occurrences", description="OpenSLO budgeting: good runs / all runs, good windows / all, or mean window ratio."
    )
    time_slice_target: float | None = Field(
        None, gt=0, le=1, description="For Timeslices: a window is good when its ratio meets this."
    )
    apdex_t_s: float | None = Field(None, gt=0, description="Apdex T for this workflow; defaults to threshold_s.")
    sites: list[str] = Field(default_factory=list, description="Sites it applies at; empty: every site.")
    description: str = Field("", description="Shown in reports; OpenSLO's description.")
    compliance_window: str = Field(
        "1M", description="OpenSLO duration of the compliance window: 1M (a calendar month), 28d, 2w.",
    )
    rolling: bool = Field(False, description="A rolling compliance window instead of a calendar one.")

    @field_validator("compliance_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.match(r"^[1-9][0-9]*[smhdwMQY]$", value):
            raise ValueError(f"not an OpenSLO duration: {value!r} (e.g. 1M, 28d, 2w; m is minutes)")
        return value

    @property
    def apdex_t(self) -> float:
        """The Apdex T of the workflow: ``apdex_t_s``, else ``threshold_s``."""
        return self.apdex_t_s if self.apdex_t_s is not None else self.threshold_s

    @model_validator(mode="after")
    def _timeslices_need_target(self) -> ObjectiveConfig:
        if self.budgeting_method == "Timeslices" and self.time_slice_target is None:
            raise ValueError("Timeslices budgeting needs time_slice_target")
        return self


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} needs a UTC offset, e.g. 2026-10-04T01:00:00Z")
    return value


class ServiceHoursConfig(BaseModel):
    """The hours an SLA counts: weekdays and a local start and end (in the SLA's time zone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weekdays: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1,
        description="Days the service hours apply on.",
    )
    start: dt.time = Field(description="Local start, HH:MM.")
    end: dt.time = Field(description="Local end, HH:MM (after start).")
    except_dates: list[dt.date] = Field(
        default_factory=list, description="Dates outside service hours (bank holidays)."
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> ServiceHoursConfig:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ExclusionConfig(BaseModel):
    """An agreed maintenance window the SLA does not count, ``[start, end)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.datetime = Field(description="Start, ISO 8601 with offset.")
    end: dt.datetime = Field(description="End (exclusive), ISO 8601 with offset.")
    title: str = Field("", description="What the maintenance was.")

    @model_validator(mode="after")
    def _check(self) -> ExclusionConfig:
        _aware(self.start, "start")
        _aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


SLAMetric = Literal["mean", "percentile", "share_under", "availability"]
BudgetingMethod = Literal["Occurrences", "Timeslices", "RatioTimeslices"]


class SLAConfig(BaseModel):
    """An SLA exactly as the contract computes it.

    Metrics, over requests (the probe's per-request timings, or the EPR's own server timings):

    - ``mean``: mean response time <= ``target`` seconds;
    - ``percentile``: the ``percentile``-th percentile of response times <= ``target`` seconds;
    - ``share_under``: share of requests answered within ``threshold_s`` >= ``target``;
    - ``availability``: share of requests that did not fail (an error, a 5xx, a timeout) >=
      ``target``. A slow but successful response counts as available, as contracts count it.

    ``budgeting_method`` ``Timeslices``/``RatioTimeslices`` apply to ``share_under`` and
    ``availability`` (slices of ``time_slice_minutes``; a slice is good when its ratio reaches
    ``time_slice_target``); ``mean`` and ``percentile`` are judged on the pooled requests.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Name shown in reports; unique among the SLAs.")
    description: str = Field("", description="The contract's wording, shown in reports.")
    workflows: list[str] = Field(
        default_factory=list, description="Workflows whose requests count; empty: all."
    )
    sites: list[str] = Field(default_factory=list, description="Sites whose requests count; empty: all.")
    endpoints: list[str] = Field(
        default_factory=list,
        description="URL templates (shell patterns, e.g. '/fhir/Patient*') that count; empty: all.",
    )
    metric: SLAMetric = Field(description="mean, percentile, share_under (a threshold) or availability.")
    percentile: float | None = Field(None, gt=0, lt=100, description="For metric percentile: 95 for p95.")
    threshold_s: float | None = Field(None, gt=0, description="For metric share_under: the response-time limit.")
    target: float = Field(gt=0, description="Seconds for mean/percentile; a ratio in (0, 1) for share_under/availability.")
    window: Literal["calendar_month", "rolling"] = Field(
        "calendar_month", description="Compliance window: the calendar month in `timezone`, or the last `rolling_days`."
    )
    rolling_days: int | None = Field(None, ge=1, description="For window rolling: its length in days.")
    timezone: str = Field("UTC", description="IANA zone of the calendar month and the service hours.")
    service_hours: ServiceHoursConfig | Literal["24x7"] = Field(
        "24x7", description="The hours the contract counts: 24x7, or weekdays with local start and end."
    )
    exclusions: list[ExclusionConfig] = Field(default_factory=list, description="Agreed maintenance windows.")
    exclusions_file: Path | None = Field(
        None, description="A CSV of further exclusions: columns start, end[, title] (ISO 8601 with offset).",
    )
    data_source: Literal["probe", "server"] = Field(
        "probe", description="probe: the probes' per-request timings; server: the EPR's own (imported).",
    )
    budgeting_method: BudgetingMethod = Field(
        "Occurrences", description="OpenSLO budgeting: Occurrences, Timeslices or RatioTimeslices."
    )
    time_slice_target: float | None = Field(
        None, gt=0, le=1, description="For Timeslices: a slice is good when its ratio meets this."
    )
    time_slice_minutes: int = Field(5, ge=1, description="Slice length for Timeslices budgeting.")

    _timezone = field_validator("timezone")(_check_timezone)

    @model_validator(mode="after")
    def _consistent(self) -> SLAConfig:
        if self.metric == "percentile" and self.percentile is None:
            raise ValueError("metric percentile needs percentile (e.g. 95)")
        if self.metric == "share_under" and self.threshold_s is None:
            raise ValueError("metric share_under needs threshold_s")
        if self.metric in ("share_under", "availability") and not 0 < self.target < 1:
            raise ValueError(f"metric {self.metric} needs a target ratio in (0, 1), e.g. 0.95")
        if self.metric in ("mean", "percentile") and self.budgeting_method != "Occurrences":
            raise ValueError(f"metric {self.metric} is judged on pooled requests: budgeting_method Occurrences")
        if self.window == "rolling" and self.rolling_days is None:
            raise ValueError("window rolling needs rolling_days")
        if self.budgeting_method == "Timeslices" and self.time_slice_target is None:
            raise ValueError("Timeslices budgeting needs time_slice_target")
        return self

    @property
    def ratio_target(self) -> float:
        """The objective as a ratio of good requests (the percentile's q for ``percentile``)."""
        if self.metric == "percentile" and self.percentile is not None:
            return self.percentile / 100
        return self.target

    @property
    def wording(self) -> str:
        """The SLA in words: ``95% of requests within 2.0 s, Mon-Fri 08:00-18:00``."""
        if self.metric == "mean":
            text = f"mean response time at most {self.target:g} s"
        elif self.metric == "percentile":
            text = f"p{self.percentile:g} response time at most {self.target:g} s"
        elif self.metric == "share_under":
            text = f"{self.target * 100:g}% of requests within {self.threshold_s:g} s"
        else:
            text = f"availability at least {self.target * 100:g}%"
        if isinstance(self.service_hours, ServiceHoursConfig):
            h = self.service_hours
            days = ",".join(d.capitalize() for d in h.weekdays)
            if list(h.weekdays) == list(WEEKDAYS[:5]):
                days = "Mon-Fri"
            elif list(h.weekdays) == list(WEEKDAYS):
                days = "every day"
            text += f", {days} {h.start:%H:%M}-{h.end:%H:%M}"
        else:
            text += ", 24x7"
        if self.window == "rolling":
            text += f", over {self.rolling_days} rolling days"
        else:
            text += ", per calendar month"
        return text


class ChangeEventConfig(BaseModel):
    """A change to the EPR (a release, a configuration change) whose impact is measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: dt.datetime = Field(description="When it took effect, ISO 8601 with offset.")
    title: str = Field(min_length=1, description="A short name, e.g. 'Release 24.3'.")
    workflows: list[str] = Field(default_factory=list, description="Workflows it may affect; empty: all.")
    description: str = Field("", description="What changed, shown in reports.")
    until: dt.datetime | None = Field(
        None, description="The end of its planned window (ISO 8601 with offset): alerts about its workflows "
                          "are silenced from `at` until then.")

    @field_validator("at")
    @classmethod
    def _aware_at(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value, "at")

    @model_validator(mode="after")
    def _window(self) -> ChangeEventConfig:
        if self.until is not None:
            _aware(self.until, "until")
            if self.until <= self.at:
                raise ValueError("until must be after at")
        return self


class TaskVolumeConfig(BaseModel):
    """How many times clinicians perform a workflow, to scale clinician time lost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str = Field(description="The workflow (task) the volume is for.")
    per_day: float = Field(gt=0, description="Tasks per day at one site within the period.")
    period: str | None = Field(None, description="The clinical period the volume is for; none: all hours.")
    sites: list[str] = Field(default_factory=list, description="Sites it applies to; empty: every site.")
    assumption: str = Field("", description="Where the number comes from, shown with every figure.")


Problem = tuple[tuple[str | int, ...], str]


def check_analysis_references(
    *,
    workflows: set[str] | frozenset[str],
    sites: set[str] | frozenset[str],
    periods: list[PeriodConfig] | tuple[PeriodConfig, ...] = (),
    objectives: list[ObjectiveConfig] | tuple[ObjectiveConfig, ...] = (),
    slas: list[SLAConfig] | tuple[SLAConfig, ...] = (),
    changes: list[ChangeEventConfig] | tuple[ChangeEventConfig, ...] = (),
    task_volumes: list[TaskVolumeConfig] | tuple[TaskVolumeConfig, ...] = (),
) -> list[Problem]:
    """References from the analysis sections to workflows, sites and periods that do not exist.

    Returns:
        ``(path, message)`` pairs, the path a tuple of keys and indexes into the configuration
        (``("slas", 0, "workflows", 1)``), for the config loader to map onto YAML lines.
    """
    problems: list[Problem] = []
    period_names = {p.name for p in periods}

    def names(section: str, index: int, key: str, values: list[str], known: set[str] | frozenset[str],
              what: str) -> None:
        for j, value in enumerate(values):
            if value not in known:
                problems.append(((section, index, key, j), f"no {what} named {value!r} in {what}s"))

    for i, objective in enumerate(objectives):
        names("objectives", i, "sites", objective.sites, sites, "site")
    for i, sla in enumerate(slas):
        names("slas", i, "workflows", sla.workflows, workflows, "workflow")
        names("slas", i, "sites", sla.sites, sites, "site")
    for i, change in enumerate(changes):
        names("changes", i, "workflows", change.workflows, workflows, "workflow")
    for i, volume in enumerate(task_volumes):
        if volume.workflow not in workflows:
            problems.append((("task_volumes", i, "workflow"),
                             f"no workflow named {volume.workflow!r} in workflows"))
        if volume.period is not None and volume.period not in period_names:
            problems.append((("task_volumes", i, "period"),
                             f"no period named {volume.period!r} in periods"))
        names("task_volumes", i, "sites", volume.sites, sites, "site")
    names_seen: set[str] = set()
    for i, sla in enumerate(slas):
        if sla.name in names_seen:
            problems.append((("slas", i, "name"), f"two SLAs are named {sla.name!r}"))
        names_seen.add(sla.name)
    return problems
