"""A probe with an `alerting` section evaluates alerts beside it, in a child process stopped with it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.alerting.servers import recorder
from wardwatch.sidecar import alerts_beside


def test_alerts_are_evaluated_and_delivered_beside_the_probe(tmp_path: Path, add_runs) -> None:
    now = dt.datetime.now(dt.UTC)
    data = add_runs([(now - dt.timedelta(minutes=3 - i), "open", "ward-7", "failed", 1.0) for i in range(3)])
    with recorder() as hook:
        path = tmp_path / "wardwatch.yaml"
        path.write_text(f"store: {{path: {data}}}\nalerting:\n  interval_s: 1\n  receivers:\n"
                        f"    - {{name: desk, type: webhook, url: \"{hook.url}\"}}\n", encoding="utf-8")
        with alerts_beside(path) as child:
            assert child is not None
            [body] = hook.wait_for(1, timeout_s=60)
            assert body["groupLabels"]["alertname"] == "EveryRunFailing"
        assert child.returncode == 0  # stopped with the probe, cleanly
    with alerts_beside(None) as nothing:
        assert nothing is None


def test_the_observatory_evaluates_alerts_beside_it(tmp_path: Path, add_runs) -> None:
    from tests.observatory.processes import ObservatoryProcess, observatory_config
    from tests.alerting.servers import free_port

    now = dt.datetime.now(dt.UTC)
    store = add_runs([(now - dt.timedelta(minutes=3 - i), "open", "ward-7", "failed", 1.0) for i in range(3)])
    with recorder() as hook:
        config = observatory_config(tmp_path, store, extra=(
            "alerting:\n  interval_s: 1\n  receivers:\n"
            f"    - {{name: desk, type: webhook, url: \"{hook.url}\"}}\n"))
        observatory = ObservatoryProcess(config, free_port(), tmp_path / "obs.log").start()
        try:
            [body] = hook.wait_for(1, timeout_s=60)
        finally:
            assert observatory.stop() == 0
    assert body["groupLabels"] == {"alertname": "EveryRunFailing", "site": "ward-7", "workflow": "open"}


def test_the_evaluator_does_not_outlive_a_parent_killed_with_kill_9(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "wardwatch.yaml"
    path.write_text(f"store: {{path: {tmp_path / 'data'}}}\nalerting: {{interval_s: 1}}\n", encoding="utf-8")
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from wardwatch.sidecar import alerts_beside\n"
        f"with alerts_beside(Path({str(path)!r})) as child:\n"
        "    print(child.pid, flush=True); time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    with parent.stdout:
        child_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        if _zombie(child_pid):
            break
        time.sleep(0.2)
    else:
        os.kill(child_pid, signal.SIGKILL)
        raise AssertionError("the evaluator outlived its parent")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True
