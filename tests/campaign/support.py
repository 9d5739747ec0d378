"""Helpers shared by the campaign's tests and the soak driver (no pytest here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "testbed.yaml"
WARDWATCH = [sys.executable, "-m", "wardwatch"]
TESTBED_SECRET_VARIABLE = "WARDWATCH_TESTBED_CLIENT_SECRET"
TESTBED_SECRET = "testbed-demo-secret"
# The example's observatory tokens (`wardwatch check` resolves them as the observatory will).
DEMO_TOKENS = {variable: f"demo-{variable.lower()}" for variable in (
    "WARDWATCH_SITE_TOKEN_WARD_7", "WARDWATCH_SITE_TOKEN_OUTPATIENT_CLINIC",
    "WARDWATCH_SITE_TOKEN_COMMUNITY_HOSPITAL", "WARDWATCH_EPR_TOKEN_TESTBED")}

__all__ = [
    "EXAMPLE",
    "ROOT",
    "TESTBED_SECRET",
    "TESTBED_SECRET_VARIABLE",
    "WARDWATCH",
    "child_env",
    "example_data",
    "kill_hard",
    "rss_kib",
    "wait_gone",
    "write_config",
]


def example_data() -> dict[str, Any]:
    """``examples/testbed.yaml`` as plain data."""
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _have_chromium() -> bool:
    from collector.browser import BrowserMissingError, find_chromium

    try:
        find_chromium(os.environ)
    except BrowserMissingError:
        return False
    return True


def write_config(
    path: Path,
    base_url: str,
    store_path: Path,
    *,
    interval_s: float | None = None,
    workflows: Sequence[str] | None = None,
    compaction_interval_s: float | None = None,
    think_time_s: float | None = 0.0,
) -> Path:
    """The example config aimed at the testbed at ``base_url`` (``http://127.0.0.1:PORT``) and a
    data directory, optionally at a faster cadence; written to ``path``."""
    data = example_data()
    data["store"] = {"path": str(store_path)}
    if compaction_interval_s is not None:
        data["store"]["compaction_interval_s"] = compaction_interval_s
    for target in data["targets"].values():
        target["base_url"] = f"{base_url}/fhir"
        target["auth"]["token_url"] = f"{base_url}/auth/token"
        target["max_requests_per_min"] = 1_000_000
    kept = []
    for workflow in data["workflows"]:
        if workflows is not None and workflow["name"] not in workflows:
            continue
        if workflow.get("kind") == "browser":
            if not _have_chromium():
                continue  # a developer's machine without Chromium; CI has it (browser tests say so)
            workflow["url"] = f"{base_url}/app/"
        if interval_s is not None:
            workflow["interval_s"] = interval_s
            workflow["jitter_s"] = 0
        if think_time_s is not None:
            workflow["think_time_s"] = think_time_s
        kept.append(workflow)
    data["workflows"] = kept
    names = {w["name"] for w in kept}
    for section in ("objectives", "task_volumes"):
        data[section] = [item for item in data.get(section, []) if item["workflow"] in names]
    for sla in data.get("slas", []):
        if "workflows" in sla:
            sla["workflows"] = [w for w in sla["workflows"] if w in names]
        if sla.get("workflows") == []:
            del sla["workflows"]
    for change in data.get("changes", []):
        change["workflows"] = [w for w in change.get("workflows", []) if w in names] or None
        if change["workflows"] is None:
            del change["workflows"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child Wardwatch process: the testbed's secret, no OTLP endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env[TESTBED_SECRET_VARIABLE] = TESTBED_SECRET
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def kill_hard(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGKILL a child we started and wait for it to be gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=timeout_s)


def rss_kib(pid: int) -> int | None:
    """The resident set size of process ``pid`` in KiB (``None`` once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until no process ``pid`` exists (a child reaped by someone else)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)
    raise TimeoutError(f"process {pid} still exists")
