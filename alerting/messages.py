"""The two texts of every alert: figures for the service owner, plain words for clinicians.

Both are built from an alert's labels and facts only (names, counts, ratios, times): no value a
run returned, no URL it called, no error message, so no patient data and no secret can reach a
message.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from alerting.exhaustion import exhaustion_text

__all__ = ["Names", "clinician_text", "dashboard_link", "owner_text", "summary"]

UPDATE_EVERY = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Names:
    """Display names and where the dashboard is, for the texts and their links."""

    workflows: Mapping[str, str] = field(default_factory=dict)  # id -> title
    sites: Mapping[str, str] = field(default_factory=dict)  # id -> title
    timezone: str = "Europe/London"
    dashboard_url: str = "http://127.0.0.1:8050"

    def workflow(self, name: str) -> str:
        if not name or name == "all":
            return "Every workflow"
        titles = [self.workflows.get(n, n.replace("-", " ").replace("_", " ").capitalize()) for n in name.split(",")]
        return _listed(titles)

    def site(self, name: str) -> str:
        if not name or name == "all":
            return "every site"
        return _listed([self.sites.get(n, n) for n in name.split(",")])

    def local(self, moment: dt.datetime | str) -> dt.datetime:
        value = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        return value.astimezone(ZoneInfo(self.timezone))


def _listed(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _when(names: Names, moment: dt.datetime | str, at: dt.datetime) -> str:
    local, now = names.local(moment), names.local(at)
    return f"{local:%H:%M}" if local.date() == now.date() else f"{local:%a} {local.day} {local:%b} {local:%H:%M}"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.1f}%".replace(".0%", "%")


def dashboard_link(labels: Mapping[str, str], names: Names, facts: Mapping[str, Any] | None = None) -> str:
    """The dashboard page that shows the alert, with its filters set as the dashboard reads them
    from the URL: workflow, site, the objective's clinical period when it has one, and a window
    that holds the alert's long window (the last 7 days for a 3-day ticket)."""
    facts = facts or {}
    query: dict[str, str] = {"window": "7d" if str(facts.get("long_window", "")).endswith("d") else "1d"}
    workflow, site = labels.get("workflow", ""), labels.get("site", "")
    if workflow and "," not in workflow and workflow != "all":
        query["workflow"] = workflow
    if site and "," not in site and site != "all":
        query["site"] = site
    periods = facts.get("periods") or []
    if len(periods) == 1:
        query["period"] = str(periods[0])
    page = "/status" if labels.get("alertname") in ("SiteSilent", "EveryRunFailing") else "/workflow"
    return f"{names.dashboard_url.rstrip('/')}{page}?{urlencode(query)}"


def summary(labels: Mapping[str, str], facts: Mapping[str, Any], names: Names) -> str:
    """One line: what fired, where."""
    kind = facts.get("kind")
    if kind == "silent":
        return f"No runs from {names.site(labels['site'])} for {facts['missed_slots']} slots"
    if kind == "failing":
        return f"Every run of {names.workflow(labels['workflow'])} at {names.site(labels['site'])} is failing"
    if kind == "unwatched":
        now = " (now)" if facts.get("now") else ""
        return (f"Unwatched wait{now}: {names.workflow(labels['workflow'])} at {names.site(labels['site'])}, "
                f"{facts['hours']}")
    what = "objective" if kind == "objective" else "SLA"
    return (f"{_where(labels, facts, names)}: {what} {facts['name']!r} is burning its budget "
            f"{facts['long_burn_rate']:.1f}x too fast ({facts['long_window']} window, {labels['severity']})")


def _where(labels: Mapping[str, str], facts: Mapping[str, Any], names: Names) -> str:
    """"Open patient record at Ward 7 during ward rounds": a burn rate's workflow, sites, periods."""
    periods = [str(p) for p in facts.get("periods") or []]
    where = f"{names.workflow(labels.get('workflow', ''))} at {names.site(labels.get('site', ''))}"
    return where + (f" during {_listed(periods)}" if periods else "")


