"""`wardwatch alerts` beside a probe: a child process, so the probe's own never loads pandas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["alerts_beside"]


def _stop_with_parent() -> None:
    """In the child, before it starts: SIGTERM when the parent dies, even by kill -9 (Linux), so no
    evaluator outlives the probe or observatory it belongs to."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextmanager
def alerts_beside(config_path: Path | None) -> Iterator[subprocess.Popen[bytes] | None]:
    """While inside, evaluate and deliver alerts every interval in a child process (None: nothing).

    The evaluation reads the store with pandas and DuckDB; a probe process is kept free of both
    (``wiring.forgo_pandas``), so it runs as ``wardwatch alerts -c FILE`` beside it, stopped with it.
    """
    if config_path is None:
        yield None
        return
    child = subprocess.Popen([sys.executable, "-m", "wardwatch", "alerts", "-c", str(config_path)],  # noqa: S603
                             preexec_fn=_stop_with_parent)
    try:
        yield child
    finally:
        child.terminate()  # SIGTERM: it finishes the evaluation under way and exits
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
