"""Analysis at scale: Wardwatch's analysis functions beside one hand-written DuckDB query over the
same Parquet files computing the same numbers, and beside a pandas groupby on the runs frame.

Every comparison runs its contenders interleaved in one process on one store (the machine is
shared and noisy), reports the median of each and the ratio ours / hand-written, and checks that
the numbers agree. "Ours" opens the store as the dashboard and the command line do (a new
``analysis.open_store`` per call, which lists the segments and makes the views); the hand-written
query opens its own DuckDB connection per call too. The pandas baseline starts from a runs (or
steps) frame already in memory, so it measures the groupby alone.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

import analysis
from analysis import RunFilter
from analysis.query import figures as query
from analysis.query.sources import Definitions
from benchmarks.results import Figure, Progress, median, time_calls
from store import schema as s

__all__ = ["THRESHOLDS_S", "hand_written", "promoted_copy", "promoted_query", "run"]

NAME = "scale"
THRESHOLDS_S = {"open-patient-record": 3.0, "chart-observations": 2.0}
DEFAULT_THRESHOLD_S = 3.0
STEP_THRESHOLD_S = 3.0
TIMEZONE = "Europe/London"


def _spans(path: Path) -> str:
    glob = str(path / "spans" / "*" / "*.parquet").replace("'", "''")
    return f"read_parquet('{glob}')"


def _attr(key: str) -> str:
    return f"\"{s.SPAN_ATTRIBUTES}\"['{key}']"


def _threshold_case(column: str) -> str:
    cases = " ".join(f"WHEN '{w}' THEN {t}" for w, t in THRESHOLDS_S.items())
    return f"(CASE {column} {cases} ELSE {DEFAULT_THRESHOLD_S} END)"


def _runs_cte(path: Path) -> str:
    return f"""runs AS (
        SELECT "{s.TRACE_ID}" AS trace_id, "{s.TIMESTAMP}" AS start, "{s.WORKFLOW}" AS workflow,
               "{s.SITE}" AS site, {_attr(s.ATTR_RUN_STATUS)} AS status,
               TRY_CAST({_attr(s.ATTR_RUN_WAITING_S)} AS DOUBLE) AS waiting_s
        FROM {_spans(path)}
        WHERE "{s.SPAN_TYPE}" = 'run' AND "{s.TIMESTAMP}" >= $start AND "{s.TIMESTAMP}" < $end)"""


def hand_written(path: Path) -> dict[str, str]:
    """The hand-written queries, by the name of the function each matches."""
    t = _threshold_case("workflow")
    return {
        "runs": f"""
            SELECT "{s.TRACE_ID}" AS trace_id, "{s.TIMESTAMP}" AS start, "{s.WORKFLOW}" AS workflow,
                   "{s.SITE}" AS site, {_attr(s.ATTR_RUN_STATUS)} AS status,
                   NULLIF({_attr(s.ERROR_TYPE)}, '') AS error_type,
                   TRY_CAST({_attr(s.ATTR_RUN_WAITING_S)} AS DOUBLE) AS waiting_s,
                   "{s.DURATION}" / 1e9 AS wall_s,
                   TRY_CAST({_attr(s.ATTR_SLOT)} AS TIMESTAMPTZ) AS slot,
                   coalesce("{s.RESOURCE_ATTRIBUTES}"['{s.ATTR_SIMULATED}'] = 'true', false) AS simulated
            FROM {_spans(path)}
            WHERE "{s.SPAN_TYPE}" = 'run' AND "{s.TIMESTAMP}" >= $start AND "{s.TIMESTAMP}" < $end
            ORDER BY start, trace_id""",
        "workflow_site_summary": f"""
            WITH {_runs_cte(path)}
            SELECT workflow, site, count(*) AS samples,
                   count(*) FILTER (WHERE status <> 'ok') AS not_ok,
                   count(*) FILTER (WHERE status = 'ok' AND waiting_s <= {t}) / count(*) AS share_under,
                   quantile_cont(waiting_s, 0.5) FILTER (WHERE status = 'ok') AS p50_s,
                   quantile_cont(waiting_s, 0.9) FILTER (WHERE status = 'ok') AS p90_s
            FROM runs GROUP BY workflow, site ORDER BY workflow, site""",
        "time_of_day": f"""
            WITH {_runs_cte(path)}, local AS (
                SELECT timezone('{TIMEZONE}', start) AS local_start, status, waiting_s FROM runs)
            SELECT isodow(local_start) - 1 AS weekday, hour(local_start) AS hour, count(*) AS samples,
                   avg(CASE WHEN status = 'ok' AND waiting_s <= {DEFAULT_THRESHOLD_S} THEN 1.0 ELSE 0.0 END)
                       AS share_under,
                   quantile_cont(waiting_s, 0.9) FILTER (WHERE status = 'ok') AS p90_s
            FROM local GROUP BY ALL ORDER BY weekday, hour""",
        "step_summary": f"""
            WITH {_runs_cte(path)},
            s AS (
                SELECT st."{s.STEP}" AS step, TRY_CAST(st.{_attr(s.ATTR_STEP_INDEX)} AS INTEGER) AS step_index,
                       st."{s.DURATION}" / 1e9 AS duration_s, r.waiting_s
                FROM {_spans(path)} AS st JOIN runs AS r ON r.trace_id = st."{s.TRACE_ID}"
                WHERE st."{s.SPAN_TYPE}" = 'step'),
            typical AS (SELECT step, median(duration_s) AS median_s FROM s GROUP BY step),
            excess AS (
                SELECT s.step, sum(greatest(s.duration_s - t.median_s, 0)) AS excess_s
                FROM s JOIN typical AS t USING (step) WHERE s.waiting_s > {STEP_THRESHOLD_S} GROUP BY s.step)
            SELECT s.step, min(s.step_index) AS step_index, count(*) AS samples,
                   quantile_cont(s.duration_s, 0.5) AS median_s, quantile_cont(s.duration_s, 0.9) AS p90_s,
                   avg(s.duration_s) AS mean_s,
                   any_value(e.excess_s) / sum(any_value(e.excess_s)) OVER () AS excess_share
            FROM s LEFT JOIN excess AS e USING (step) GROUP BY s.step ORDER BY step_index, s.step""",
    }


def _hand(query: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con.execute(query, {"start": start, "end": end}).df()
    finally:
        con.close()


def promoted_copy(path: Path, directory: Path) -> Path:
    """A what-if copy of the store's spans, outside the store: the same columns plus the run's
    status and waiting time as typed columns (``RunStatus``, ``WaitingS``), as a store that
    promoted them would hold. Returns the Parquet file."""
    target = directory / "promoted.parquet"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"""
            COPY (SELECT *, {_attr(s.ATTR_RUN_STATUS)} AS RunStatus,
                         TRY_CAST({_attr(s.ATTR_RUN_WAITING_S)} AS DOUBLE) AS WaitingS
                  FROM {_spans(path)} ORDER BY "{s.TIMESTAMP}")
            TO '{str(target).replace("'", "''")}' (FORMAT parquet, COMPRESSION zstd)""")
    finally:
        con.close()
    return target