def owner_text(labels: Mapping[str, str], facts: Mapping[str, Any], since: dt.datetime | str,
               at: dt.datetime, names: Names) -> str:
    """For service owners: what, where, since when and how bad first, then the figures with their
    thresholds and sample counts and the budget. The dashboard's link is the alert's own annotation
    (``dashboard_link``), not repeated here."""
    kind = facts.get("kind")
    if kind == "silent":
        return (f"{names.site(labels['site'])} has sent no runs since {_when(names, facts['last_run'], at)} "
                f"({facts['missed_slots']} slots of {facts['cadence_s']:g} s missed; the alert fires after "
                f"{facts['silent_slots']}). The probe, or its network link, is down: this says nothing yet "
                f"about the EPR. Firing since {_when(names, since, at)}.")
    if kind == "failing":
        errors = ", ".join(facts.get("error_types") or []) or "no error type recorded"
        return (f"{names.workflow(labels['workflow'])} at {names.site(labels['site'])}: the latest "
                f"{facts['failing_runs']} runs all failed ({facts['runs']} in a row since "
                f"{_when(names, facts['since'], at)}; errors: {errors}). It resolves on the next successful "
                f"run.")
    if kind == "unwatched":
        return _unwatched_owner_text(facts)
    return _burn_owner_text(labels, facts, since, at, names)


def _burn_owner_text(labels: Mapping[str, str], facts: Mapping[str, Any], since: dt.datetime | str,
                     at: dt.datetime, names: Names) -> str:
    """What, where, since when and how bad first; then the objective or SLA, its burn rates, the
    budget, and the lenses through which the objective sees what an SLA may not."""
    kind = facts.get("kind")
    events = "runs" if kind == "objective" else "requests"
    where = _where(labels, facts, names)
    short_bad = facts["short_burn_rate"] * (1 - facts["target"])
    target = f"target {_percent(facts['target'])}"
    if facts.get("threshold_s") and (kind == "objective" or facts.get("metric") != "availability"):
        target = f"{_percent(facts['target'])} of {events} within {facts['threshold_s']:g} s"
    exhausted, window_end = facts.get("exhausted_at"), facts.get("window_end")
    budget = exhaustion_text(at, dt.datetime.fromisoformat(exhausted) if exhausted else None,
                             dt.datetime.fromisoformat(window_end) if window_end else None, names.timezone)
    remaining = max(facts.get("budget_remaining", 1.0), 0.0)
    text = (f"{where}, since {_when(names, since, at)}: {_percent(facts['bad_ratio'])} of {events} "
            f"{_bad_words(kind, facts)} in the last {facts['long_window']} (n={facts['long_samples']}), "
            f"{_percent(min(short_bad, 1.0))} in the last {facts['short_window']} (n={facts['short_samples']}). "
            f"{'Objective' if kind == 'objective' else 'SLA'} {facts['name']!r} ({target}): burn rate "
            f"{facts['long_burn_rate']:.1f} and {facts['short_burn_rate']:.1f}, threshold {facts['threshold']:.1f}. "
            f"{budget[0].upper()}{budget[1:]} ({_percent(remaining)} of the budget left, "
            f"n={facts['window_samples']} {events} so far).")
    lenses = _objective_lenses(labels, facts) if kind == "objective" else []
    return text + (f" Why an SLA may not see it: {'; '.join(lenses)}." if lenses else "")


def _bad_words(kind: object, facts: Mapping[str, Any]) -> str:
    """What made an event bad, in words: "took over 3 s or failed", "failed"."""
    if kind == "objective":
        return f"took over {facts['threshold_s']:g} s or failed"
    if facts.get("metric") == "availability":
        return "failed"
    return f"took over {facts['threshold_s']:g} s" if facts.get("threshold_s") else "missed the SLA"


def _objective_lenses(labels: Mapping[str, str], facts: Mapping[str, Any]) -> list[str]:
    """The lenses (``analysis.watermelon.LENS_TITLES``) an objective looks through where a
    supplier's SLA does not: whole tasks rather than requests, its clinical periods rather than
    all hours, its sites rather than all sites pooled."""
    from analysis.watermelon import LENS_TITLES

    lenses = [LENS_TITLES["per_request"]]
    periods = [str(p) for p in facts.get("periods") or []]
    if periods:
        lenses.append(f"{LENS_TITLES['time_dilution']} ({_listed(periods)})")
    if labels.get("site", "all") != "all":
        lenses.append(LENS_TITLES["pooled_sites"])
    return lenses


