"""A long run with stable memory: a real `wardwatch probe` process probing the testbed at a fast
cadence while its resident memory (RSS) is sampled every second.

After a warm-up, the median RSS of the first tenth of the measured time is the baseline and the
median of the last tenth the final figure; the run fails if final - baseline exceeds the bound.
The testbed EPR runs in this (the driver's) process on 127.0.0.1; the probe writes into a data
directory of its own, compacting it in the background.

    python -m tests.campaign.soak                    # `make soak`: 30 minutes, bound 20 MB
    python -m tests.campaign.soak --duration-s 60    # the test suite's compressed version
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SoakResult", "main", "soak"]

DEFAULT_DURATION_S = 1800.0
DEFAULT_BOUND_MB = 20.0


@dataclass
class SoakResult:
    """What a soak measured.

    Attributes:
        samples_kib: (seconds since start, RSS in KiB) every ``sample_s``.
        warmup_s: samples before this are not judged.
        baseline_mb: median RSS of the first tenth of the judged samples.
        final_mb: median RSS of the last tenth.
        peak_mb: the highest RSS sampled.
        runs: runs stored; ``ok_runs`` of them ok.
        bound_mb: the most ``final_mb - baseline_mb`` may be.
    """

    samples_kib: list[tuple[float, int]] = field(default_factory=list)
    warmup_s: float = 0.0
    baseline_mb: float = 0.0
    final_mb: float = 0.0
    peak_mb: float = 0.0
    runs: int = 0
    ok_runs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    bound_mb: float = DEFAULT_BOUND_MB
    exit_code: int | None = None

    @property
    def growth_mb(self) -> float:
        return self.final_mb - self.baseline_mb

    @property
    def held(self) -> bool:
        # a run in flight when the probe is stopped is recorded as interrupted, and that is right
        return self.growth_mb <= self.bound_mb and self.ok_runs > 0 and self.failed_runs == 0

    @property
    def failed_runs(self) -> int:
        return self.runs - self.ok_runs - self.statuses.get("interrupted", 0)

    def summary(self) -> str:
        judged = sum(1 for t, _ in self.samples_kib if t >= self.warmup_s)
        return (
            f"{'held' if self.held else 'FAILED'}: RSS {self.baseline_mb:.1f} MB after a {self.warmup_s:.0f} s "
            f"warm-up -> {self.final_mb:.1f} MB at the end (growth {self.growth_mb:+.1f} MB, bound "
            f"{self.bound_mb:.0f} MB, peak {self.peak_mb:.1f} MB, {judged} samples judged); "
            f"{self.ok_runs} of {self.runs} runs ok {self.statuses}; probe exit code {self.exit_code}"
        )


def soak(
    duration_s: float,
    *,
    data_dir: Path,
    warmup_s: float | None = None,
    interval_s: float = 2.0,
    sample_s: float = 1.0,
    bound_mb: float = DEFAULT_BOUND_MB,
    compaction_interval_s: float = 10.0,
) -> SoakResult:
    """Probe the testbed for ``duration_s`` seconds and judge the probe's memory.

    Args:
        duration_s: how long the probe runs.
        data_dir: where the config and the probe's store go.
        warmup_s: seconds not judged at the start (default: a third, at most 120 s).
        interval_s: every workflow's cadence at every site (the example's workflows, no think time).
        sample_s: seconds between RSS samples.
        bound_mb: the most the RSS may grow after the warm-up.
        compaction_interval_s: the probe's background compaction cadence (the product's default is
            300 s; the 30-minute soak compacts every 10 s to stress it).
    """
    import analysis
    import testbed
    from tests.campaign.support import WARDWATCH, child_env, kill_hard, rss_kib, write_config

    warmup_s = min(duration_s / 3, 120.0) if warmup_s is None else warmup_s
    store_path = data_dir / "store"
    result = SoakResult(warmup_s=warmup_s, bound_mb=bound_mb)
    scenario = testbed.scenario_for_tests(2.0, network_ms={"community-hospital": 10.0})
    with testbed.TestbedServer(scenario, shutdown_timeout_s=1.0) as epr:
        config = write_config(data_dir / "soak.yaml", epr.base_url, store_path, interval_s=interval_s,
                              compaction_interval_s=compaction_interval_s)
        probe = subprocess.Popen([*WARDWATCH, "probe", "-c", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=child_env())
        try:
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < duration_s:
                rss = rss_kib(probe.pid)
                if rss is None or probe.poll() is not None:
                    break
                result.samples_kib.append((elapsed, rss))
                time.sleep(max(0.0, sample_s - (time.monotonic() - start - elapsed)))
            probe.send_signal(signal.SIGTERM)  # flushes every span, then exits
            result.exit_code = probe.wait(timeout=30)
        finally:
            kill_hard(probe)
    judged = [kib for t, kib in result.samples_kib if t >= warmup_s]
    tenth = max(3, len(judged) // 10)
    if len(judged) >= 2 * tenth:
        result.baseline_mb = statistics.median(judged[:tenth]) / 1024
        result.final_mb = statistics.median(judged[-tenth:]) / 1024
    else:
        result.baseline_mb, result.final_mb = 0.0, float("inf")
    result.peak_mb = max((kib for _, kib in result.samples_kib), default=0) / 1024
    with analysis.open_store(store_path) as opened:
        runs = opened.runs()
    result.runs = len(runs)
    result.ok_runs = int((runs["status"] == "ok").sum())
    result.statuses = {str(k): int(v) for k, v in runs["status"].value_counts().items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaign.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=DEFAULT_DURATION_S, help="how long the probe runs")
    parser.add_argument("--warmup-s", type=float, default=None, help="seconds not judged (default: a third, at most 120)")
    parser.add_argument("--interval-s", type=float, default=2.0, help="every workflow's cadence at every site")
    parser.add_argument("--bound-mb", type=float, default=DEFAULT_BOUND_MB, help="most RSS growth after the warm-up")
    parser.add_argument("--data", type=Path, default=None, help="data directory (default: a temporary one)")
    parser.add_argument("--samples", type=Path, default=None, help="write the RSS samples here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wardwatch-soak-") as scratch:
        data_dir = args.data or Path(scratch)
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"soak: probing the testbed every {args.interval_s:g} s for {args.duration_s:g} s ...", flush=True)
        result = soak(args.duration_s, data_dir=data_dir, warmup_s=args.warmup_s, interval_s=args.interval_s,
                      bound_mb=args.bound_mb)
    print(result.summary())
    if args.samples is not None:
        args.samples.write_text(json.dumps({"summary": result.summary(), "samples_s_kib": result.samples_kib}), encoding="utf-8")
    return 0 if result.held else 1


if __name__ == "__main__":
    sys.exit(main())
