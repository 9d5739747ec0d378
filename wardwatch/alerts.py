"""The alerting package wired to the configuration: `wardwatch alerts`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from alerting import silences
from alerting.config import AlertingConfig, AlertmanagerReceiver, AppriseReceiver, EmailReceiver
from alerting.engine import Evaluator, run_forever
from alerting.messages import Names
from alerting.replay import RunsWindow
from alerting.rules import AlertInputs
from alerting.waits import UnwatchedWaits
from analysis.findings import FindingInputs
from analysis.calendar import ClinicalCalendar
from analysis.store import open_store
from wardwatch.config import WardwatchConfig

__all__ = ["add_silence", "evaluator", "expire_silence", "history_notices", "parse_until", "run_alerts"]

HISTORY_MARK = Path("alerting") / "history-notices.json"  # which history's notices were written
HISTORY_STEP = dt.timedelta(minutes=15)


def _cadence_s(config: WardwatchConfig) -> dict[str, float]:
    """Each site's shortest workflow interval: a slot of the site's busiest probe."""
    cadence: dict[str, float] = {}
    for workflow in config.workflows:
        for site in workflow.sites or [s.name for s in config.sites]:
            cadence[site] = min(cadence.get(site, workflow.interval_s), workflow.interval_s)
    return cadence


def evaluator(config: WardwatchConfig, config_dir: Path | None = None, *, replay: bool = False) -> Evaluator:
    """The evaluator over the configured store, with the configured receivers (none: state only).

    ``replay``: for a simulated history, no receivers, its state in memory only, its notices
    marked as the history's, and the findings read once (at the first moment judged)."""
    alerting = config.alerting or AlertingConfig()
    if replay:
        alerting = alerting.model_copy(update={"receivers": [], "routes": [],
                                               "findings_every_s": 10 * 365 * 86_400.0})
    inputs = AlertInputs(
        # a replay leaves out the SLAs' burn rates: two thirds of an evaluation's cost (SQL over
        # every request), and in the demo's history they only ever raise tickets, never a notice
        objectives=config.objectives, slas=() if replay else config.slas,
        calendar=ClinicalCalendar(config.periods, {s.name: s.timezone for s in config.sites},
                                  default_timezone=config.dashboard.timezone),
        # a replay judges no silent site: a simulated history says nothing about a probe being up
        cadence_s={} if replay else _cadence_s(config), silent_slots=alerting.silent_slots, failing_runs=alerting.failing_runs,
        timezone=config.dashboard.timezone, base_dir=config_dir, changes=config.changes,
    )
    names = Names(workflows={w.name: w.name.replace("-", " ").replace("_", " ").capitalize() for w in config.workflows},
                  sites={s.name: s.title or s.name for s in config.sites},
                  timezone=config.dashboard.timezone, dashboard_url=alerting.dashboard_url)
    findings = FindingInputs.from_config(config)
    waits = UnwatchedWaits(findings, config.store.path, days=alerting.findings_days,
                           every_s=alerting.findings_every_s, base_dir=config_dir)
    return Evaluator(config.store.path, alerting, inputs, names, passwords=_passwords(alerting),
                     apprise_urls=_apprise_urls(alerting), waits=waits, keep_state=not replay,
                     notice_source="history" if replay else "alert")


def history_notices(config: WardwatchConfig, start: dt.datetime, end: dt.datetime,
                    config_dir: Path | None = None, *, step: dt.timedelta = HISTORY_STEP) -> int | None:
    """The notices the alerts would have written on the last whole weekday of a simulated history
    (``start`` to ``end``; days in ``dashboard.timezone``): the same evaluator, its clock stepped
    through that day every ``step``, writing notices marked as the history's and notifying no
    receiver (the past is not news). A weekday, so a demo started at night or at a weekend still
    shows what a working day brought.

    Once per history: None when its notices were written already, else how many were written."""
    from analysis.notices import read_notices, write_json

    mark = config.store.path / HISTORY_MARK
    done = {"start": start.isoformat(), "end": end.isoformat()}
    try:
        if json.loads(mark.read_text(encoding="utf-8")) == done:
            return None
    except (FileNotFoundError, ValueError):
        pass
    first, last = last_weekday(start, end, config.dashboard.timezone)
    if first is None:
        write_json(mark, done)
        return 0
    before = {n.id for n in read_notices(config.store.path, limit=10_000)}
    replay = evaluator(config, config_dir, replay=True)
    with open_store(config.store.path, calendar=replay.inputs.calendar) as store:
        # the runs of the day and of the three days its burn rates and failing runs look back on
        window = RunsWindow(store, first - dt.timedelta(days=3), last + dt.timedelta(microseconds=1))
        at = first
        while at <= last:
            replay.evaluate(at, store=window)
            at += step
    write_json(mark, done)
    return sum(1 for n in read_notices(config.store.path, limit=10_000) if n.id not in before)


