"""Issue 12's watermelon with the supplier's own numbers, end to end on loopback: a testbed sending
its server spans to a real observatory, a probe process reporting to it, and the community
hospital's link degrading part-way through (the scenario's ``network_add_ms``). The findings, the
month's report and the run's waterfall then say the wait grew while the EPR's servers did not."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import analysis
from analysis.findings import FindingInputs, find_stories
from analysis.waterfall import run_waterfall

from .processes import ENV, ObservatoryProcess, free_port, probe_command, site_config

SITE = "community-hospital"
BEFORE_S, AFTER_S = 24.0, 30.0  # seconds of probing before and after the link degrades


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(60)


@pytest.mark.slow
def test_the_wait_grew_at_the_community_hospital_and_the_servers_did_not(tmp_path: Path) -> None:
    from testbed import load_scenario
    from wardwatch.config import load_config

    store, testbed_port, observatory_port = tmp_path / "central", free_port(), free_port()
    base = f"http://127.0.0.1:{testbed_port}"
    config = site_config(tmp_path, store, f"{base}/fhir", f"{base}/auth/token", interval_s=2.0)
    degraded_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8 + BEFORE_S)
    # The packaged model without its daily stories (whatever the hour of the test), and the link
    # to the community hospital 400 ms slower on every request from ``degraded_at``.
    scenario = load_scenario().with_overrides(
        periods=[], outages=[], tails=[], jitter_ms=0,
        changes=[{"name": "leased-line-backup", "at": degraded_at, "sites": [SITE], "network_add_ms": 400}])
    scenario_path = tmp_path / "scenario.yaml"
    scenario_path.write_text(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False), encoding="utf-8")

    observatory = ObservatoryProcess(config, observatory_port, tmp_path / "observatory.log").start()
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("testbed", "probe")}
    testbed = subprocess.Popen(
        [sys.executable, "-m", "wardwatch", "testbed", "--port", str(testbed_port), "--scenario", str(scenario_path),
         "--observatory", observatory.url], env=ENV, stdout=logs["testbed"], stderr=subprocess.STDOUT)
    probe = None
    try:
        _wait_for_port(testbed_port, testbed, tmp_path / "testbed.log")
        probe = subprocess.Popen(
            probe_command(config, observatory.url, "--site", SITE, "--workflow", "open-patient-record"),
            env=ENV, stdout=logs["probe"], stderr=subprocess.STDOUT)
        end = degraded_at + dt.timedelta(seconds=AFTER_S)
        while dt.datetime.now(dt.UTC) < end:
            assert probe.poll() is None, (tmp_path / "probe.log").read_text()[-2000:]
            time.sleep(1)
        assert _stop(probe) == 0, (tmp_path / "probe.log").read_text()[-2000:]
        assert _stop(testbed) == 0, (tmp_path / "testbed.log").read_text()[-2000:]  # flushes its server spans
    finally:
        for process in (probe, testbed):
            if process is not None and process.poll() is None:
                process.kill()
        observatory.stop()
        for log in logs.values():
            log.close()

    inputs = FindingInputs.from_config(load_config(config))
    start = degraded_at - dt.timedelta(minutes=5)
    with analysis.open_store(store) as central:
        runs = central.runs()
        stories = find_stories(central, inputs, None, start, end + dt.timedelta(minutes=5))
        waterfall = run_waterfall(central, str(runs["trace_id"].iloc[-1]))
    assert len(runs) >= 15 and set(runs["site"]) == {SITE}
    [story] = [s for s in stories if s.kind == "server_time"]
    assert story.sites == (SITE,) and story.detail["part"] == "network"
    assert "server time was flat at " in story.headline
    assert "the wait at Community hospital grew from " in story.headline
    assert ": the network or the front end, not the EPR's servers." in story.headline, story.headline
    for step in story.detail["steps"]:
        # each of its requests is 400 ms slower; the servers' time is as it was
        assert step["wait_after_s"] - step["wait_before_s"] > 0.3
        assert abs(step["server_after_s"] - step["server_before_s"]) < 0.05
    # the run's waterfall holds the EPR's server spans under the probe's steps
    assert {"probe", "server"} <= set(waterfall.spans["source"])

    # the month's report tells the same story
    month = f"{end.astimezone(dt.UTC):%Y-%m}"
    report = subprocess.run([sys.executable, "-m", "wardwatch", "report", "-c", str(config), "--month", month],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "the wait at Community hospital grew from " in report.stdout
