"""The benchmark suite: which benchmarks run, at what sizes, sharing one generated store."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from analysis.budget import calendar_month
from benchmarks import (
    accuracy, browser, callbacks, dashboard_http, footprint, ingest, memory, observatory, paint, report, scale, synth,
)
from benchmarks.results import Figure, Progress

__all__ = ["BENCHMARKS", "Settings", "run_suite"]

BENCHMARKS = ("accuracy", "ingest", "observatory", "scale", "report", "memory", "dashboard", "dashboard-http", "paint",
              "footprint", "browser")
MONTH = "2026-10"


@dataclass(frozen=True)
class Settings:
    """Sizes and repeats of one run of the suite.

    Attributes:
        accuracy_repeats: probe/curl pairs per delay under one second.
        accuracy_slow_repeats: pairs at the one-second delay.
        accuracy_delays_ms: the injected delays.
        ingest_spans: spans per ingest round.
        ingest_repeats: ingest rounds.
        store_sizes: span counts of the generated stores that scale, report and dashboard use.
        scale_repeats: interleaved rounds per analysis comparison.
        report_repeats: rounds of the report comparison.
        dashboard_repeats: calls per dashboard page.
        paint_repeats: browser visits of the overview per variant.
        footprint_minutes: how long the probe runs (the HTTP probe's, and the browser probe's).
        browser_repeats: browser runs compared with the page's own marks.
        memory_sizes: span counts of the stores the memory benchmark measures the report over
            (each in a process of its own: the memory curve).
        memory_repeats: interleaved rounds of the memory benchmark (one at 50M spans and more).
        days: days of generated history (from 2026-10-01).
        warm_up: one untimed call of each contender before the timed ones (scale, report,
            dashboard); off makes a single-repeat run at 10M affordable.
    """

    accuracy_repeats: int = 50
    accuracy_slow_repeats: int = 20
    accuracy_delays_ms: tuple[int, ...] = accuracy.DELAYS_MS
    ingest_spans: int = 20_000
    ingest_repeats: int = 3
    store_sizes: tuple[int, ...] = (1_000_000,)
    scale_repeats: int = 5
    report_repeats: int = 3
    dashboard_repeats: int = 7
    paint_repeats: int = 10
    footprint_minutes: float = 2.0
    browser_repeats: int = 10
    memory_sizes: tuple[int, ...] = (1_000_000,)
    memory_repeats: int = 3
    days: int = 30
    warm_up: bool = True

    @classmethod
    def quick(cls) -> Settings:
        return cls(accuracy_repeats=10, accuracy_slow_repeats=5, ingest_spans=5_000, ingest_repeats=2,
                   store_sizes=(200_000,), scale_repeats=3, report_repeats=1, dashboard_repeats=5,
                   paint_repeats=5, footprint_minutes=0.5, browser_repeats=5, memory_sizes=(200_000,),
                   memory_repeats=1)

    @classmethod
    def full(cls) -> Settings:
        return cls(store_sizes=(1_000_000, 10_000_000), scale_repeats=3, report_repeats=1,
                   dashboard_repeats=5, footprint_minutes=10.0,
                   memory_sizes=(1_000_000, 10_000_000, 100_000_000))

    @classmethod
    def tiny(cls) -> Settings:
        """For the smoke test: every benchmark in seconds (figures meaningless)."""
        return cls(accuracy_repeats=2, accuracy_slow_repeats=1, accuracy_delays_ms=(0, 10), ingest_spans=600,
                   ingest_repeats=1, store_sizes=(4_000,), scale_repeats=1, report_repeats=1,
                   dashboard_repeats=1, paint_repeats=1, footprint_minutes=0.05, days=3, browser_repeats=1,
                   memory_sizes=(4_000,), memory_repeats=1)


@contextmanager
def _store(size: int, settings: Settings, keep_dir: Path | None, progress: Progress) -> Iterator[Path]:
    if keep_dir is not None:
        path = keep_dir / f"spans-{size}-{settings.days}d"
        if (path / "store.json").exists():
            progress(f"generate: reusing {path}")
            yield path
            return
        # Generated beside it and renamed when whole: a stopped run leaves no half store to reuse.
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        generated = synth.generate_store(partial, size, days=settings.days, progress=progress)
        partial.rename(path)
        progress(f"generate: {generated.spans:,} spans in {generated.seconds:.1f} s, "
                 f"{generated.bytes / generated.spans:.1f} B/span, kept in {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-store-") as tmp:
        path = Path(tmp) / "store"
        generated = synth.generate_store(path, size, days=settings.days, progress=progress)
        progress(f"generate: {generated.spans:,} spans in {generated.seconds:.1f} s, "
                 f"{generated.bytes / generated.spans:.1f} B/span")
        yield path


def run_suite(settings: Settings, only: Sequence[str] = (), *, keep_dir: Path | None = None,
              progress: Progress = lambda _m: None,
              on_figures: Callable[[list[Figure]], None] = lambda _f: None) -> list[Figure]:
    """Run the selected benchmarks (all when ``only`` is empty) in the order of value.

    Args:
        settings: sizes and repeats.
        only: names from :data:`BENCHMARKS`.
        keep_dir: keep generated stores here and reuse them on the next run (None: temporary).
        progress: called with a short message as the suite goes.
        on_figures: called with each benchmark's figures as soon as it finishes.

    Raises:
        ValueError: an unknown benchmark name.
    """
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    selected = [name for name in BENCHMARKS if not only or name in only]
    figures: list[Figure] = []

    def add(new: list[Figure], began: float, name: str) -> None:
        progress(f"{name}: done in {time.perf_counter() - began:.0f} s")
        figures.extend(new)
        on_figures(new)

    if "accuracy" in selected:
        began = time.perf_counter()
        add(accuracy.run(repeats=settings.accuracy_repeats, slow_repeats=settings.accuracy_slow_repeats,
                         delays_ms=settings.accuracy_delays_ms, progress=progress), began, "accuracy")
    if "ingest" in selected:
        began = time.perf_counter()
        add(ingest.run(spans=settings.ingest_spans, repeats=settings.ingest_repeats, progress=progress),
            began, "ingest")
    if "observatory" in selected:
        began = time.perf_counter()
        add(observatory.run(spans=settings.ingest_spans, repeats=settings.ingest_repeats, progress=progress),
            began, "observatory")
    if {"scale", "report", "dashboard", "dashboard-http", "paint"} & set(selected):
        start = synth.MONTH_START
        end = start + dt.timedelta(days=settings.days)
        month_start, month_end = calendar_month(start.year, start.month, report.TIMEZONE)
        for size in settings.store_sizes:
            with _store(size, settings, keep_dir, progress) as path:
                if "scale" in selected:
                    began = time.perf_counter()
                    add(scale.run(path, start=start, end=end, spans=size, repeats=settings.scale_repeats,
                                  warm_up=settings.warm_up, progress=progress), began, "scale")
                if "report" in selected:
                    began = time.perf_counter()
                    add(report.run(path, month=MONTH, start=month_start, end=month_end, spans=size,
                                   repeats=settings.report_repeats, warm_up=settings.warm_up, progress=progress), began, "report")
                if "dashboard" in selected:
                    began = time.perf_counter()
                    add(callbacks.run(path, now=end - dt.timedelta(hours=1), month=MONTH, spans=size,
                                      repeats=settings.dashboard_repeats, warm_up=settings.warm_up,
                                      progress=progress), began, "dashboard")
                if "dashboard-http" in selected:
                    began = time.perf_counter()
                    add(dashboard_http.run(path, now=end - dt.timedelta(hours=1), month=MONTH, spans=size,
                                           repeats=settings.dashboard_repeats, progress=progress),
                        began, "dashboard-http")
                if "paint" in selected:
                    began = time.perf_counter()
                    add(paint.run(path, now=end - dt.timedelta(hours=1), month=MONTH, spans=size,
                                  repeats=settings.paint_repeats, progress=progress), began, "paint")
    if "memory" in selected:
        began = time.perf_counter()
        measured: list[Figure] = []
        for size in settings.memory_sizes:
            with _store(size, settings, keep_dir, progress) as path:
                measured += memory.run(path, spans=size, repeats=settings.memory_repeats, progress=progress)
        add(measured + memory.curve(measured), began, "memory")
    if "footprint" in selected:
        began = time.perf_counter()
        add(footprint.run(minutes=settings.footprint_minutes, progress=progress), began, "footprint")
    if "browser" in selected:
        began = time.perf_counter()
        add(browser.run(repeats=settings.browser_repeats, minutes=settings.footprint_minutes, progress=progress),
            began, "browser")
    return figures
