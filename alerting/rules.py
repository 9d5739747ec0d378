"""The alert conditions that hold at a moment, computed from the store.

Burn-rate alerts are ``analysis.alerts``' own (one per multi-window alert of each objective and
each SLA with a budget); "site silent" holds when a site's latest run is more than
``silent_slots`` of its shortest cadence old (simulated history not counted: a site whose probe
never ran is not deployed yet); "every run failing" when the latest
``failing_runs`` runs of a workflow at a site all failed or timed out (interrupted runs, stopped
with the probe, are not judged), so the next successful run resolves it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from analysis.alerts import objective_alerts, sla_alerts
from analysis.budget import calendar_month, parse_duration
from analysis.calendar import ClinicalCalendar
from analysis.config import ChangeEventConfig, ObjectiveConfig, SLAConfig
from analysis.objectives import objective_runs
from analysis.sla import sla_requests
from analysis.store import FrameCache, Store
from alerting.exhaustion import budget_remaining, time_to_exhaustion

__all__ = ["AlertInputs", "Condition", "conditions", "fingerprint"]

_RUN_LOOKBACK = dt.timedelta(days=2)
_FAILED = ("failed", "timed_out")


@dataclass(frozen=True)
class AlertInputs:
    """What the rules judge: the analysis sections and the probes' cadence (built by the wiring)."""

    objectives: Sequence[ObjectiveConfig] = ()
    slas: Sequence[SLAConfig] = ()
    calendar: ClinicalCalendar | None = None
    cadence_s: Mapping[str, float] = field(default_factory=dict)  # site -> its shortest workflow interval
    silent_slots: int = 5
    failing_runs: int = 3
    timezone: str = "Europe/London"  # of the calendar month an objective's budget is counted in
    base_dir: Path | None = None  # for SLA exclusions read from files
    changes: Sequence[ChangeEventConfig] = ()  # configured; those with a planned window silence


