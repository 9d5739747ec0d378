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