def last_weekday(start: dt.datetime, end: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime] | tuple[None, None]:
    """The last whole weekday (Monday to Friday, local midnight to midnight) in ``start``..``end``."""
    zone = ZoneInfo(timezone)
    day = end.astimezone(zone).date()
    while True:
        day -= dt.timedelta(days=1)
        first = dt.datetime.combine(day, dt.time(), zone)
        if first < start:
            return None, None
        if day.weekday() < 5:
            return first.astimezone(dt.UTC), dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)


def _apprise_urls(alerting: AlertingConfig) -> dict[str, list[str]]:
    """Each apprise receiver's URLs, read from where their references point."""
    from collector.secretref import SecretResolutionError, resolve_secret

    found: dict[str, list[str]] = {}
    for i, receiver in enumerate(alerting.receivers):
        if isinstance(receiver, AppriseReceiver):
            for j, url in enumerate(receiver.urls):
                try:
                    found.setdefault(receiver.name, []).append(resolve_secret(url, os.environ))
                except SecretResolutionError as exc:
                    raise ValueError(f"alerting.receivers.{i}.urls.{j}: {exc}") from exc
    return found


def _passwords(alerting: AlertingConfig) -> dict[str, str]:
    """Each e-mail receiver's password, read from where its reference points."""
    from collector.secretref import SecretResolutionError, resolve_secret

    found = {}
    for i, receiver in enumerate(alerting.receivers):
        if isinstance(receiver, EmailReceiver) and receiver.password:
            try:
                found[receiver.name] = resolve_secret(receiver.password, os.environ)
            except SecretResolutionError as exc:
                raise ValueError(f"alerting.receivers.{i}.password: {exc}") from exc
    return found


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


_RELATIVE = {"m": 60, "h": 3600, "d": 86_400}


def parse_until(text: str, now: dt.datetime, timezone: str) -> dt.datetime:
    """``--until``: ISO 8601 (without an offset: in ``timezone``), or a length from now: 30m, 2h, 1d."""
    value = text.strip()
    if value[:-1].isdigit() and value[-1:] in _RELATIVE:
        return now + dt.timedelta(seconds=int(value[:-1]) * _RELATIVE[value[-1]])
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"--until {text!r} is neither a time (2026-11-02T17:00) nor a length (30m, 2h, 1d)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def _alertmanagers(config: WardwatchConfig) -> list[AlertmanagerReceiver]:
    alerting = config.alerting or AlertingConfig()
    return [r for r in alerting.receivers if isinstance(r, AlertmanagerReceiver)]


def add_silence(config: WardwatchConfig, matchers: dict[str, str], until: dt.datetime, reason: str,
                now: dt.datetime) -> tuple[dict[str, Any], list[str]]:
    """The silence, kept in the data directory and created in every configured Alertmanager;
    with a line per Alertmanager that could not take it."""
    ids, failures = {}, []
    for receiver in _alertmanagers(config):
        try:
            ids[receiver.name] = silences.alertmanager_silence(receiver.url, matchers, now, until, reason,
                                                               receiver.timeout_s)
        except httpx.HTTPError as exc:
            failures.append(f"receiver {receiver.name}: the silence could not be created there ({type(exc).__name__})")
    return silences.add_silence(config.store.path, matchers, until, reason, now, ids), failures


def expire_silence(config: WardwatchConfig, silence_id: str, now: dt.datetime) -> tuple[dict[str, Any], list[str]]:
    """End a silence here and in the Alertmanagers that hold it."""
    silence = silences.expire_silence(config.store.path, silence_id, now)
    receivers = {r.name: r for r in _alertmanagers(config)}
    failures = []
    for name, am_id in silence.get("alertmanager", {}).items():
        if name in receivers:
            try:
                silences.expire_alertmanager_silence(receivers[name].url, am_id, receivers[name].timeout_s)
            except httpx.HTTPError as exc:
                failures.append(f"receiver {name}: the silence could not be expired there ({type(exc).__name__})")
    return silence, failures
