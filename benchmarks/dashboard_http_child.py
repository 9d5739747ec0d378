"""The dashboard server of the ``dashboard-http`` benchmark, in a process of its own:
``python -m benchmarks.dashboard_http_child STORE NOW [--without-jobs]``.

Serves ``create_app(bench_context(STORE, NOW))`` with ``DashboardServer`` (as ``wardwatch
dashboard`` serves it) on 127.0.0.1, a free port, and prints one line, ``PORT <port> <seconds
from the process's start to serving>``, then serves until its standard input closes.

``--without-jobs``: the month-long jobs (the overview's findings, the month's report) are
started and polled as ever but never run, so they do not compete with the timed calls; their
time is the ``report`` and ``memory`` benchmarks' figure.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path

_BEGAN = time.perf_counter()


def main(argv: list[str]) -> int:
    from benchmarks.callbacks import bench_context
    from dashboard import DashboardServer, create_app
    from dashboard.jobs import Jobs

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    path, now = Path(argv[0]), dt.datetime.fromisoformat(argv[1])
    if "--without-jobs" in argv[2:]:
        Jobs._run = lambda self, job, work: None  # type: ignore[method-assign]  # started, never done
    server = DashboardServer(create_app(bench_context(path, now)), host="127.0.0.1", port=0).start()
    print(f"PORT {server.port} {time.perf_counter() - _BEGAN:.3f}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes it (or dies)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
