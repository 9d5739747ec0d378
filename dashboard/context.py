"""What a running dashboard needs to know, kept on the Flask server rather than in globals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import flask

from analysis import ClinicalCalendar
from analysis.config import ChangeEventConfig, ObjectiveConfig, PeriodConfig, SLAConfig, TaskVolumeConfig

__all__ = ["DEFAULT_THRESHOLD_S", "DashboardContext", "SiteInfo", "WorkflowInfo", "current_context"]

_KEY = "WARDWATCH_DASHBOARD"
# Without an objective, a workflow is judged against this (a task, not a single click: several
# seconds of waiting in series already break a clinician's flow).
DEFAULT_THRESHOLD_S = 3.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SiteInfo:
    name: str
    title: str
    timezone: str


@dataclass(frozen=True)
class WorkflowInfo:
    name: str
    description: str = ""
    threshold_s: float = DEFAULT_THRESHOLD_S
    threshold_source: str = "default"  # the objective it comes from, or "default"

    @property
    def title(self) -> str:
        return self.name.replace("-", " ").replace("_", " ").capitalize()

    @property
    def threshold_origin(self) -> str:
        """Where T comes from, in words: "objective 'X'", "the default (no objective sets one)"."""
        return "the default (no objective sets one)" if self.threshold_source == "default" else self.threshold_source


@dataclass(frozen=True)
class DashboardContext:
    data_dir: Path
    timezone: str = "Europe/London"
    refresh_interval_s: float = 15.0
    recent_runs: int = 200
    sites: tuple[SiteInfo, ...] = ()
    workflows: tuple[WorkflowInfo, ...] = ()
    periods: tuple[PeriodConfig, ...] = ()
    changes: tuple[ChangeEventConfig, ...] = ()
    slas: tuple[SLAConfig, ...] = ()
    objectives: tuple[ObjectiveConfig, ...] = ()
    task_volumes: tuple[TaskVolumeConfig, ...] = ()
    config_dir: Path | None = None  # relative files named in the config (exclusions) resolve here
    now: Callable[[], dt.datetime] = field(default=_utc_now)

    def install(self, server: flask.Flask) -> None:
        server.config[_KEY] = self

    def workflow(self, name: str | None) -> WorkflowInfo:
        """The named workflow, or one known only from the data (default threshold)."""
        for info in self.workflows:
            if info.name == name:
                return info
        return WorkflowInfo(name or "")

    def site_title(self, name: str) -> str:
        return next((s.title for s in self.sites if s.name == name), name)

    def site_timezone(self, name: str | None) -> str:
        return next((s.timezone for s in self.sites if s.name == name), self.timezone)

    def calendar(self) -> ClinicalCalendar:
        return ClinicalCalendar(self.periods, {s.name: s.timezone for s in self.sites}, default_timezone=self.timezone)


def current_context() -> DashboardContext:
    """The context of the app serving the current request (layouts and callbacks run in one)."""
    return flask.current_app.config[_KEY]
