"""Slots: the fixed cadence of each job, and the state file that lets a restarted probe see the gap.

Slots of a job with interval ``I`` are at whole multiples of ``I`` seconds since the Unix epoch,
so a restarted probe keeps the same slots and the slots of different probes line up.

The state file (``<state_dir>/probe-state.json``) records, per job, the last slot handled (run or
recorded as missed) and a heartbeat of the whole probe. On start, the slots between a job's last
handled slot and now passed while the probe was down: :func:`slots_missed_while_down` lists them.
The file is written whole under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_FILE_NAME",
    "JobState",
    "ProbeState",
    "StateFile",
    "next_slot_index",
    "slots_missed_while_down",
]

STATE_FILE_NAME = "probe-state.json"
_STATE_VERSION = 1
_REPORT_EVERY_S = 60.0

logger = logging.getLogger(__name__)


def next_slot_index(now_s: float, interval_s: float) -> int:
    """The index of the first slot at or after ``now_s`` (slot ``k`` is at ``k * interval_s``)."""
    return math.ceil(now_s / interval_s)


def slots_missed_while_down(last_slot_s: float, now_s: float, interval_s: float) -> Iterator[float]:
    """The slot times strictly after ``last_slot_s`` and strictly before ``now_s``.

    ``last_slot_s`` may come from another interval (the config changed while the probe was down):
    only slot times are compared.
    """
    first = math.floor(last_slot_s / interval_s) + 1
    for index in range(first, next_slot_index(now_s, interval_s)):
        slot_s = index * interval_s
        if last_slot_s < slot_s < now_s:
            yield slot_s


@dataclass(frozen=True, slots=True)
class JobState:
    """What the state file knows of one job: its last handled slot (epoch seconds)."""

    last_slot_s: float


@dataclass(frozen=True, slots=True)
class ProbeState:
    """The state file's content.

    Attributes:
        heartbeat_s: the last moment the probe was known to be running (epoch seconds), or None.
        jobs: per job key (``workflow@site``).
    """

    heartbeat_s: float | None
    jobs: dict[str, JobState]

    @property
    def heartbeat(self) -> datetime | None:
        """:attr:`heartbeat_s` as a UTC datetime."""
        return None if self.heartbeat_s is None else datetime.fromtimestamp(self.heartbeat_s, tz=UTC)


class StateFile:
    """The probe's state file in ``directory`` (created if missing); thread-safe.

    Args:
        directory: where ``probe-state.json`` lives (the store's data directory, for example).
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / STATE_FILE_NAME
        self._lock = threading.Lock()
        self._heartbeat_s: float | None = None
        self._jobs: dict[str, JobState] = {}
        self._reported_at_s: float | None = None

    def load(self) -> ProbeState:
        """Read the file; an absent or unreadable file is an empty state (first start).

        The state is also kept in memory, so later updates preserve the jobs not running now.
        """
        try:
            raw: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        state = _parse(raw)
        with self._lock:
            self._heartbeat_s = state.heartbeat_s
            self._jobs = dict(state.jobs)
        return state

    def record_slot(self, job_key: str, slot_s: float, now_s: float) -> None:
        """Note that ``job_key`` handled the slot at ``slot_s``, and beat the heart; write."""
        with self._lock:
            previous = self._jobs.get(job_key)
            if previous is None or slot_s > previous.last_slot_s:
                self._jobs[job_key] = JobState(slot_s)
            self._heartbeat_s = now_s
            self._write()

    def heartbeat(self, now_s: float) -> None:
        """Note that the probe is alive at ``now_s``; write."""
        with self._lock:
            self._heartbeat_s = now_s
            self._write()

    def _write(self) -> None:
        payload = {
            "version": _STATE_VERSION,
            "heartbeat_s": self._heartbeat_s,
            "jobs": {key: {"last_slot_s": job.last_slot_s} for key, job in sorted(self._jobs.items())},
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(payload, indent=1), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            # A full or read-only disk: the probe goes on (the store keeps the record; see
            # Probe's recorded_slots), and says so at most once a minute, without a traceback.
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            now_s = time.monotonic()
            if self._reported_at_s is None or now_s - self._reported_at_s >= _REPORT_EVERY_S:
                self._reported_at_s = now_s
                logger.warning("cannot write the probe's state file %s: %s", self.path, exc.strerror or exc)
        else:
            self._reported_at_s = None


def _parse(raw: Any) -> ProbeState:
    if not isinstance(raw, dict) or raw.get("version") != _STATE_VERSION:
        return ProbeState(None, {})
    heartbeat = raw.get("heartbeat_s")
    jobs: dict[str, JobState] = {}
    for key, value in (raw.get("jobs") or {}).items():
        if isinstance(value, dict) and isinstance(value.get("last_slot_s"), (int, float)):
            jobs[str(key)] = JobState(float(value["last_slot_s"]))
    return ProbeState(float(heartbeat) if isinstance(heartbeat, (int, float)) else None, jobs)
