"""What the pages read: thin views over the analysis frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import analysis
from analysis.store import StoreError

__all__ = ["RecentRuns", "load_recent_runs"]


@dataclass(frozen=True)
class RecentRuns:
    runs: pd.DataFrame  # analysis runs frame, newest first
    chart_steps: pd.DataFrame  # analysis steps frame of the newest runs
    simulated: bool
    message: str = ""  # why there is nothing to show, when there is nothing

    def table_rows(self, timezone: str) -> list[dict]:
        if self.runs.empty:
            return []
        frame = self.runs.copy()
        frame["start_local"] = frame["start"].dt.tz_convert(timezone).dt.strftime("%Y-%m-%d %H:%M:%S")
        frame["error_type"] = frame["error_type"].fillna("")
        keep = ["trace_id", "start_local", "workflow", "site", "status", "error_type", "waiting_s", "wall_s"]
        frame = frame[keep].astype(object).where(frame[keep].notna(), None)
        return frame.to_dict("records")


def load_recent_runs(data_dir: Path, *, limit: int, chart_runs: int) -> RecentRuns:
    """The newest ``limit`` runs, and the steps of the newest ``chart_runs`` of them."""
    try:
        store = analysis.open_store(data_dir)
    except StoreError as exc:
        empty_runs = pd.DataFrame(columns=["trace_id", "start", "status"])
        return RecentRuns(empty_runs, pd.DataFrame(), simulated=False, message=str(exc))
    runs = store.runs().sort_values("start", ascending=False).head(limit)
    if runs.empty:
        message = f"No runs in {data_dir} yet: start a probe (wardwatch probe -c FILE) and this page fills in."
        return RecentRuns(runs, pd.DataFrame(), simulated=False, message=message)
    newest = runs.head(chart_runs)
    steps = store.steps(start=newest["start"].min())
    steps = steps[steps["trace_id"].isin(newest["trace_id"])]
    return RecentRuns(runs, steps, simulated=bool(runs["simulated"].any()))
