"""`wardwatch demo` is the deployment in miniature: an observatory, one probe process per site
reporting to it over OTLP, and the testbed's server spans arriving through it too."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

import analysis
from analysis.server_time import server_time

from .processes import free_port, site_config, stored_ids


@pytest.mark.slow
def test_the_demo_runs_a_probe_process_per_site_through_the_observatory(tmp_path: Path) -> None:
    store = tmp_path / "data"
    port = free_port()
    config = site_config(tmp_path, store, f"http://127.0.0.1:{port}/fhir", f"http://127.0.0.1:{port}/auth/token",
                         interval_s=5.0)
    document = yaml.safe_load(config.read_text())
    document["dashboard"] = {"host": "127.0.0.1", "port": free_port()}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    # the demo makes up the tokens and the testbed's secret itself
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDWATCH_SITE_TOKEN_", "WARDWATCH_EPR_TOKEN"))}
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "wardwatch", "demo", "-c", str(config), "--days", "0"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        sites: set[str] = set()
        while time.monotonic() < deadline and sites != {"ward-7", "outpatient-clinic", "community-hospital"}:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(2)
            if (store / "store.json").exists():
                with analysis.open_store(store) as central:
                    sites = set(central.runs()["site"])
        assert len(sites) == 3, (tmp_path / "demo.log").read_text()[-3000:]
        time.sleep(3)
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(120)
    log_text = (tmp_path / "demo.log").read_text()
    assert code == 0, log_text[-3000:]
    assert "3 probe processes, one per site" in log_text
    ids = stored_ids(store)
    assert [key for key, n in Counter(ids).items() if n > 1] == []
    with analysis.open_store(store) as central:
        runs = central.runs()
        server = central.sql("SELECT DISTINCT trace_id FROM requests WHERE source = 'server'")
        lens = server_time(central, runs["start"].min().to_pydatetime(), runs["start"].max().to_pydatetime() + dt.timedelta(minutes=1))
    # the server-time lens over what arrived: every step's wait is more than its server time
    assert len(lens) and (lens["n"] > 0).all() and (lens["server_s"] <= lens["wait_s"]).all()
    # the testbed's own server spans came through the observatory and joined the probes' traces
    assert set(server["trace_id"]) & set(runs["trace_id"])
    assert not list((store / "spool").glob("*.sqlite")) or all(
        n == 0 for n in _waiting(store / "spool"))


def _waiting(spool: Path) -> list[int]:
    import sqlite3

    out = []
    for path in spool.glob("*.sqlite"):
        db = sqlite3.connect(path)
        out.append(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
        db.close()
    return out
