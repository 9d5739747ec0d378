"""Browser runs: the probe's step time against the page's own marks, and a browser probe's footprint.

Overhead: the example browser workflow (``open-patient-record-in-browser``) against a testbed
process, in one browser; for each run, the probe's time for the record step (from the click as
the page received it to the frame the record was painted in) against the page's own
``performance.mark`` pair for the same moment (``record-open`` in its click handler,
``record-visible`` when the spinner goes). Target (issue 13): median difference under 20 ms.

Footprint: ``wardwatch probe`` running only that workflow on its cadence (a run a minute) for some
minutes, the probe's process with Playwright's driver and the browser's processes, read from
``/proc``: CPU seconds over the window as a share of one core, and the proportional set size
(PSS: shared pages split between the processes sharing them) at its peak and its median.
Targets (issue 13): under 10% of one core and under 400 MB. Without Chromium the figures are
``n/a`` with a note.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.epr import testbed_process
from benchmarks.results import Figure, Progress
from testbed import DEFAULT_CLIENT_SECRET, load_scenario

__all__ = ["run"]

NAME = "browser"
WORKFLOW = "open-patient-record-in-browser"
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "testbed.yaml"
_MARKS_JS = ("performance.getEntriesByName('record-visible').at(-1).startTime"
             " - performance.getEntriesByName('record-open').at(-1).startTime")


def run(*, repeats: int = 10, minutes: float = 2.0, progress: Progress = lambda _m: None) -> list[Figure]:
    from collector.browser import BrowserMissingError, find_chromium

    try:
        executable = find_chromium(os.environ)
    except BrowserMissingError as exc:
        return [Figure(NAME, name, float("nan"), unit, 0, note=f"not measured: {exc}")
                for name, unit in (("probe minus page marks, median", "ms"),
                                   ("CPU share of one core at a run a minute", "%"),
                                   ("peak PSS, probe and browser", "MB"))]
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-browser-") as tmp, \
            testbed_process(load_scenario(None), Path(tmp)) as epr:
        address = epr.base_url.removeprefix("http://")
        raw = yaml.safe_load(yaml.safe_dump(raw).replace("127.0.0.1:8765", address))
        figures = _overhead(raw, executable, repeats, progress)
        figures += _footprint(raw, Path(tmp), minutes, progress, browser=Path(executable).name)
    return figures


def _overhead(raw: dict[str, Any], executable: str, repeats: int, progress: Progress) -> list[Figure]:
    import pydantic
    from opentelemetry.sdk.trace import TracerProvider

    from collector.browser import BrowserHost, run_browser_workflow
    from collector.config import AnyWorkflowConfig, SiteConfig, TargetConfig, TestPatientConfig

    workflow = pydantic.TypeAdapter(AnyWorkflowConfig).validate_python(
        next(w for w in raw["workflows"] if w["name"] == WORKFLOW))
    target = TargetConfig.model_validate(raw["targets"]["testbed"])
    site = SiteConfig.model_validate(raw["sites"][0])
    patients = [TestPatientConfig.model_validate(p) for p in raw["patients"]]
    tracer = TracerProvider().get_tracer("bench")  # spans are not kept: only the step times matter here
    host = BrowserHost(executable)
    differences_ms: list[float] = []
    page_ms: list[float] = []
    progress(f"browser: {repeats} runs of {WORKFLOW}, probe time against the page's own marks")
    try:
        for index in range(repeats):
            marks: list[float] = []
            result = run_browser_workflow(
                workflow, target, site, tracer=tracer, host=host, patients=patients,
                environ={"WARDWATCH_TESTBED_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}, rng=random.Random(index),
                inspect_page=lambda page: marks.append(float(page.evaluate(_MARKS_JS))))
            if result.status != "ok" or not marks:
                continue
            probe_ms = result.steps[-1].duration_s * 1000.0
            differences_ms.append(probe_ms - marks[0])
            page_ms.append(marks[0])
    finally:
        host.close()
    median_ms = statistics.median(differences_ms) if differences_ms else float("nan")
    return [
        Figure(NAME, "probe minus page marks, median", median_ms, "ms", len(differences_ms), target="< 20 ms",
               met=bool(differences_ms) and abs(median_ms) < 20,
               note=f"the page's own time for the record, median {statistics.median(page_ms):.0f} ms" if page_ms else ""),
        Figure(NAME, "probe minus page marks, largest", max(differences_ms, default=float("nan")), "ms",
               len(differences_ms)),
    ]


def _footprint(raw: dict[str, Any], tmp: Path, minutes: float, progress: Progress, *, browser: str) -> list[Figure]:
    config = {**raw, "store": {"path": str(tmp / "store-browser")}}  # `--workflow` picks the browser one
    # The probe with its browser alone: no dashboard, and no alerts evaluator beside it (a process
    # of its own, which a probe sending to an observatory does not start either).
    config.pop("dashboard", None)
    config.pop("alerting", None)
    path = tmp / "browser.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "WARDWATCH_TESTBED_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
    progress(f"browser: `wardwatch probe` with the browser workflow for {minutes:g} min")
    child = subprocess.Popen([sys.executable, "-m", "wardwatch.cli", "probe", "-c", str(path), "--workflow", WORKFLOW],
                             stdout=subprocess.DEVNULL, stderr=(tmp / "probe.log").open("wb"), env=env)
    cpu_s: dict[int, float] = {}
    samples_mb: list[float] = []
    parts_mb: list[dict[str, float]] = []  # each sample's PSS by part: the probe, the driver, the browser
    began = time.monotonic()
    try:
        while time.monotonic() - began < minutes * 60:
            tree = _tree(child.pid)
            parts = dict.fromkeys(_PARTS, 0.0)
            for pid in tree:
                cpu = _cpu_s(pid)
                if cpu is not None:
                    cpu_s[pid] = cpu
                parts[_part(pid, child.pid)] += _pss_kb(pid) / 1024
            samples_mb.append(sum(parts.values()))
            parts_mb.append(parts)
            time.sleep(1.0)
    finally:
        child.terminate()
        child.wait(timeout=60)
    if child.returncode not in (0, -15):
        raise RuntimeError(f"the browser probe failed: {(tmp / 'probe.log').read_text()[-2000:]}")
    wall_s = time.monotonic() - began
    runs = _runs(tmp / "store-browser")
    share = sum(cpu_s.values()) / wall_s
    peak_mb = max(samples_mb, default=float("nan"))
    at_peak = parts_mb[samples_mb.index(peak_mb)] if samples_mb else dict.fromkeys(_PARTS, float("nan"))
    return [
        Figure(NAME, "browser runs in the footprint window", runs, "runs", runs,
               note="the first starts at the next whole minute"),
        Figure(NAME, "CPU share of one core at a run a minute", share * 100, "%", len(samples_mb), target="< 10%",
               met=share < 0.10, note=f"{sum(cpu_s.values()):.1f} CPU s over {wall_s:.0f} s, browser start included"),
        Figure(NAME, "peak PSS, probe and browser", peak_mb, "MB", len(samples_mb), target="< 400 MB",
               met=peak_mb < 400, note=f"the probe, Playwright's driver and every process of {browser}"),
        Figure(NAME, "median PSS, probe and browser", statistics.median(samples_mb) if samples_mb else float("nan"),
               "MB", len(samples_mb)),
        *(Figure(NAME, f"PSS at the peak: {part}", at_peak[part], "MB", 1,
                 note=f"its own peak {max(p[part] for p in parts_mb):.0f} MB" if parts_mb else "")
          for part in _PARTS),
    ]


def _runs(store_path: Path) -> int:
    from analysis import open_store

    if not (store_path / "store.json").exists():
        return 0
    with open_store(store_path) as store:
        return len(store.runs())


_PARTS = ("the probe's process", "Playwright's driver", "the browser")


def _part(pid: int, probe_pid: int) -> str:
    """Which part of the tree a process is: the probe itself, Playwright's Node.js driver (and
    anything else that is not the browser), or one of Chromium's processes."""
    if pid == probe_pid:
        return _PARTS[0]
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return _PARTS[2]
    return _PARTS[2] if "chrom" in Path(command).name else _PARTS[1]


def _tree(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def _cpu_s(pid: int) -> float | None:
    """User + system time of the process and its reaped children (a closed renderer's time too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
