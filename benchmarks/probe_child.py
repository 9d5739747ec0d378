"""The probe whose footprint ``benchmarks.footprint`` measures, run as a script in its own process:
``python benchmarks/probe_child.py CONFIG MINUTES MODE`` prints one JSON line of measurements.

It imports nothing of the benchmarks package, so the process holds only what the probe needs.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Run by path, this file's directory heads sys.path: drop it so no benchmark module shadows another.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import yaml  # noqa: E402


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _probe(config_path: Path, mode: str) -> Any:
    """The probe as ``wardwatch probe`` builds it (``cli``: through the composition root, which
    also imports the analysis and dashboard packages), or from ``collector`` and ``store`` alone
    (``lean``)."""
    if mode == "cli":
        from wardwatch.config import load_config
        from wardwatch.wiring import build_probe, forgo_pandas

        forgo_pandas()  # as wardwatch.wiring.probe_forever does
        return build_probe(load_config(config_path))
    from collector import Probe, SiteConfig, TargetConfig, TestPatientConfig, WorkflowConfig
    from store import ParquetSpanExporter

    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    return Probe(
        {name: TargetConfig.model_validate(t) for name, t in raw["targets"].items()},
        [SiteConfig.model_validate(site) for site in raw["sites"]],
        [TestPatientConfig.model_validate(p) for p in raw["patients"]],
        [WorkflowConfig.model_validate(w) for w in raw["workflows"]],
        [ParquetSpanExporter(Path(raw["store"]["path"]))],
        probe_id="bench",
    )


def probe_for(config_path: Path, minutes: float, mode: str) -> dict[str, Any]:
    """In this process: build the probe (``mode`` ``cli`` or ``lean``), run it for ``minutes``,
    then measure this process.

    Returns ``cpu_s`` (user + system since the probe was built), ``wall_s``, ``rss_before_kb``
    (after imports and building the probe) and ``peak_rss_kb`` (VmHWM)."""
    probe = _probe(config_path, mode)
    rss_before_kb = _status_kb("VmRSS")
    cpu_before = _cpu_s()
    stop = threading.Event()
    timer = threading.Timer(minutes * 60, stop.set)
    began = time.perf_counter()
    timer.start()
    try:
        probe.run_forever(stop)
    finally:
        timer.cancel()
        probe.shutdown()
    return {"cpu_s": _cpu_s() - cpu_before, "wall_s": time.perf_counter() - began,
            "rss_before_kb": rss_before_kb, "peak_rss_kb": _status_kb("VmHWM")}


if __name__ == "__main__":
    result = probe_for(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
    sys.stdout.write(json.dumps(result) + "\n")
