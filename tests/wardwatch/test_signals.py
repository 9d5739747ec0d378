"""SIGINT/SIGTERM stop the long-running commands in order, however many arrive at once.

A handler that set the stop event itself deadlocked when a second signal came while the first
was being handled (the event's lock is not re-entrant): `make demo` stopped by a supervisor that
signals both `uv` and its child hung for ever."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Waits as `wardwatch dashboard` and `wardwatch demo` do. SIGTERM is ignored outside the block,
# so a signal of the burst that lands after it cannot kill the process before it reports.
_WAITER = """
import signal, threading
from wardwatch.wiring import _stop_on_signals
signal.signal(signal.SIGTERM, signal.SIG_IGN)
stop = threading.Event()
with _stop_on_signals(stop):
    print("ready", flush=True)
    stop.wait()
print("stopped", flush=True)
"""


def test_a_burst_of_signals_stops_the_wait_once() -> None:
    process = subprocess.Popen([sys.executable, "-c", _WAITER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        for _ in range(300):
            process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert out.strip() == "stopped" and process.returncode == 0


def test_leaving_the_block_without_a_signal_does_not_stop() -> None:
    code = """
import threading
from wardwatch.wiring import _stop_on_signals
stop = threading.Event()
with _stop_on_signals(stop):
    pass
print("set" if stop.is_set() else "not set")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "not set", done.stderr