def _unwatched_owner_text(facts: Mapping[str, Any]) -> str:
    headline = str(facts["headline"])
    figures = "; ".join(
        f"{_unsaid(f['label'], headline)}: {f['value']}"
        + (f" ({f['threshold']}, n={f['n']})" if f.get("threshold") else f" (n={f['n']})")
        for f in facts.get("figures", []))
    since = facts.get("since_text") or ""
    parts = [f"{facts['headline']}{' ' + since[0].upper() + since[1:] + '.' if since else ''}",
             f"{'Happening now: the latest run waited beyond its threshold. ' if facts.get('now') else ''}"
             f"No objective watches it (the findings found it in the runs). {figures}."]
    if facts.get("lenses"):
        parts.append(f"Why the SLA could not see it: {'; '.join(facts['lenses'])}.")
    if facts.get("blame"):
        parts.append(f"Where the time goes: {facts['blame']}.")
    if facts.get("has_suggestion"):
        parts.append("The dashboard's findings suggest an objective to add.")
    return " ".join(parts)


def _unsaid(label: str, headline: str) -> str:
    """A figure's label without a trailing clause the headline already says ("Open patient record
    runs within 3 s, every weekday 13:30-17:00" under "Every weekday 13:30-17:00, ...")."""
    head, _, last = label.rpartition(", ")
    return head if head and last.lower() in headline.lower() else label


def _update_by(at: dt.datetime, names: Names) -> str:
    later = names.local(at + UPDATE_EVERY)
    quarter = math.ceil((later.minute + later.second / 60) / 15) * 15
    later = later.replace(minute=0, second=0, microsecond=0) + dt.timedelta(minutes=quarter)
    return f"{later:%H:%M}"


def clinician_text(labels: Mapping[str, str], facts: Mapping[str, Any], since: dt.datetime | str,
                   at: dt.datetime, names: Names, *, resolved: bool = False) -> str:
    """For clinicians and ward managers: what is affected, where, since when, can they carry on."""
    kind = facts.get("kind")
    where = names.site(labels.get("site", ""))
    place = f"at {where}" if where != "every site" else "at every site"
    task = names.workflow(labels.get("workflow", ""))
    if resolved:
        if kind == "silent":
            return f"We can check the record system from {where} again, since {_when(names, at, at)}."
        verb = "are" if "," in labels.get("workflow", "") else "is"  # several tasks (an unwatched wait's)
        return f"{task} {place} {verb} working normally again, since {_when(names, at, at)}."
    # the first failed run, the first missed slot; a wait that recurs is told from when it began today
    started = _when(names, since if kind == "unwatched" else facts.get("since") or since, at)
    update = f"We will update you by {_update_by(at, names)}."
    if kind == "silent":
        return (f"We cannot check the record system from {where} since {started}. This does not mean the "
                f"record system is down; keep working as usual. {update}")
    if kind == "failing":
        return (f"{task} is not working {place} since {started}. If you need it now, follow your "
                f"downtime procedure. {update}")
    if kind == "unwatched":
        verb = "are" if "," in labels.get("workflow", "") else "is"
        carry_on = ("You can keep working; they do complete, but may take longer." if verb == "are"
                    else "You can keep working; it does complete, but may take longer.")
        if not facts.get("start"):  # a site behind a slower link: at every hour, not a spell
            return f"{task} {verb} slower {place} than at other sites, at every hour. {carry_on}"
        days = {"weekday": "on weekdays", "weekend": "at weekends"}.get(str(facts.get("days")), "every day")
        if not facts.get("now"):  # for the service owner's tickets: what recurs, not what happens now
            return f"{task} {verb} often slow {place} {days} between {facts['start']} and {facts['end']}. {carry_on}"
        return (f"{task} {verb} slow {place} since {started}, as often {days} between {facts['start']} and "
                f"{facts['end']}. {carry_on} {update}")
    return (f"{task} has been slow or failing at times {place} since {started}. You can keep working; "
            f"it does complete, but may take longer. {update}")
