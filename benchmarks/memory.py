"""The month's report in a process of its own: peak memory against the store's size, and time.

For each store size (1M, 10M and 100M spans with ``--full``), interleaved in rounds:
- **ours**: ``build_report`` as the report benchmark configures it (one SLA, one objective, the
  ward-rounds period), in a child process (``benchmarks.report_child``); its peak RSS is the
  child's ``VmHWM``;
- **hand-written**: the report benchmark's hand-written DuckDB query of the same figures, in a
  child process too (its peak RSS is DuckDB's working memory for those figures);
- **end to end**: ``wardwatch report -c CONFIG --month 2026-10 --format json``, the command line
  with the example configuration's four SLAs and three objectives over the store, timed from
  the command's start to its exit, with its peak RSS (the child's ``ru_maxrss``); in the first
  round only (it compares with nothing, and takes longest).
A child whose RSS passes :data:`RSS_CAP_MB` is stopped (the machine is shared) and reported as
above the cap. Stores of 50M spans and more get one round.

Targets (issue 15): peak RSS <= 500 MB at 10M and 100M, the ratio 100M / 10M <= 1.3; time <= 1.5x
the hand-written query; end to end <= 10 s at 10M.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.results import Figure, Progress, median

__all__ = ["RSS_CAP_MB", "run"]

NAME = "memory"
RSS_CAP_MB = 12_000.0
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "testbed.yaml"


def _measure(command: list[str], cap_mb: float = RSS_CAP_MB) -> dict[str, Any]:
    """Run ``command``; its wall time, peak RSS (``ru_maxrss`` of the child) and standard output.
    Stopped when its RSS passes ``cap_mb``."""
    began = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    capped = threading.Event()

    def watch() -> None:
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                rss = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            if rss / 1024 > cap_mb:
                capped.set()
                child.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # Standard error is drained beside standard output: a child that fills the pipe with DuckDB's
    # progress bars (a 100M-span report) would otherwise wait on it for ever while we read stdout.
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.append(child.stderr.read() if child.stderr else ""),
                             daemon=True)
    drain.start()
    out = child.stdout.read() if child.stdout else ""
    drain.join()
    err = errors[0] if errors else ""
    for pipe in (child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    return {"seconds": time.perf_counter() - began, "maxrss_mb": usage.ru_maxrss / 1024, "stdout": out,
            "stderr": err, "returncode": child.returncode, "capped": capped.is_set()}


def _config(store: Path, directory: Path) -> Path:
    """The example configuration (four SLAs, three objectives) with ``store.path`` set to ``store``."""
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["store"] = {**document.get("store", {}), "path": str(store)}
    path = directory / "wardwatch.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, *, spans: int, repeats: int = 3, progress: Progress = lambda _m: None) -> list[Figure]:
    """Measure the report, the hand-written query and the command end to end at one store size."""
    rounds = 1 if spans >= 50_000_000 else repeats
    size = f"{spans / 1e6:g}M spans"
    child = [sys.executable, "-m", "benchmarks.report_child"]
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "hand": [], "cli": []}
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-memory-") as tmp:
        config = _config(path, Path(tmp))
        cli = [sys.executable, "-m", "wardwatch", "report", "-c", str(config), "--month", "2026-10",
               "--format", "json"]
        for index in range(rounds):
            progress(f"memory: round {index + 1}/{rounds} at {size} (load {os.getloadavg()[0]:.1f})")
            contenders = [("ours", [*child, "report", str(path)]), ("hand", [*child, "hand", str(path)])]
            for name, command in contenders + ([("cli", cli)] if index == 0 else []):
                measured = _measure(command)
                if measured["returncode"] != 0 and not measured["capped"]:
                    raise RuntimeError(f"{name} failed: {measured['stderr'][-3000:]}")
                if name != "cli" and not measured["capped"]:
                    measured.update(json.loads(measured["stdout"].strip().splitlines()[-1]))
                results[name].append(measured)
    return _figures(results, size, spans)


def _figures(results: dict[str, list[dict[str, Any]]], size: str, spans: int) -> list[Figure]:
    figures: list[Figure] = []
    capped = {name: any(m["capped"] for m in measured) for name, measured in results.items()}
    peak = {name: max(m.get("vmhwm_mb", m["maxrss_mb"]) for m in measured) for name, measured in results.items()}
    n = len(results["ours"])
    cap_note = f"stopped at {RSS_CAP_MB:,.0f} MB: above it" if capped["ours"] else ""
    big = spans >= 10_000_000
    figures.append(Figure(NAME, f"build_report peak RSS (VmHWM of its process) @ {size}", peak["ours"], "MB", n,
                          target="<= 500 MB" if big else "", met=(peak["ours"] <= 500 and not capped["ours"]) if big else None,
                          note=cap_note))
    figures.append(Figure(NAME, f"hand-written query peak RSS @ {size}", peak["hand"], "MB", n))
    figures.append(Figure(NAME, f"wardwatch report end to end, peak RSS @ {size}", peak["cli"], "MB", len(results["cli"]),
                          note="stopped at the cap" if capped["cli"] else "4 SLAs, 3 objectives (examples/testbed.yaml)"))
    if not capped["ours"]:
        ours = median([m["seconds"] for m in results["ours"]])
        hand = median([m["seconds"] for m in results["hand"]])
        diffs = [abs(m["figures"][k] - h["figures"][k]) for m, h in zip(results["ours"], results["hand"], strict=True)
                 for k in m["figures"] if k in h["figures"]]
        figures += [
            Figure(NAME, f"build_report in its process @ {size}", ours * 1000, "ms", n,
                   note=f"max |report - hand-written| over the SLA value, per-site share good and p90: {max(diffs or [0]):.3g}"),
            Figure(NAME, f"hand-written query in its process @ {size}", hand * 1000, "ms", n),
            Figure(NAME, f"build_report / hand-written @ {size}", ours / hand, "x", n,
                   target="<= 1.5x" if big else "", met=(ours / hand <= 1.5) if big else None),
        ]
    if not capped["cli"]:
        cli = median([m["seconds"] for m in results["cli"]])
        at_10m = spans == 10_000_000
        figures.append(Figure(NAME, f"wardwatch report end to end @ {size}", cli, "s", len(results["cli"]),
                              target="<= 10 s" if at_10m else "", met=(cli <= 10) if at_10m else None,
                              note="from the command's start to its exit (imports included)"))
    return figures


def curve(figures: list[Figure]) -> list[Figure]:
    """The ratio of build_report's peak RSS at 100M spans to that at 10M, when both were measured."""
    peaks = {f.name.rsplit("@ ", 1)[1]: f for f in figures
             if f.benchmark == NAME and f.name.startswith("build_report peak RSS")}
    if "10M spans" not in peaks or "100M spans" not in peaks:
        return []
    ratio = peaks["100M spans"].value / peaks["10M spans"].value
    return [Figure(NAME, "build_report peak RSS, 100M / 10M spans", ratio, "x", 1, target="<= 1.3",
                   met=ratio <= 1.3 and not peaks["100M spans"].note)]
