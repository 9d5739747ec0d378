"""Unwatched waits as alerts: the recurring waits and slower sites the findings discover where no
objective looks, for the service owner.

The findings (``analysis.findings.find_stories``) read every run of a week: seconds of work, too
much for each minute. So they are found again at most every ``every_s`` (15 minutes), over the
``days`` ending at the last quarter hour, and kept in between (and when reading them fails, so a
failure resolves nothing); a restart finds them once more.
Each ``unwatched_wait`` story with at least one run in ten beyond T in its hours is a ``ticket``
alert while the findings tell it (one that only departs from the usual is left to the findings). It is also a
``page`` (with its notice to the clinicians of its sites) only while the wait is *now*: the
moment lies in its recurring hours, in its sites' time, and a run of one of its workflows at one
of its sites in the last 30 minutes waited beyond its threshold or failed (a wait that comes in
spells, four minutes every half hour, holds its page through its hours instead of flapping).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from analysis.changelog import effective_changes
from analysis.discovery import MIN_SLOW_SHARE
from analysis.findings import FindingInputs, Story, find_stories
from analysis.store import FrameCache, Store
from alerting.rules import Condition

__all__ = ["UnwatchedWaits", "beyond_t_share", "wait_conditions"]

log = logging.getLogger(__name__)

QUARTER = dt.timedelta(minutes=15)
RECENT = dt.timedelta(minutes=30)  # a run this recent that waited says the wait is now


def _quarter(at: dt.datetime) -> dt.datetime:
    utc = at.astimezone(dt.UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


class UnwatchedWaits:
    """The findings' unwatched waits, found again at most every ``every_s``."""

    def __init__(self, inputs: FindingInputs, data_dir: Path, *, days: int = 7, every_s: float = 900.0,
                 base_dir: Path | None = None) -> None:
        self.inputs = inputs
        self.data_dir = Path(data_dir)
        self.days = days
        self.every = dt.timedelta(seconds=every_s)
        self.base_dir = base_dir
        self._found_at: dt.datetime | None = None
        self._stories: list[Story] = []

    def stories(self, store: Store | FrameCache, at: dt.datetime) -> list[Story]:
        """The unwatched-wait stories of the ``days`` before ``at``'s quarter hour (kept a while)."""
        if self.days <= 0:
            return []
        end = _quarter(at)
        if self._found_at is None or not self._found_at <= end < self._found_at + self.every:
            self._found_at = end
            try:
                changes = effective_changes(self.inputs.changes, self.data_dir)
                found = find_stories(store, self.inputs, None, end - dt.timedelta(days=self.days), end,
                                     changes=changes, base_dir=self.base_dir)
            except Exception:  # a bug or a broken changes file: the waits found last time still hold
                log.exception("the findings could not be read; the unwatched waits found before are kept")
                return self._stories
            self._stories = [s for s in found if s.kind == "unwatched_wait" and beyond_t_share(s) >= MIN_SLOW_SHARE]
        return self._stories

    def conditions(self, store: Store | FrameCache, at: dt.datetime) -> list[Condition]:
        return wait_conditions(self.stories(store, at), store, at, self.inputs)


def beyond_t_share(story: Story) -> float:
    """The share of a recurring wait's runs in its hours that waited beyond T. A wait whose typical
    run departs from the usual but keeps nine in ten within T is a finding, not an alert: a 90%
    objective would be met."""
    bands = story.detail.get("bands") or []
    runs = sum(int(b["runs"]) for b in bands)  # type: ignore[index, union-attr]
    return sum(int(b["beyond_threshold"]) for b in bands) / runs if runs else 0.0  # type: ignore[index, union-attr]


def _workflows(story: Story) -> list[str]:
    detail = story.detail
    if detail.get("pattern") == "site_gap":
        return [str(g["workflow"]) for g in detail.get("gaps", [])]  # type: ignore[union-attr]
    named = [str(w) for w in detail.get("workflows", []) or []]  # type: ignore[union-attr]
    return named or ([story.workflow] if story.workflow else [])


def _hours(story: Story) -> str:
    detail = story.detail
    if detail.get("pattern") != "recurring_wait":
        return "all hours"
    days = {"weekday": "weekdays", "weekend": "weekends"}.get(str(detail.get("days")), "every day")
    return f"{days} {detail['start']}-{detail['end']}"


def _in_hours(story: Story, at: dt.datetime, zone: str) -> bool:
    detail = story.detail
    if detail.get("pattern") != "recurring_wait":
        return False  # a slower site is a standing difference, not a spell to warn the ward of
    local = at.astimezone(ZoneInfo(zone))
    days = str(detail.get("days"))
    if (days == "weekday" and local.weekday() >= 5) or (days == "weekend" and local.weekday() < 5):
        return False
    clock = f"{local:%H:%M}"
    return str(detail["start"]) <= clock < str(detail["end"])


def _waiting_now(story: Story, store: Store | FrameCache, at: dt.datetime, workflows: Sequence[str],
                 sites: Sequence[str], thresholds: Mapping[str, float]) -> bool:
    runs = store.runs(at - RECENT, at + dt.timedelta(microseconds=1))
    runs = runs[runs["workflow"].isin(workflows) & (runs["status"] != "interrupted")]
    if sites:
        runs = runs[runs["site"].isin(sites)]
    if runs.empty:
        return False
    for row in runs.itertuples():
        if row.status != "ok" or float(row.waiting_s) > thresholds.get(str(row.workflow), float("inf")):
            return True
    return False


def wait_conditions(stories: Sequence[Story], store: Store | FrameCache, at: dt.datetime,
                    inputs: FindingInputs) -> list[Condition]:
    """A ticket per unwatched-wait story, and a page for each whose wait is now."""
    found = []
    for story in stories:
        workflows = _workflows(story)
        thresholds = {str(k): float(v) for k, v in (story.detail.get("thresholds_s") or {}).items()}  # type: ignore[union-attr]
        for w in workflows:
            thresholds.setdefault(w, inputs.workflow(w).threshold_s)
        hours = _hours(story)
        labels = {"alertname": "UnwatchedWait", "workflow": ",".join(workflows) or "all",
                  "site": ",".join(story.sites) or "all", "hours": hours}
        facts: dict[str, Any] = {
            "kind": "unwatched", "headline": story.headline, "since": story.since.isoformat() if story.since else None,
            "since_text": story.since_text, "hours": hours, "blame": story.blame,
            "lenses": [lens.title for lens in story.lenses],  # why the SLA could not see it
            "figures": [{"label": f.label, "value": f.value, "threshold": f.threshold, "n": f.n}
                        for f in story.figures if f.verdict is None],  # the clinicians' figures
            "has_suggestion": story.suggestion_yaml is not None,
            "start": story.detail.get("start"), "end": story.detail.get("end"),
            "days": story.detail.get("days"),
        }
        found.append(Condition({**labels, "severity": "ticket"}, facts))
        zone = _zone(inputs, story.sites)
        if _in_hours(story, at, zone) and _waiting_now(story, store, at, workflows, story.sites, thresholds):
            found.append(Condition({**labels, "severity": "page"}, {**facts, "now": True}))
    return found


def _zone(inputs: FindingInputs, sites: Sequence[str]) -> str:
    """The recurring hours are in the sites' local time (the findings' zone when they span zones)."""
    zones = {s.timezone for s in inputs.sites if not sites or s.name in sites}
    return zones.pop() if len(zones) == 1 else inputs.timezone
