"""Probe footprint: one probe running the example workflows (``examples/testbed.yaml``: three
workflows at three sites, the busiest once a minute) against the testbed for some minutes.

The probe runs in a child process of its own (``benchmarks/probe_child.py CONFIG MINUTES MODE``),
the testbed in another, so the figures are the probe's alone: CPU seconds (user + system, from
``resource.getrusage``) per run and as a share of one core, and peak RSS (``VmHWM``), beside the
same child's RSS after its imports, before the first run. Target (issue 7): under 5% of one core
and under 150 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.epr import testbed_process
from benchmarks.results import Figure, Progress
from testbed import DEFAULT_CLIENT_SECRET, load_scenario

__all__ = ["EXAMPLE_CONFIG", "run"]

NAME = "footprint"
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "testbed.yaml"
_SECRET_VARIABLE = "WARDWATCH_TESTBED_CLIENT_SECRET"
# Run by path, not as ``-m benchmarks...``: importing the benchmarks package would load analysis,
# dashboard, DuckDB and pandas into the probe's process and inflate its memory.
_CHILD = Path(__file__).resolve().parent / "probe_child.py"


def _runs(store_path: Path) -> dict[str, int]:
    from analysis import open_store

    if not (store_path / "store.json").exists():
        return {}
    with open_store(store_path) as store:
        statuses = store.sql("SELECT status, count(*) AS n FROM runs GROUP BY status")
    return {str(r.status): int(r.n) for r in statuses.itertuples()}


def run(*, minutes: float = 2.0, progress: Progress = lambda _m: None) -> list[Figure]:
    """Run the example probe against a testbed process for ``minutes``, twice side by side (built
    as ``wardwatch probe`` builds it, and from ``collector`` alone, in two processes at the same
    time against the same testbed), and report each one's footprint.

    Raises:
        RuntimeError: a probe's process failed.
    """
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp, \
            testbed_process(load_scenario(None), Path(tmp)) as epr:
        raw["targets"]["testbed"]["base_url"] = epr.fhir_url
        raw["targets"]["testbed"]["auth"]["token_url"] = epr.token_url
        raw.pop("dashboard", None)
        # The HTTP probe's footprint (issue 7's targets); a browser run's is the browser benchmark's.
        raw["workflows"] = [w for w in raw["workflows"] if w.get("kind", "http") == "http"]
        env = {**os.environ, _SECRET_VARIABLE: DEFAULT_CLIENT_SECRET}
        children = {}
        stores = {}
        progress(f"footprint: two probes (cli, lean) on the example workflows for {minutes:g} min")
        for mode in ("cli", "lean"):
            stores[mode] = Path(tmp) / f"store-{mode}"
            config_path = Path(tmp) / f"wardwatch-{mode}.yaml"
            config_path.write_text(yaml.safe_dump({**raw, "store": {"path": str(stores[mode])}}), encoding="utf-8")
            children[mode] = subprocess.Popen(
                [sys.executable, str(_CHILD), str(config_path), str(minutes), mode],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                cwd=str(EXAMPLE_CONFIG.parent.parent))
        for mode, child in children.items():
            out, err = child.communicate(timeout=minutes * 60 + 300)
            if child.returncode != 0:
                raise RuntimeError(f"the {mode} probe process failed: {err[-2000:]}")
            measured = json.loads(out.strip().splitlines()[-1])
            figures += _figures(mode, measured, _runs(stores[mode]))
    return figures


def _figures(mode: str, measured: dict[str, Any], by_status: dict[str, int]) -> list[Figure]:
    label = {"cli": "as `wardwatch probe` builds it", "lean": "collector + store only"}[mode]
    runs = sum(by_status.values())
    cpu_share = measured["cpu_s"] / measured["wall_s"]
    peak_mb = measured["peak_rss_kb"] / 1024
    note = "runs by status: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none")
    return [
        Figure(NAME, f"runs completed ({label})", runs, "runs", runs, note=note),
        Figure(NAME, f"CPU per run ({label})", measured["cpu_s"] / runs if runs else float("nan"), "s", runs),
        Figure(NAME, f"CPU share of one core ({label})", cpu_share * 100, "%", runs, target="< 5%",
               met=cpu_share < 0.05, note=f"{measured['cpu_s']:.2f} CPU s over {measured['wall_s']:.0f} s wall"),
        Figure(NAME, f"peak RSS, VmHWM ({label})", peak_mb, "MB", 1, target="< 150 MB", met=peak_mb < 150),
        Figure(NAME, f"RSS before the first run ({label})", measured["rss_before_kb"] / 1024, "MB", 1),
    ]
