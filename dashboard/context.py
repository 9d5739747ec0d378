"""What a running dashboard needs to know, kept on the Flask server rather than in globals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import flask

__all__ = ["DashboardContext", "current_context"]

_KEY = "WARDWATCH_DASHBOARD"


@dataclass(frozen=True)
class DashboardContext:
    data_dir: Path
    timezone: str = "Europe/London"
    refresh_interval_s: float = 15.0
    recent_runs: int = 200

    def install(self, server: flask.Flask) -> None:
        server.config[_KEY] = self


def current_context() -> DashboardContext:
    """The context of the app serving the current request (layouts and callbacks run in one)."""
    return flask.current_app.config[_KEY]