def promoted_query(file: Path) -> str:
    """``workflow_site_summary``'s numbers from :func:`promoted_copy`'s typed columns."""
    t = _threshold_case("workflow")
    source = f"read_parquet('{str(file).replace(chr(39), chr(39) * 2)}')"
    return f"""
        WITH runs AS (
            SELECT "{s.WORKFLOW}" AS workflow, "{s.SITE}" AS site, RunStatus AS status, WaitingS AS waiting_s
            FROM {source}
            WHERE "{s.SPAN_TYPE}" = 'run' AND "{s.TIMESTAMP}" >= $start AND "{s.TIMESTAMP}" < $end)
        SELECT workflow, site, count(*) AS samples,
               count(*) FILTER (WHERE status <> 'ok') AS not_ok,
               count(*) FILTER (WHERE status = 'ok' AND waiting_s <= {t}) / count(*) AS share_under,
               quantile_cont(waiting_s, 0.5) FILTER (WHERE status = 'ok') AS p50_s,
               quantile_cont(waiting_s, 0.9) FILTER (WHERE status = 'ok') AS p90_s
        FROM runs GROUP BY workflow, site ORDER BY workflow, site"""


def _pandas_workflow_site(runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs["status"] == "ok"
    threshold = runs["workflow"].map(THRESHOLDS_S).fillna(DEFAULT_THRESHOLD_S)
    frame = runs.assign(ok=ok, under=ok & (runs["waiting_s"] <= threshold),
                        ok_wait=runs["waiting_s"].where(ok))
    grouped = frame.groupby(["workflow", "site"], sort=True)
    out = grouped.agg(samples=("ok", "size"), ok_runs=("ok", "sum"), under=("under", "sum"),
                      p50_s=("ok_wait", lambda x: x.quantile(0.5)), p90_s=("ok_wait", lambda x: x.quantile(0.9)))
    out["not_ok"] = out["samples"] - out["ok_runs"]
    out["share_under"] = out["under"] / out["samples"]
    return out.reset_index()


def _pandas_time_of_day(runs: pd.DataFrame) -> pd.DataFrame:
    local = runs["start"].dt.tz_convert(TIMEZONE)
    ok = runs["status"] == "ok"
    frame = pd.DataFrame({"weekday": local.dt.weekday, "hour": local.dt.hour,
                          "under": (ok & (runs["waiting_s"] <= DEFAULT_THRESHOLD_S)).astype(float),
                          "ok_wait": runs["waiting_s"].where(ok)})
    return frame.groupby(["weekday", "hour"], sort=True).agg(
        samples=("under", "size"), share_under=("under", "mean"),
        p90_s=("ok_wait", lambda x: x.quantile(0.9))).reset_index()


def _pandas_step_summary(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    frame = steps[["trace_id", "step", "step_index", "duration_s"]].merge(
        runs[["trace_id", "waiting_s"]], on="trace_id")
    grouped = frame.groupby("step")["duration_s"]
    out = grouped.agg(samples="size", median_s="median", p90_s=lambda x: x.quantile(0.9), mean_s="mean")
    out["step_index"] = frame.groupby("step")["step_index"].min()
    typical = frame["step"].map(out["median_s"])
    slow = frame["waiting_s"] > STEP_THRESHOLD_S
    excess = (frame["duration_s"] - typical).clip(lower=0)[slow].groupby(frame["step"][slow]).sum()
    out["excess_share"] = excess / excess.sum()
    return out.reset_index().sort_values(["step_index", "step"]).reset_index(drop=True)


def _max_difference(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], columns: list[str]) -> float:
    """The largest absolute difference between matching cells (inf when the rows differ)."""
    left = a.set_index(keys).sort_index()
    right = b.set_index(keys).sort_index()
    if list(left.index) != list(right.index):
        return math.inf
    worst = 0.0
    for column in columns:
        x = pd.to_numeric(left[column], errors="coerce").astype("float64").to_numpy()
        y = pd.to_numeric(right[column], errors="coerce").astype("float64").to_numpy()
        both = ~(np.isnan(x) & np.isnan(y))
        if both.any():
            worst = max(worst, float(np.nanmax(np.abs(x[both] - y[both]))) if not np.isnan(x[both] - y[both]).all() else math.inf)
    return worst


@dataclass(frozen=True)
class _Comparison:
    name: str
    ours: Callable[[], pd.DataFrame]
    hand: Callable[[], pd.DataFrame]
    pandas: Callable[[], pd.DataFrame] | None
    keys: list[str]
    columns: list[str]
    target: str = ""
    target_ratio: float | None = None


def run(path: Path, *, start: dt.datetime, end: dt.datetime, spans: int, repeats: int = 5,
        warm_up: bool = True, progress: Progress = lambda _m: None) -> list[Figure]:
    """Compare each analysis function with its hand-written query and a pandas baseline.

    Args:
        path: a store (e.g. made by :func:`benchmarks.synth.generate_store`).
        start: the window's start (UTC); end: its end, exclusive.
        spans: how many spans the store holds (for the figures' labels).
        repeats: interleaved rounds per comparison.
        warm_up: make one untimed call of each contender first.
        progress: called with a short message as the benchmark goes.
    """
    queries = hand_written(path)
    window = RunFilter(start=start, end=end)
    size = f"{spans / 1e6:g}M spans"

    def with_store(function: Callable[[analysis.Store], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with analysis.open_store(path) as store:
                return function(store)
        return call

    progress(f"scale: loading the runs and steps frames of {size} for the pandas baselines")
    with analysis.open_store(path) as store:
        runs_frame = store.runs(start, end)
        steps_frame = store.steps(start, end)
    comparisons = [
        _Comparison("open_store().runs() over the month",
                    with_store(lambda st: st.runs(start, end)),
                    lambda: _hand(queries["runs"], start, end), None,
                    ["trace_id"], ["waiting_s", "wall_s"]),
        _Comparison("workflow_site_summary",
                    with_store(lambda st: query.board(query.ask(
                        st, window, Definitions.of(THRESHOLDS_S, DEFAULT_THRESHOLD_S), exact=True))),
                    lambda: _hand(queries["workflow_site_summary"], start, end),
                    lambda: _pandas_workflow_site(runs_frame),
                    ["workflow", "site"], ["samples", "not_ok", "share_under", "p50_s", "p90_s"]),
        _Comparison("time_of_day",
                    with_store(lambda st: query.time_of_day(query.ask(
                        st, window, Definitions.of({}, DEFAULT_THRESHOLD_S), exact=True), timezone=TIMEZONE)),
                    lambda: _hand(queries["time_of_day"], start, end),
                    lambda: _pandas_time_of_day(runs_frame),
                    ["weekday", "hour"], ["samples", "share_under", "p90_s"]),
        _Comparison("step_summary",
                    with_store(lambda st: query.steps(query.ask(
                        st, window, Definitions.of({}, STEP_THRESHOLD_S), exact=True))),
                    lambda: _hand(queries["step_summary"], start, end),
                    lambda: _pandas_step_summary(runs_frame, steps_frame),
                    ["step"], ["samples", "median_s", "p90_s", "mean_s", "excess_share"]),
    ]
    figures: list[Figure] = []
    for c in comparisons:
        progress(f"scale: {c.name} at {size}, {repeats} interleaved rounds")
        functions = [c.ours, c.hand] + ([c.pandas] if c.pandas else [])
        times, results = time_calls(functions, repeats, warm_up=warm_up)
        ours_s, hand_s = median(times[0]), median(times[1])
        diff = _max_difference(results[0], results[1], c.keys, c.columns)
        agree = f"max |ours - hand-written| over {', '.join(c.columns)}: {diff:.3g}"
        figures.append(Figure(NAME, f"{c.name} @ {size}: ours", ours_s * 1000, "ms", repeats, note=agree))
        figures.append(Figure(NAME, f"{c.name} @ {size}: hand-written DuckDB", hand_s * 1000, "ms", repeats))
        ratio = ours_s / hand_s
        figures.append(Figure(NAME, f"{c.name} @ {size}: ours / hand-written", ratio, "x", repeats,
                              target="<= 3x", met=ratio <= 3.0))
        if c.pandas:
            pandas_s = median(times[2])
            pdiff = _max_difference(results[0], results[2], c.keys, c.columns)
            figures.append(Figure(NAME, f"{c.name} @ {size}: pandas groupby on the frame in memory",
                                  pandas_s * 1000, "ms", repeats,
                                  note=f"frame already loaded; max |ours - pandas|: {pdiff:.3g}"))
            figures.append(Figure(NAME, f"{c.name} @ {size}: ours / pandas", ours_s / pandas_s, "x", repeats))
    figures += _what_if(path, start, end, size, repeats, warm_up, queries["workflow_site_summary"], progress)
    return figures


def _what_if(path: Path, start: dt.datetime, end: dt.datetime, size: str, repeats: int, warm_up: bool,
             hand_query: str, progress: Progress) -> list[Figure]:
    """The hand-written workflow x site query over the store's map attributes beside the same
    query over typed columns: what promoting run status and waiting time would save."""
    progress(f"scale: what-if typed columns at {size}: writing a promoted copy")
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
        file = promoted_copy(path, Path(tmp))
        typed = promoted_query(file)
        times, results = time_calls([lambda: _hand(hand_query, start, end), lambda: _hand(typed, start, end)],
                                    repeats, warm_up=warm_up)
    maps_s, typed_s = median(times[0]), median(times[1])
    diff = _max_difference(results[0], results[1], ["workflow", "site"],
                           ["samples", "not_ok", "share_under", "p50_s", "p90_s"])
    name = "what-if: workflow x site query"
    return [
        Figure(NAME, f"{name} over typed RunStatus/WaitingS columns @ {size}", typed_s * 1000, "ms", repeats,
               note=f"max |maps - typed|: {diff:.3g}"),
        Figure(NAME, f"{name}, map attributes / typed columns @ {size}", maps_s / typed_s, "x", repeats,
               note="the time spent decoding SpanAttributes maps"),
    ]
