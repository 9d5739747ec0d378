"""`wardwatch demo` runs `wardwatch alerts` beside it and starts its own receiver: an alert that fires
in the demo is delivered there and listed on its page, and its notice written for the status page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from analysis.notices import read_notices
from tests.observatory.processes import free_port, site_config


@pytest.mark.slow
def test_the_demo_delivers_to_the_receiver_it_starts(tmp_path: Path) -> None:
    store = tmp_path / "data"
    port, receiver_port = free_port(), free_port()
    config = site_config(tmp_path, store, f"http://127.0.0.1:{port}/fhir", f"http://127.0.0.1:{port}/auth/token",
                         interval_s=5.0)
    document = yaml.safe_load(config.read_text())
    document["dashboard"] = {"host": "127.0.0.1", "port": free_port()}
    # a link the EPR does not have: every run of it fails, so "every run failing" fires in seconds
    document["workflows"].append({"name": "broken-link", "target": "testbed", "sites": ["ward-7"],
                                  "interval_s": 5.0, "steps": [{"name": "nowhere", "path": "/NoSuchResource"}]})
    document["alerting"] = {"interval_s": 5, "findings_days": 0, "dashboard_url": "http://127.0.0.1:1",
                            "receivers": [{"name": "demo-receiver", "type": "webhook",
                                           "url": f"http://127.0.0.1:{receiver_port}/hook"}]}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDWATCH_SITE_TOKEN_", "WARDWATCH_EPR_TOKEN"))}
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "wardwatch", "demo", "-c", str(config), "--days", "0"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    page = ""
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and "Firing: Every run of Broken link" not in page:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(2)
            try:
                page = httpx.get(f"http://127.0.0.1:{receiver_port}/", timeout=5).text
            except httpx.HTTPError:
                page = ""
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(120)
    log_text = (tmp_path / "demo.log").read_text()
    assert "Firing: Every run of Broken link at Ward 7 is failing" in page, log_text[-3000:]
    assert "For clinicians: Broken link is not working at Ward 7 since" in page
    assert f"alerts delivered to the demo's receiver demo-receiver at http://127.0.0.1:{receiver_port}/" in log_text
    assert code == 0, log_text[-3000:]
    assert any(n.text.startswith("Broken link is not working at Ward 7") for n in read_notices(store, site="ward-7"))
