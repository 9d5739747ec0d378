"""Smoke test of the benchmarks: every benchmark runs at a tiny size through the command line and
writes well-formed figures. No timing is asserted: the figures of a tiny run mean nothing."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the accuracy benchmark needs curl")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    # A tiny run takes under a minute; past the deadline the run prints every thread's stack and
    # exits, so a hang fails with where it hung (the subprocess timeout is only a backstop).
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out), "--deadline", "600"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    return {"stdout": done.stdout, "stderr": done.stderr, "json": json.loads(out.read_text(encoding="utf-8"))}


def test_every_benchmark_reports_figures(tiny_run: dict[str, Any]) -> None:
    names = {f["benchmark"] for f in tiny_run["json"]["figures"]}
    assert names == set(BENCHMARKS)


def test_figures_are_well_formed(tiny_run: dict[str, Any]) -> None:
    figures = tiny_run["json"]["figures"]
    assert figures
    for figure in figures:
        assert set(figure) == {"benchmark", "name", "value", "unit", "samples", "target", "met", "note"}
        assert figure["name"] and figure["unit"]
        assert isinstance(figure["samples"], int) and figure["samples"] >= 0
        assert figure["value"] is None or (isinstance(figure["value"], int | float) and math.isfinite(figure["value"]))
        assert figure["met"] in (None, True, False)
        assert (figure["met"] is None) == (figure["target"] == "")


def test_ratios_are_measured_side_by_side(tiny_run: dict[str, Any]) -> None:
    figures = tiny_run["json"]["figures"]
    ratios = [f for f in figures if f["unit"] == "x"]
    assert {f["benchmark"] for f in ratios} >= {"scale", "report", "ingest"}
    assert all(f["value"] is not None and f["value"] > 0 for f in ratios)


def test_analysis_figures_agree_with_the_hand_written_queries(tiny_run: dict[str, Any]) -> None:
    """Ours and the hand-written query compute the same numbers (the note states the largest gap)."""
    notes = [f["note"] for f in tiny_run["json"]["figures"]
             if f["benchmark"] in ("scale", "report") and f["name"].endswith(": ours")]
    assert len(notes) == 5
    for note in notes:
        gap = float(note.split(": ")[1].split(";")[0])
        assert gap < 1e-9, note


def test_the_machine_is_described(tiny_run: dict[str, Any]) -> None:
    machine = tiny_run["json"]["machine"]
    assert machine["nproc"] >= 1 and machine["cpu_model"] and machine["python"] and machine["duckdb"]


def test_stdout_holds_the_table_and_stderr_the_progress(tiny_run: dict[str, Any]) -> None:
    lines = tiny_run["stdout"].splitlines()
    assert lines[0].split()[:3] == ["benchmark", "figure", "value"]
    assert "remaining" not in tiny_run["stdout"]  # DuckDB's progress bars go to stderr
    assert "accuracy:" in tiny_run["stderr"] and "footprint:" in tiny_run["stderr"]
