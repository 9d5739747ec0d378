"""``python -m benchmarks [--quick | --full] [--only NAME ...] [--spans N ...] [--repeats N]
[--out FILE.json] [--keep-stores DIR] [--deadline SECONDS]``

Prints a table of figures (medians, p95/p99 where asked, and ratios measured side by side in the
same run), writes them with the machine's description as JSON (default ``artifacts/bench.json``)
and reports progress on stderr. DuckDB's own progress bars go to stderr too, so stdout holds only
the table.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from benchmarks.machine import describe_machine
from benchmarks.results import Figure
from benchmarks.suite import BENCHMARKS, Settings, run_suite


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes and few repeats (a few minutes)")
    size.add_argument("--full", action="store_true",
                      help="also 10M spans, and a 10-minute probe footprint (more than an hour)")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the smoke test's size
    parser.add_argument("--only", action="append", choices=BENCHMARKS, default=[], metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--spans", type=int, action="append", default=[], metavar="N",
                        help="size of the generated store (repeatable; overrides the preset's sizes)")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="timed rounds of scale, report and dashboard (overrides the preset); "
                             "with 1 there is no untimed warm-up call either")
    parser.add_argument("--out", type=Path, default=Path("artifacts") / "bench.json", help="JSON results file")
    parser.add_argument("--keep-stores", type=Path, default=None, metavar="DIR",
                        help="keep the generated stores in DIR and reuse them next time")
    parser.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="if the run is still going after SECONDS, print every thread's stack to stderr "
                             "and exit with status 1 (for unattended runs: a hang shows where it hangs)")
    return parser


def format_value(figure: Figure) -> str:
    value = figure.value
    if value != value:  # NaN
        return "n/a"
    if figure.unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 1000:
        return f"{value:,.0f} {figure.unit}"
    return f"{value:.3g} {figure.unit}" if abs(value) < 10 else f"{value:.1f} {figure.unit}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as a plain-text table: benchmark, figure, value, n, target, met."""
    header = ("benchmark", "figure", "value", "n", "target", "met")
    rows = [header] + [
        (f.benchmark, f.name, format_value(f), str(f.samples), f.target,
         "" if f.met is None else ("yes" if f.met else "NO"))
        for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextmanager
def _stdout_to_stderr() -> Iterator[TextIO]:
    """Send what native code writes to stdout (DuckDB's progress bars) to stderr; yield a stream
    on the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.quick() if args.quick else Settings.full() if args.full else \
        Settings.tiny() if args.tiny else Settings()
    if args.spans:
        settings = replace(settings, store_sizes=tuple(args.spans), memory_sizes=tuple(args.spans))
    if args.repeats is not None:
        settings = replace(settings, scale_repeats=args.repeats, report_repeats=args.repeats,
                           dashboard_repeats=args.repeats, memory_repeats=args.repeats, warm_up=args.repeats > 1)
    if args.deadline is not None:
        faulthandler.dump_traceback_later(args.deadline, exit=True)
    began = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {message}", file=sys.stderr, flush=True)

    machine = describe_machine()
    progress(f"machine: {machine['nproc']} x {machine['cpu_model']}, {machine['ram_gb']} GB, "
             f"Python {machine['python']}, DuckDB {machine['duckdb']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    collected: list[Figure] = []

    def save(new: list[Figure]) -> None:  # after each benchmark, so a long run keeps what it has
        collected.extend(new)
        document = {"machine": machine, "settings": settings.__dict__, "only": args.only,
                    "elapsed_s": round(time.perf_counter() - began, 1),
                    "figures": [f.as_dict() for f in collected]}
        args.out.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")

    with _stdout_to_stderr() as stdout:
        figures = run_suite(settings, args.only, keep_dir=args.keep_stores, progress=progress, on_figures=save)
        stdout.write(format_table(figures) + "\n")
        stdout.write(f"\n{len(figures)} figures in {time.perf_counter() - began:.0f} s; written to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
