"""Silences from the configuration: agreed maintenance and planned changes silence what they cover.

An SLA's exclusions (``slas[].exclusions`` and its ``exclusions_file``) are windows the supplier
may take the EPR down in; a change with a planned window (``changes[].until``, in the
configuration or recorded in ``<data dir>/changes.yaml``) is a release with its downtime. During
such a window, an alert about the EPR is silenced when the window covers it: the alert names a
workflow, each of its workflows is one the window names (a window naming none covers every
workflow), and likewise each of its sites. Alerts about a probe (a silent site) are not covered:
maintenance of the EPR does not stop a probe. As a silence made by hand, a covered alert is still
judged and kept, and notified when the window ends while it still fires; where an Alertmanager
receiver is configured, the window is created there too (:meth:`PlannedWindow.alertmanager_body`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.config import ChangeEventConfig, SLAConfig
from analysis.sla import all_exclusions

__all__ = ["PlannedWindow", "covering", "planned_windows"]


@dataclass(frozen=True)
class PlannedWindow:
    """``[start, end)``, over these workflows and sites (empty: every one), and why."""

    start: dt.datetime
    end: dt.datetime
    workflows: tuple[str, ...]
    sites: tuple[str, ...]
    reason: str

    @property
    def key(self) -> str:
        """A stable identity (for remembering the Alertmanager silence made of it)."""
        return "|".join([self.start.isoformat(), self.end.isoformat(), ",".join(self.workflows),
                         ",".join(self.sites), self.reason])

    def covers(self, labels: Mapping[str, str], at: dt.datetime) -> bool:
        if not self.start <= at < self.end or not labels.get("workflow"):
            return False
        for name, allowed in (("workflow", self.workflows), ("site", self.sites)):
            values = labels.get(name, "all").split(",")
            if allowed and ("all" in values or not set(values) <= set(allowed)):
                return False
        return True

    def alertmanager_body(self) -> dict[str, Any]:
        """The same window as an Alertmanager silence (API v2 postableSilence)."""
        matchers = [{"name": "workflow", "value": ".+", "isRegex": True, "isEqual": True}]
        for name, allowed in (("workflow", self.workflows), ("site", self.sites)):
            if allowed:
                matchers = [m for m in matchers if m["name"] != name]
                matchers.append({"name": name, "value": "|".join(re.escape(v) for v in allowed),
                                 "isRegex": True, "isEqual": True})
        return {"matchers": matchers, "startsAt": _utc(self.start), "endsAt": _utc(self.end),
                "createdBy": "wardwatch", "comment": self.reason}


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def planned_windows(slas: Sequence[SLAConfig], changes: Iterable[ChangeEventConfig],
                    base_dir: Path | None = None) -> list[PlannedWindow]:
    """Every SLA's exclusions and every change's planned window."""
    found = []
    for sla in slas:
        for exclusion in all_exclusions(sla, base_dir):
            title = f" ({exclusion.title})" if exclusion.title else ""
            found.append(PlannedWindow(exclusion.start, exclusion.end, tuple(sla.workflows), tuple(sla.sites),
                                       f"agreed maintenance of SLA '{sla.name}'{title}"))
    for change in changes:
        if change.until is not None:
            found.append(PlannedWindow(change.at, change.until, tuple(change.workflows), (),
                                       f"planned change '{change.title}'"))
    return found


def covering(labels: Mapping[str, str], windows: Sequence[PlannedWindow], at: dt.datetime) -> PlannedWindow | None:
    """The first window covering an alert at ``at``, if any."""
    return next((w for w in windows if w.covers(labels, at)), None)