@dataclass(frozen=True)
class Condition:
    """An alert condition that holds now: its identity (labels) and the facts behind it."""

    labels: dict[str, str]
    facts: dict[str, Any]  # JSON-able: every number the messages use

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity of an alert from its labels."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def conditions(store: Store | FrameCache, inputs: AlertInputs, at: dt.datetime) -> list[Condition]:
    """Every alert condition holding at ``at`` (timezone-aware)."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    found: list[Condition] = []
    for objective in inputs.objectives:
        frame = objective_alerts(store, objective, inputs.calendar, at)
        found += _burn_conditions(frame, at, "objective", objective.name, objective.target,
                                  objective.workflow, objective_sites(objective, inputs.calendar),
                                  lambda start, end, o=objective: _objective_events(store, o, inputs, start, end),
                                  _objective_window(objective, at, inputs.timezone),
                                  {"threshold_s": objective.threshold_s, "periods": list(objective.periods)})
    for sla in inputs.slas:
        if sla.metric == "mean":
            continue  # a mean has no error budget to burn
        frame = sla_alerts(store, sla, at, base_dir=inputs.base_dir)
        found += _burn_conditions(frame, at, "sla", sla.name, sla.ratio_target,
                                  ",".join(sla.workflows), sla.sites,
                                  lambda start, end, s=sla: _sla_events(store, s, inputs, start, end),
                                  _sla_window(sla, at), {"metric": sla.metric, "threshold_s": sla.threshold_s})
    found += _silent_sites(store, inputs, at)
    found += _failing(store, inputs, at)
    return found


# -- burn rates ----------------------------------------------------------------------------------

def _objective_window(objective: ObjectiveConfig, at: dt.datetime, tz: str) -> tuple[dt.datetime, dt.datetime]:
    duration = parse_duration(objective.compliance_window)
    if duration.is_calendar:  # the budget is counted in the calendar month holding ``at``
        return _month_of(at, tz)
    return at - duration.to_timedelta(), at


def _month_of(at: dt.datetime, tz: str) -> tuple[dt.datetime, dt.datetime]:
    local = at.astimezone(ZoneInfo(tz))
    return calendar_month(local.year, local.month, tz)


def objective_sites(objective: ObjectiveConfig, calendar: ClinicalCalendar | None) -> list[str]:
    """Where an objective judges runs, for its alerts' words: its own sites; else, when each of its
    periods is kept at some sites only, those sites (a ward-rounds objective is not "at every
    site" where the clinic keeps no ward rounds); else every site (``[]``)."""
    if objective.sites:
        return list(objective.sites)
    if not objective.periods or calendar is None:
        return []
    kept: list[str] = []
    for name in objective.periods:
        sites = calendar.period(name).sites
        if not sites:
            return []
        kept += [site for site in sites if site not in kept]
    return kept


def _sla_window(sla: SLAConfig, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if sla.window == "rolling" and sla.rolling_days:
        return at - dt.timedelta(days=sla.rolling_days), at
    return _month_of(at, sla.timezone)


def _objective_events(store: Store | FrameCache, objective: ObjectiveConfig, inputs: AlertInputs,
                      start: dt.datetime, end: dt.datetime) -> pd.Series:
    runs = objective_runs(store, objective, inputs.calendar, start, end).drop_duplicates("trace_id")
    return runs["good"].astype(bool)


def _sla_events(store: Store | FrameCache, sla: SLAConfig, inputs: AlertInputs,
                start: dt.datetime, end: dt.datetime) -> pd.Series:
    frame, _, _ = sla_requests(store, sla, start, end, inputs.base_dir)
    return frame["good"].astype(bool)


def _burn_conditions(frame: pd.DataFrame, at: dt.datetime, kind: str, name: str, target: float,
                     workflow: str, sites: Sequence[str], events: Any,
                     window: tuple[dt.datetime, dt.datetime], extra: dict[str, Any]) -> list[Condition]:
    firing = frame[frame["firing"]]
    if firing.empty:
        return []
    # What is left of the compliance window's budget, judged on its events so far.
    start, end = window
    good = events(start, at + dt.timedelta(microseconds=1))
    n = int(good.size)
    bad_ratio = float((~good).sum()) / n if n else 0.0
    period = end - start if end > start else dt.timedelta(days=30)
    remaining = budget_remaining(bad_ratio, target, min(at - start, period), period)
    found = []
    for row in firing.itertuples():
        long_window = _short(row.long_window)
        labels = {"alertname": "ObjectiveBurnRate" if kind == "objective" else "SLABurnRate",
                  kind: name, "workflow": workflow, "site": ",".join(sites) or "all",
                  "severity": row.severity, "window": long_window}
        left = time_to_exhaustion(remaining, float(row.long_burn_rate), period)
        found.append(Condition(labels, {
            "kind": kind, "name": name, "target": target,
            "long_window": long_window, "short_window": _short(row.short_window),
            "threshold": float(row.threshold), "long_burn_rate": float(row.long_burn_rate),
            "short_burn_rate": float(row.short_burn_rate), "long_samples": int(row.long_samples),
            "short_samples": int(row.short_samples), "bad_ratio": float(row.long_burn_rate) * (1 - target),
            "budget_remaining": remaining, "window_samples": n,
            "window_end": end.isoformat() if end > at else None,
            "exhausted_at": (at + left).isoformat() if left is not None else None,
            **extra,
        }))
    return found


def _short(window: dt.timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- probes --------------------------------------------------------------------------------------

def _recent_runs(store: Store | FrameCache, at: dt.datetime) -> pd.DataFrame:
    runs = store.runs(at - _RUN_LOOKBACK, at + dt.timedelta(microseconds=1))
    return runs[runs["status"] != "interrupted"]


def _silent_sites(store: Store | FrameCache, inputs: AlertInputs, at: dt.datetime) -> list[Condition]:
    if not inputs.cadence_s:
        return []
    # Only a probe's own runs: a simulated history says nothing about whether a probe is alive.
    last = store.sql("SELECT site, max(start) AS last_start FROM runs WHERE start <= ? AND NOT simulated "
                     "GROUP BY site", [at])
    latest = {row.site: pd.Timestamp(row.last_start).to_pydatetime() for row in last.itertuples()}
    found = []
    for site, cadence in sorted(inputs.cadence_s.items()):
        seen = latest.get(site)
        if seen is None:
            continue  # a site that never ran is not deployed yet, not silent
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        missed = int((at - seen).total_seconds() // cadence)
        if missed >= inputs.silent_slots:
            found.append(Condition(
                {"alertname": "SiteSilent", "site": site, "severity": "page"},
                {"kind": "silent", "site": site, "last_run": seen.isoformat(), "cadence_s": cadence,
                 "missed_slots": missed, "silent_slots": inputs.silent_slots,
                 "since": (seen + dt.timedelta(seconds=cadence)).isoformat()}))
    return found


def _failing(store: Store | FrameCache, inputs: AlertInputs, at: dt.datetime) -> list[Condition]:
    runs = _recent_runs(store, at)
    found = []
    for (workflow, site), group in runs.sort_values("start").groupby(["workflow", "site"], sort=True):
        latest = group.tail(inputs.failing_runs)
        if len(latest) < inputs.failing_runs or not latest["status"].isin(_FAILED).all():
            continue
        # since: the first failure of the streak the latest runs belong to
        ok = group[~group["status"].isin(_FAILED)]
        streak = group[group["start"] > ok["start"].max()] if not ok.empty else group
        errors = sorted({str(e) for e in latest["error_type"].dropna()})
        found.append(Condition(
            {"alertname": "EveryRunFailing", "site": str(site), "workflow": str(workflow), "severity": "page"},
            {"kind": "failing", "site": str(site), "workflow": str(workflow), "runs": int(len(streak)),
             "failing_runs": inputs.failing_runs, "error_types": errors,
             "since": pd.Timestamp(streak["start"].min()).to_pydatetime().isoformat()}))
    return found
