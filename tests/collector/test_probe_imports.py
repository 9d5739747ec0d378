"""What a probe process loads: only what runs workflows and writes spans (issue 13's footprint).

``wardwatch probe`` forgoes numpy and pandas before it imports pyarrow; the OTLP client, SQLite
(the spool), the testbed's web server and Playwright load only where they are used. A subprocess
does what the command does, builds the example probe, writes and compacts spans, and lists what
it loaded. Memory itself is the benchmark's to measure, never a test's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
NOT_IN_A_PROBE = ("numpy", "pandas", "duckdb", "dash", "plotly", "requests", "google.protobuf", "sqlite3",
                  "uvicorn", "starlette", "playwright")


def _loaded_by_a_probe(tmp_path: Path, setup: str = "") -> list[str]:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["store"] = {"path": str(tmp_path / "store")}
    path = tmp_path / "wardwatch.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    code = f"""
import datetime as dt, sys
from pathlib import Path
{setup}
from wardwatch.forgo import forgo
forgo("numpy", "pandas")  # as `wardwatch probe` does first
import wardwatch.cli
from wardwatch import forwarding, wiring
from wardwatch.config import load_config
import collector.browser.runner

probe = wiring.build_probe(load_config(Path({str(path)!r})))
assert any(job.workflow.kind == "browser" for job in probe.jobs()), "the example has a browser workflow"
from store import compact, schema, write_spans
row = {{schema.TIMESTAMP: dt.datetime(2026, 11, 27, tzinfo=dt.UTC), schema.TRACE_ID: "a" * 32,
        schema.SPAN_ID: "b" * 16, schema.SPAN_ATTRIBUTES: {{schema.ATTR_RUN_WAITING_S: 1.5}}}}
before_1970 = {{schema.TIMESTAMP: dt.datetime(1969, 12, 31, 23, tzinfo=dt.UTC), schema.SPAN_ID: "d" * 16}}
write_spans({str(tmp_path / "store")!r}, [row, dict(row, **before_1970)])
write_spans({str(tmp_path / "store")!r}, [dict(row, **{{schema.SPAN_ID: "c" * 16}})])
compact({str(tmp_path / "store")!r}, grace_s=0)
probe.shutdown()
print(" ".join(m for m in {NOT_IN_A_PROBE!r} if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.split()


def test_a_probe_loads_only_what_runs_workflows_and_writes_spans(tmp_path: Path) -> None:
    assert _loaded_by_a_probe(tmp_path) == []
    from store import connect

    with connect(tmp_path / "store") as con:  # the spans landed, each on its UTC day, before 1970 too
        rows = con.execute('SELECT "SpanId", CAST("Timestamp" AS DATE)::VARCHAR FROM spans ORDER BY 1').fetchall()
    assert rows == [("b" * 16, "2026-11-27"), ("c" * 16, "2026-11-27"), ("d" * 16, "1969-12-31")]


def test_the_check_can_fail(tmp_path: Path) -> None:
    """The list above is read from the process: a module the probe's path imports shows in it."""
    assert _loaded_by_a_probe(tmp_path, setup="import sqlite3, requests") == ["requests", "sqlite3"]
