"""Probe footprint: one probe running the example workflows (``examples/testbed.yaml``: three
workflows at three sites, the busiest once a minute) against the testbed for some minutes.

The probe runs in a child process of its own (``benchmarks/probe_child.py CONFIG MINUTES MODE``),
the testbed in another, so the figures are the probe's alone: CPU seconds (user + system, from
``resource.getrusage``) per run and as a share of one core, and peak RSS (``VmHWM``), beside the
same child's RSS after its imports, before the first run. Target (issue 7): under 5% of one core
and under 150 MB. A third probe sends its spans through its spool to an observatory running in the
benchmark's process (issue 12: the same targets with the spool), and the time from a run's end at
that probe to its segment being in place at the observatory is measured (target: median under 5 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from benchmarks.epr import testbed_process
from benchmarks.results import Figure, Progress, median
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
        progress(f"footprint: three probes (cli, lean, spool) on the example workflows for {minutes:g} min")
        # The spool probe sends to an observatory in this process, over its own store.
        stores["spool"] = Path(tmp) / "store-observatory"
        env.update(_SITE_TOKENS)
        with _observatory(stores["spool"]) as observatory_url:
            for mode in ("cli", "lean", "spool"):
                config = {**raw, "store": {"path": str(stores.get(mode, Path(tmp) / f"store-{mode}"))}}
                if mode == "spool":
                    config["store"] = {"path": str(Path(tmp) / "probe-data")}
                    config["export"] = {"observatory": {"endpoint": observatory_url}}
                stores.setdefault(mode, Path(config["store"]["path"]))
                config_path = Path(tmp) / f"wardwatch-{mode}.yaml"
                config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
                children[mode] = subprocess.Popen(
                    [sys.executable, str(_CHILD), str(config_path), str(minutes), "cli" if mode == "spool" else mode],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                    cwd=str(EXAMPLE_CONFIG.parent.parent))
            for mode, child in children.items():
                out, err = child.communicate(timeout=minutes * 60 + 300)
                if child.returncode != 0:
                    raise RuntimeError(f"the {mode} probe process failed: {err[-2000:]}")
                measured = json.loads(out.strip().splitlines()[-1])
                figures += _figures(mode, measured, _runs(stores[mode]))
        figures += _visible_after(stores["spool"])
    return figures


# The demo configuration's site tokens (observatory.tokens), as `make demo` sets them.
_SITE_TOKENS = {f"WARDWATCH_SITE_TOKEN_{site.upper().replace('-', '_')}": f"bench-token-{site}"
                for site in ("ward-7", "outpatient-clinic", "community-hospital")}


@contextmanager
def _observatory(store: Path) -> Iterator[str]:
    """An observatory (receiver and writer) over ``store`` in this process; yields its URL."""
    from observatory import Ingest, ObservatoryServer, RecentSpans, Tokens, create_app

    tokens = Tokens({key.removeprefix("WARDWATCH_SITE_TOKEN_").lower().replace("_", "-"): value
                     for key, value in _SITE_TOKENS.items()})
    ingest = Ingest(store, RecentSpans(1_000_000, 86_400)).start()
    try:
        with ObservatoryServer(create_app(tokens, ingest, max_body_bytes=16 * 1024 * 1024), port=0) as server:
            yield server.url
    finally:
        ingest.stop()


def _visible_after(store: Path) -> list[Figure]:
    """Seconds from each run's end at the probe to the moment its segment was renamed into place
    at the observatory (from then on every reader, the dashboard included, sees it)."""
    import pyarrow.parquet as pq

    from store import list_segments, schema

    delays: list[float] = []
    for segment in list_segments(store):
        visible_s = segment.stat().st_mtime
        table = pq.read_table(segment, columns=[schema.TIMESTAMP, schema.DURATION, schema.SPAN_TYPE]).to_pylist()
        delays += [visible_s - (row[schema.TIMESTAMP].timestamp() + row[schema.DURATION] / 1e9)
                   for row in table if row[schema.SPAN_TYPE] == schema.SPAN_TYPE_RUN]
    value = median(delays) if delays else float("nan")
    return [Figure(NAME, "a run's end at the probe to visible at the observatory, median", value, "s", len(delays),
                   target="< 5 s", met=bool(delays) and value < 5,
                   note="through the batch processor (1 s), the spool, OTLP/HTTP and the observatory's fsynced segment")]


def _figures(mode: str, measured: dict[str, Any], by_status: dict[str, int]) -> list[Figure]:
    label = {"cli": "as `wardwatch probe` builds it", "lean": "collector + store only",
             "spool": "sending to an observatory through its spool"}[mode]
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
