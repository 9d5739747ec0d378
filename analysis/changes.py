"""Change impact: workflow waiting times before and after a change to the EPR.

For each affected workflow and site, the runs in ``[at - window, at)`` are compared with those in
``[at, at + window)`` (optionally only inside one clinical period): medians and p90s (pooled,
each with its sample count), the ratio of medians, Cliff's delta and the Mann-Whitney p-value
(``analysis.ranktest``). The step blamed is the one whose own time grew most against its own
baseline (its median before the change), with its share of the growth summed over the steps that
grew (a reader says "most" only of a share above half), and the layer of that step that grew:
``network`` (DNS, connect, TLS), ``server`` (time to first byte) or ``transfer``. A step that is
always slow but did not change is never blamed. Whole weeks on both sides (the default 7 days) compare like
with like: the same mix of weekdays and hours.

Change events come from the configuration (``changes``: :class:`analysis.config.ChangeEventConfig`),
from a CSV file (:func:`load_changes_csv`) or from the command line.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.calendar import ClinicalCalendar
from analysis.config import ChangeEventConfig
from analysis.percentiles import percentile
from analysis.ranktest import cliffs_delta_magnitude, mann_whitney_u
from analysis.store import FrameCache, Store

__all__ = ["IMPACT_COLUMNS", "change_impact", "load_changes_csv"]

IMPACT_COLUMNS = (
    "change", "workflow", "site", "before_runs", "after_runs", "before_median_s",
    "after_median_s", "before_p90_s", "after_p90_s", "median_ratio", "cliffs_delta", "magnitude",
    "p_value", "significant", "dominant_step", "dominant_step_delta_s", "dominant_step_share",
    "dominant_layer", "dominant_layer_delta_s",
)
_LAYERS = {"network": ("dns_s", "connect_s", "tls_s"), "server": ("ttfb_s",),
           "transfer": ("transfer_s",)}


def load_changes_csv(path: Path | str) -> list[ChangeEventConfig]:
    """Change events from a CSV file: columns ``at, title`` and optional ``workflows`` (separated
    by ``;``) and ``description``; ``at`` is ISO 8601 with an offset.

    Raises:
        ValueError: a missing column or an invalid row (the message names the line).
        OSError: the file cannot be read.
    """
    path = Path(path)
    out: list[ChangeEventConfig] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"at", "title"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            workflows = [w.strip() for w in (row.get("workflows") or "").split(";") if w.strip()]
            try:
                out.append(ChangeEventConfig(
                    at=dt.datetime.fromisoformat(row["at"].strip().replace("Z", "+00:00")),
                    title=row["title"], workflows=workflows,
                    description=row.get("description") or "",
                ))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
    return out


def _step_shift(medians: pd.DataFrame) -> tuple[str | None, float, float, str | None, float]:
    """The step whose own median duration rose most, its rise in seconds, its share of all
    rises, and the layer of that step that rose most with that layer's rise.

    ``medians``: one scope's rows of :func:`_step_medians`.
    """
    nothing = (None, float("nan"), float("nan"), None, float("nan"))
    if medians["after"].all() or not medians["after"].any():  # a side without steps
        return nothing
    known = medians[medians["step"].notna()]
    columns = ["median_s", *(f"{c}_median" for cols in _LAYERS.values() for c in cols)]

    def side(after: bool) -> pd.DataFrame:
        rows = known[known["after"] == after]
        return rows.set_index(rows["step"].astype(str))[columns].astype("float64").sort_index()

    delta = (side(True) - side(False)).dropna(subset=["median_s"])
    rises = delta["median_s"][delta["median_s"] > 0]
    if rises.empty:
        return None, 0.0, float("nan"), None, float("nan")
    step = str(rises.idxmax())
    layers = {name: float(delta.loc[step, [f"{c}_median" for c in cols]].sum(min_count=1))
              for name, cols in _LAYERS.items()}
    layers = {k: v for k, v in layers.items() if not np.isnan(v)}
    layer = max(layers, key=lambda k: layers[k]) if layers else None
    if layer is not None and layers[layer] <= 0:
        layer = None
    return (step, float(rises.max()), float(rises.max() / rises.sum()), layer,
            layers[layer] if layer is not None else float("nan"))


def _step_medians(store: Store | FrameCache, runs: pd.DataFrame, at: dt.datetime,
                  window: dt.timedelta, workflows: list[str] | None) -> pd.DataFrame:
    """Per workflow, site, side of the change (by the step's own start) and step, the median
    duration of the steps of ``runs`` and the medians of its phases, computed in DuckDB:
    ``workflow, site, after, step, median_s, dns_s_median, ..., transfer_s_median`` (a null
    ``step`` row stands for steps without a name; a phase that did not occur counts 0 s in a
    step that has phase timings)."""
    compared = pa.Table.from_pandas(pd.DataFrame({"trace_id": runs["trace_id"].astype(str)}),
                                    preserve_index=False)
    params: list[object] = [at, at - window, at + window]
    wanted = ""
    if workflows:
        wanted = " AND list_contains(?, workflow)"
        params.append(workflows)
    phases = ", ".join(
        f"median(CASE WHEN ttfb_s IS NOT NULL THEN coalesce({c}, 0) END) AS {c}_median"
        for cols in _LAYERS.values() for c in cols)
    query = f"""
SELECT workflow, site, start >= ? AS after, step, median(duration_s) AS median_s, {phases}
FROM steps
WHERE start >= ? AND start < ?{wanted} AND trace_id IN (SELECT trace_id FROM compared)
GROUP BY ALL"""
    return store.sql(query, params, tables={"compared": compared})


def change_impact(
    store: Store | FrameCache,
    change: ChangeEventConfig,
    window: dt.timedelta = dt.timedelta(days=7),
    calendar: ClinicalCalendar | None = None,
    period: str | None = None,
    alpha: float = 0.01,
) -> pd.DataFrame:
    """Before/after comparison of waiting times per workflow x site around ``change``.

    Args:
        store: the store.
        change: the change event; its workflows (all when empty) are compared.
        window: the length of each side.
        calendar: the clinical calendar, for ``period``.
        period: only runs inside this clinical period.
        alpha: the p-value under which a difference is marked ``significant``.

    Returns:
        One row per workflow x site with runs on both sides, columns :data:`IMPACT_COLUMNS`.
        Only successful runs are compared (failures are availability, not latency).
    """
    at = change.at.astimezone(dt.UTC)
    runs = store.runs(at - window, at + window, workflow=change.workflows or None)
    runs = runs[runs["status"].astype(str) == "ok"]
    if period is not None:
        if calendar is None:
            raise ValueError("a period needs a calendar")
        runs = runs[calendar.mask(runs, period)]
    medians = _step_medians(store, runs, at, window, list(change.workflows) or None)
    after_mask = runs["start"] >= pd.Timestamp(at)
    rows = []
    for (workflow, site), group in runs.groupby(["workflow", "site"], sort=True):
        before = group[~after_mask.loc[group.index]]["waiting_s"].astype("float64").dropna()
        after = group[after_mask.loc[group.index]]["waiting_s"].astype("float64").dropna()
        if before.empty or after.empty:
            continue
        test = mann_whitney_u(after.to_numpy(), before.to_numpy())
        step, step_delta, share, layer, layer_delta = _step_shift(
            medians[(medians["workflow"] == workflow) & (medians["site"] == site)])
        b50, a50 = percentile(before, 0.5).value, percentile(after, 0.5).value
        rows.append({
            "change": change.title, "workflow": workflow, "site": site,
            "before_runs": len(before), "after_runs": len(after),
            "before_median_s": b50, "after_median_s": a50,
            "before_p90_s": percentile(before, 0.9).value,
            "after_p90_s": percentile(after, 0.9).value,
            "median_ratio": a50 / b50 if b50 > 0 else np.nan,
            "cliffs_delta": test.cliffs_delta, "magnitude": cliffs_delta_magnitude(test.cliffs_delta),
            "p_value": test.p_value, "significant": bool(test.p_value < alpha),
            "dominant_step": step, "dominant_step_delta_s": step_delta,
            "dominant_step_share": share, "dominant_layer": layer,
            "dominant_layer_delta_s": layer_delta,
        })
    return pd.DataFrame(rows, columns=list(IMPACT_COLUMNS))
