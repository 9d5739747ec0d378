"""The alerting package wired to the configuration: `wardwatch alerts`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from alerting.config import AlertingConfig
from alerting.engine import Evaluator, run_forever
from alerting.messages import Names
from alerting.rules import AlertInputs
from analysis.calendar import ClinicalCalendar
from wardwatch.config import WardwatchConfig

__all__ = ["evaluator", "run_alerts"]


def _cadence_s(config: WardwatchConfig) -> dict[str, float]:
    """Each site's shortest workflow interval: a slot of the site's busiest probe."""
    cadence: dict[str, float] = {}
    for workflow in config.workflows:
        for site in workflow.sites or [s.name for s in config.sites]:
            cadence[site] = min(cadence.get(site, workflow.interval_s), workflow.interval_s)
    return cadence


def evaluator(config: WardwatchConfig, config_dir: Path | None = None) -> Evaluator:
    """The evaluator over the configured store, with the configured receivers (none: state only)."""
    alerting = config.alerting or AlertingConfig()
    inputs = AlertInputs(
        objectives=config.objectives, slas=config.slas,
        calendar=ClinicalCalendar(config.periods, {s.name: s.timezone for s in config.sites},
                                  default_timezone=config.dashboard.timezone),
        cadence_s=_cadence_s(config), silent_slots=alerting.silent_slots, failing_runs=alerting.failing_runs,
        timezone=config.dashboard.timezone, base_dir=config_dir,
    )
    names = Names(workflows={w.name: w.name.replace("-", " ").replace("_", " ").capitalize() for w in config.workflows},
                  sites={s.name: s.title or s.name for s in config.sites},
                  timezone=config.dashboard.timezone, dashboard_url=alerting.dashboard_url)
    return Evaluator(config.store.path, alerting, inputs, names)


def run_alerts(config: WardwatchConfig, *, once: bool, config_dir: Path | None = None) -> tuple[list[dict], list[str]]:
    """One evaluation and one delivery attempt (``once``), or evaluate every interval until stopped.

    Returns the alerts not resolved and a line per failed delivery (``once`` only).
    """
    ev = evaluator(config, config_dir)
    if once:
        alerts = ev.evaluate()
        return alerts, ev.deliver()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    run_forever(ev, stop)
    return [], []
