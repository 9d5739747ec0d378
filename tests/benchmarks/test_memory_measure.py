"""The memory benchmark's child runner reads both pipes, so a child that writes much to standard
error (DuckDB's progress bars over a 100M-span store) is measured rather than left waiting."""

from __future__ import annotations

import sys
import threading

from benchmarks.memory import _measure


def test_a_child_that_fills_standard_error_is_measured() -> None:
    script = "import sys; sys.stderr.write('x' * 1_000_000); sys.stderr.flush(); print('done')"
    result: dict[str, object] = {}
    runner = threading.Thread(target=lambda: result.update(_measure([sys.executable, "-c", script])),
                              daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the child was left waiting on a full pipe"
    assert result["returncode"] == 0 and str(result["stdout"]).strip() == "done"
    assert len(str(result["stderr"])) == 1_000_000 and float(result["maxrss_mb"]) > 0  # type: ignore[arg-type]
