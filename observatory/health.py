"""What the observatory last heard from each sender, kept as a small JSON file beside the store.

Per site (or ``service:<name>`` for an EPR): when it was last heard, what it sent, the backlog of
its spool and its clock's offset from the observatory's (both from the headers each batch carries,
``store.schema.SPOOL_HEADER`` and ``SENT_AT_HEADER``), its version and probe id. The dashboard and
the analysis read the file (``store.schema.SITE_HEALTH_FILE``, replaced whole under a temporary
name), so they need not share a process with the observatory.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from store import schema

__all__ = ["HealthLog", "SiteHealth"]


@dataclass
class SiteHealth:
    """One sender's health as last heard (times are Unix seconds by the observatory's clock)."""

    sender: str
    last_heard: float = 0.0
    requests: int = 0
    spans: int = 0
    duplicates: int = 0
    metric_points: int = 0
    spool_batches: int | None = None
    spool_runs: int | None = None
    spool_oldest_age_s: float | None = None
    spool_dropped_batches: int | None = None
    clock_offset_s: float | None = None  # the probe's clock minus the observatory's, as the batch arrived
    probe_version: str | None = None
    probe_id: str | None = None


def _spool(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            out[key] = number
    return out


class HealthLog:
    """Senders' health, in memory and in ``<store>/observatory/sites.json`` (at most once a second)."""

    def __init__(self, store_path: Path, *, save_every_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(store_path) / schema.SITE_HEALTH_FILE
        self.save_every_s = save_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._saved_at = 0.0
        self.senders: dict[str, SiteHealth] = {}
        try:
            for raw in json.loads(self.path.read_text(encoding="utf-8")).get("senders", []):
                health = SiteHealth(**raw)
                self.senders[health.sender] = health
        except (OSError, ValueError, TypeError):
            pass  # none yet, or unreadable: start afresh

    def heard(self, sender: str, headers: Mapping[str, str], *, spans: int = 0, duplicates: int = 0,
              metric_points: int = 0, resource: Mapping[str, str] | None = None) -> None:
        now = self._clock()
        with self._lock:
            health = self.senders.setdefault(sender, SiteHealth(sender))
            health.last_heard = now
            health.requests += 1
            health.spans += spans
            health.duplicates += duplicates
            health.metric_points += metric_points
            spool = _spool(headers.get(schema.SPOOL_HEADER))
            if spool:
                health.spool_batches = int(spool.get("batches", 0))
                health.spool_runs = int(spool.get("runs", 0))
                health.spool_oldest_age_s = spool.get("oldest_age_s")
                health.spool_dropped_batches = int(spool.get("dropped", 0))
            try:
                sent_at = float(headers.get(schema.SENT_AT_HEADER, "nan"))
            except ValueError:
                sent_at = math.nan
            if math.isfinite(sent_at):
                health.clock_offset_s = round(sent_at - now, 3)
            version = headers.get(schema.PROBE_VERSION_HEADER)
            if version:
                health.probe_version = version[:64]
            if resource and resource.get(schema.ATTR_PROBE_ID):
                health.probe_id = resource[schema.ATTR_PROBE_ID][:128]
            due = now - self._saved_at >= self.save_every_s
        if due:
            self.save()

    def save(self) -> None:
        with self._lock:
            document = {"saved_at": self._clock(), "senders": [asdict(h) for h in self.senders.values()]}
            self._saved_at = self._clock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)
