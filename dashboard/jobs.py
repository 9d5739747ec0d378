"""Work that reads a whole month (the SLA report, the watermelon findings) runs off the request:
a callback starts it and answers at once, and the page polls until it is done.

At 10M spans the month's report takes about 20 s; as a plain callback it held a request (and the
browser) for all of it. Jobs run one at a time on a daemon thread, so a dashboard stopped mid-way
does not wait for one. A job is keyed by what it computes (``("report", "2026-10")``) and by the
store's live segments when it started: asking again while nothing new has landed returns the same
job (running or done), and once new spans land it is computed again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import flask

__all__ = ["Job", "Jobs", "install_jobs", "jobs", "jobs_of"]

_KEY = "WARDWATCH_JOBS"
_log = logging.getLogger(__name__)


@dataclass
class Job:
    """One computation: running until ``done`` is set, then holding its result or its error."""

    key: Hashable
    version: Hashable
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    # The last job of the same key that finished without error, while this one runs: its result
    # can be shown (saying when it is from) instead of making the page wait again.
    previous: Job | None = None

    def elapsed_s(self) -> float:
        """Seconds since it was started (queued or running), or that it took once done."""
        return (self.finished if self.finished is not None else time.monotonic()) - self.started


class Jobs:
    """The dashboard's month-long computations, at most one running at a time."""

    def __init__(self) -> None:
        self._jobs: dict[Hashable, Job] = {}
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Semaphore(1)

    def start(self, key: Hashable, version: Hashable, work: Callable[[], Any]) -> Job:
        """The job for ``key`` at ``version``: the one already started, or a new one running ``work``.

        A job that failed is started again."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.version == version and not (job.done.is_set() and job.error is not None):
                return job
            job = Job(key, version)
            old = self._jobs.get(key)
            if old is not None:
                done_well = old.done.is_set() and old.error is None
                job.previous = old if done_well else old.previous
                old.previous = None  # one result kept aside, never a chain
            self._jobs[key] = job
        threading.Thread(target=self._run, args=(job, work), name=f"wardwatch-job-{key}", daemon=True).start()
        return job

    def get(self, key: Hashable) -> Job | None:
        """The latest job started for ``key``, if any."""
        with self._lock:
            return self._jobs.get(key)

    def _run(self, job: Job, work: Callable[[], Any]) -> None:
        with self._one_at_a_time:
            try:
                job.result = work()
            except BaseException as exc:  # reported on the page (and logged), never lost in a thread
                _log.exception("%s failed", job.key)
                job.error = exc
            finally:
                job.finished = time.monotonic()
                job.done.set()


def install_jobs(server: flask.Flask, registry: Jobs) -> None:
    server.config[_KEY] = registry


def jobs_of(server: flask.Flask) -> Jobs:
    """The jobs of an app made by ``create_app``."""
    registry: Jobs = server.config[_KEY]
    return registry


def jobs() -> Jobs:
    """The jobs of the app serving this request."""
    return jobs_of(flask.current_app)
