"""`wardwatch alerts` beside a probe: a child process, so the probe's own never loads pandas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["alerts_beside"]


@contextmanager
def alerts_beside(config_path: Path | None) -> Iterator[subprocess.Popen[bytes] | None]:
    """While inside, evaluate and deliver alerts every interval in a child process (None: nothing).

    The evaluation reads the store with pandas and DuckDB; a probe process is kept free of both
    (``wiring.forgo_pandas``), so it runs as ``wardwatch alerts -c FILE`` beside it, stopped with it.
    """
    if config_path is None:
        yield None
        return
    child = subprocess.Popen([sys.executable, "-m", "wardwatch", "alerts", "-c", str(config_path)])  # noqa: S603
    try:
        yield child
    finally:
        child.terminate()  # SIGTERM: it finishes the evaluation under way and exits
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
