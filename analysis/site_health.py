"""Each site's health as the observatory sees it, and a site gone quiet as a finding.

Two sources, so a site is never silently absent: what the observatory last heard from each site
(``<data dir>/observatory/sites.json``, written by ``wardwatch observatory``: last heard, spool
backlog, clock offset, probe version) and, for every configured site, its newest measured run in
the store (simulated history does not count as hearing from a site). A site is **quiet** when
neither is newer than ``quiet_after_s``: "Ward 7 has not reported since 08:12". The site health
page shows every site; :func:`analysis.findings.find_stories` tells each quiet one as a story.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from store import schema

__all__ = ["DEFAULT_QUIET_AFTER_S", "SiteHealth", "read_sites_file", "site_health"]

DEFAULT_QUIET_AFTER_S = 600.0  # ten minutes: several missed slots of a once-a-minute workflow


@dataclass(frozen=True)
class SiteHealth:
    """One configured site's health; times UTC.

    Attributes:
        site, title: the site's id and display name.
        last_heard: the newest of the observatory's last request from it and its newest measured run.
        last_run: its newest measured (not simulated) run in the store.
        spool_runs, spool_oldest_age_s, spool_dropped_batches: its spool as its last batch said
            (None: it never sent through an observatory).
        clock_offset_s: its clock minus the observatory's when its last batch arrived.
        probe_version: the Wardwatch version of its probe.
        quiet: not heard from for longer than the threshold (or never).
        sentence: one plain sentence about it.
    """

    site: str
    title: str
    last_heard: dt.datetime | None
    last_run: dt.datetime | None
    spool_runs: int | None
    spool_oldest_age_s: float | None
    spool_dropped_batches: int | None
    clock_offset_s: float | None
    probe_version: str | None
    quiet: bool
    sentence: str


def read_sites_file(data_dir: Path) -> dict[str, dict[str, object]]:
    """The observatory's file of senders, by sender (empty when there is none or it is unreadable)."""
    try:
        document = json.loads((Path(data_dir) / schema.SITE_HEALTH_FILE).read_text(encoding="utf-8"))
        return {str(s["sender"]): s for s in document.get("senders", []) if isinstance(s, dict) and "sender" in s}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _utc(seconds: object) -> dt.datetime | None:
    if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def site_health(data_dir: Path, sites: Sequence[tuple[str, str]], now: dt.datetime, *,
                last_runs: dict[str, dt.datetime] | None = None, quiet_after_s: float = DEFAULT_QUIET_AFTER_S,
                timezone: str = "UTC") -> list[SiteHealth]:
    """The health of each configured site (``(id, display name)`` pairs), in their order.

    ``last_runs``: each site's newest measured run (UTC), as
    ``SELECT site, max(start) FROM runs WHERE NOT simulated GROUP BY site`` finds it
    (:func:`analysis.query.rows.newest_measured` finds it without reading every run).
    """
    heard = read_sites_file(data_dir)
    last_runs = last_runs or {}
    zone = ZoneInfo(timezone)
    out = []
    for site, title in sites:
        raw = heard.get(site, {})
        last_request = _utc(raw.get("last_heard"))
        last_run = last_runs.get(site)
        candidates = [t for t in (last_request, last_run) if t is not None]
        last_heard = max(candidates) if candidates else None
        quiet = last_heard is None or (now - last_heard).total_seconds() > quiet_after_s
        spool_runs = raw.get("spool_runs")
        if last_heard is None:
            sentence = f"{title} has never reported."
        elif quiet:
            local = last_heard.astimezone(zone)
            when = local.strftime("%H:%M") if local.date() == now.astimezone(zone).date() else local.strftime("%a %-d %b %H:%M")
            sentence = f"{title} has not reported since {when}."
        elif isinstance(spool_runs, int) and spool_runs > 0:
            runs = "1 run was" if spool_runs == 1 else f"{spool_runs:,} runs were"
            sentence = f"{title} is reporting; {runs} waiting in its spool at its last report."
        else:
            sentence = f"{title} is reporting."
        out.append(SiteHealth(
            site=site, title=title, last_heard=last_heard, last_run=last_run,
            spool_runs=spool_runs if isinstance(spool_runs, int) else None,
            spool_oldest_age_s=_number(raw.get("spool_oldest_age_s")),
            spool_dropped_batches=raw.get("spool_dropped_batches") if isinstance(raw.get("spool_dropped_batches"), int) else None,
            clock_offset_s=_number(raw.get("clock_offset_s")),
            probe_version=str(raw["probe_version"]) if raw.get("probe_version") else None,
            quiet=quiet, sentence=sentence,
        ))
    return out
