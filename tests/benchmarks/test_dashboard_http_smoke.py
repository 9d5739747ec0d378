"""Smoke test of the dashboard-over-HTTP benchmark: at a tiny size, through the command line, it
starts the real server, loads every page after a start of its own and times every callback
through ``/_dash-update-component``. No timing is asserted: a tiny run's figures mean nothing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("Overview", "Status", "Time of day", "Workflow", "Sites", "Runs", "SLA report", "Site health")


def test_every_page_and_callback_is_timed_over_http(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--only", "dashboard-http", "--repeats", "2",
                           "--out", str(out), "--deadline", "600"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures and {f["benchmark"] for f in figures} == {"dashboard-http"}
    names = [f["name"] for f in figures]
    for page in PAGES:
        assert sum(n.startswith(f"{page} first load after a start") for n in names) == 2, page  # 7 days, month
        assert any(n.startswith(f"{page} layout (last 7 days) over HTTP") and n.endswith(": p95") for n in names), page
    for call in ("live refresh", "Status refresh", "waterfall", "Filter bar", "SLA report button", "SLA report poll",
                 "findings poll"):
        assert any(call in n and n.endswith(": p95") for n in names), call
    timed = [f for f in figures if "over HTTP" in f["name"]]
    assert len(timed) >= 2 * 25
    for figure in timed:
        assert figure["samples"] == 2 and math.isfinite(figure["value"]) and figure["value"] > 0
        assert figure["note"].startswith("load average")
        if figure["name"].endswith(": p95"):
            assert figure["met"] in (True, False) and figure["target"] == "<= 300 ms (at 100M)"
