"""Pure figure functions: DataFrames in, Plotly figures out. Tested without a browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "PHASES",
    "PeriodBox",
    "ecdf_figure",
    "ecdf_histogram_figure",
    "empty_figure",
    "phases_figure",
    "sla_beside_experience_figure",
    "step_breakdown_figure",
    "step_duration_figure",
    "time_of_day_figure",
    "timeline_figure",
    "waterfall_figure",
]


@dataclass(frozen=True)
class PeriodBox:
    """A clinical period's cell range on the weekday x hour grid (hours may be fractional)."""

    weekday: int  # 0 = Monday
    start_hour: float
    end_hour: float


def empty_figure(message: str) -> go.Figure:
    """A blank chart that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=320, margin=dict(l=40, r=20, t=30, b=40))
    return fig


def step_duration_figure(steps: pd.DataFrame, *, timezone: str = "UTC") -> go.Figure:
    """Stacked bars of each run's step durations (seconds), one bar per run, in run order.

    ``steps`` is ``analysis`` steps frame (columns ``trace_id``, ``start``, ``step``,
    ``step_index``, ``duration_s``, ``workflow``, ``site``). The bar's height is the run's waiting
    time; think time is not part of it.
    """
    if steps.empty:
        return empty_figure("No runs in the store yet: start a probe (wardwatch probe -c FILE).")
    frame = steps.copy()
    run_start = frame.groupby("trace_id")["start"].transform("min")
    frame["run_start_local"] = run_start.dt.tz_convert(timezone)
    frame["run_label"] = (
        frame["run_start_local"].dt.strftime("%d %b %H:%M:%S") + " · " + frame["site"].astype(str)
    )
    order = frame.drop_duplicates("trace_id").sort_values("run_start_local")["run_label"].tolist()
    fig = go.Figure()
    step_order = frame.sort_values("step_index").drop_duplicates("step")["step"].tolist()
    for step in step_order:
        part = frame[frame["step"] == step]
        fig.add_bar(
            name=str(step),
            x=part["run_label"],
            y=part["duration_s"],
            hovertemplate="%{x}<br>" + str(step) + ": %{y:.3f} s<extra></extra>",
        )
    runs = frame["trace_id"].nunique()
    fig.update_layout(
        barmode="stack",
        title=f"Waiting time per run by step (n = {runs} runs)",
        yaxis_title="waiting time (s)",
        xaxis_title=f"run start ({timezone}) · site",
        xaxis=dict(categoryorder="array", categoryarray=order),
        legend_title="step",
        height=420,
        margin=dict(l=60, r=20, t=50, b=120),
    )
    return fig


WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def time_of_day_figure(
    cells: pd.DataFrame,
    *,
    value_label: str,
    periods: Sequence[PeriodBox] = (),
    min_samples: int = 5,
    zmax: float | None = None,
    reverse_scale: bool = False,
) -> go.Figure:
    """Weekday x hour heatmap in site-local time, with clinical periods outlined.

    ``cells`` has columns ``weekday`` (0 = Monday), ``hour`` (0-23), ``value`` and ``samples``;
    cells with fewer than ``min_samples`` runs are left blank and their hover text says why.
    """
    if cells.empty:
        return empty_figure("No runs match these filters.")
    grid = cells.pivot_table(index="weekday", columns="hour", values="value", aggfunc="first")
    counts = cells.pivot_table(index="weekday", columns="hour", values="samples", aggfunc="first")
    grid = grid.reindex(index=range(7), columns=range(24))
    counts = counts.reindex(index=range(7), columns=range(24)).fillna(0).astype(int)
    shown = grid.where(counts >= min_samples)
    hover = [
        [
            f"{WEEKDAY_NAMES[d]} {h:02d}:00-{h:02d}:59<br>"
            + (
                f"{value_label}: {grid.iat[d, h]:.2f}<br>n = {counts.iat[d, h]} runs"
                if counts.iat[d, h] >= min_samples
                else f"n = {counts.iat[d, h]} runs: too few to judge (< {min_samples})"
            )
            for h in range(24)
        ]
        for d in range(7)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=shown.to_numpy(),
            x=[f"{h:02d}" for h in range(24)],
            y=list(WEEKDAY_NAMES),
            text=hover,
            hoverinfo="text",
            colorscale="RdYlGn",
            reversescale=reverse_scale,
            zmin=0,
            zmax=zmax,
            colorbar=dict(title=value_label),
        )
    )
    for box in periods:
        fig.add_shape(
            type="rect",
            x0=box.start_hour - 0.5,
            x1=box.end_hour - 0.5,
            y0=box.weekday - 0.5,
            y1=box.weekday + 0.5,
            line=dict(color="black", width=2),
            fillcolor="rgba(0,0,0,0)",
        )
    total = int(counts.to_numpy().sum())
    fig.update_layout(
        title=f"{value_label} by weekday and hour (site-local time; n = {total} runs; outlined: clinical periods)",
        xaxis_title="hour of day (local)",
        yaxis=dict(autorange="reversed"),
        height=380,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


def ecdf_figure(waiting_s: pd.Series, *, thresholds_s: Mapping[str, float], title: str) -> go.Figure:
    """Cumulative share of runs by waiting time, with each threshold as a labelled vertical line."""
    values = np.sort(pd.to_numeric(waiting_s, errors="coerce").dropna().to_numpy())
    if values.size == 0:
        return empty_figure("No completed runs match these filters.")
    share = np.arange(1, values.size + 1) / values.size
    fig = go.Figure(
        go.Scatter(x=values, y=share, mode="lines", line_shape="hv", name="runs",
                   hovertemplate="%{y:.1%} of runs waited ≤ %{x:.2f} s<extra></extra>")
    )
    for label, threshold_s in thresholds_s.items():
        under = float((values <= threshold_s).mean())
        fig.add_vline(x=threshold_s, line_dash="dash", annotation_text=f"{label} {threshold_s:g} s: {under:.0%} under",
                      annotation_position="top left")
    fig.update_layout(
        title=f"{title} (n = {values.size} runs)",
        xaxis=dict(title="waiting time (s)", rangemode="tozero"),
        yaxis=dict(title="share of runs", tickformat=".0%", range=[0, 1.02]),
        height=380,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


def ecdf_histogram_figure(values_s: np.ndarray, counts: np.ndarray, *, thresholds: Mapping[str, tuple[float, float]],
                          relative_error: float, title: str) -> go.Figure:
    """Cumulative share of runs by waiting time from a histogram (each bucket's value within
    ``relative_error``), with each threshold a labelled vertical line.

    Args:
        values_s: each bucket's representative waiting time (s), ascending.
        counts: runs per bucket.
        thresholds: label -> (threshold in s, the exact share of these runs within it).
        relative_error: the histogram's bound, stated on the axis.
        title: the chart's title; the sample count is added.
    """
    total = int(np.sum(counts))
    if total == 0:
        return empty_figure("No completed runs match these filters.")
    share = np.cumsum(counts) / total
    fig = go.Figure(
        go.Scatter(x=values_s, y=share, mode="lines", line_shape="hv", name="runs",
                   hovertemplate="%{y:.1%} of runs waited ≤ %{x:.2f} s<extra></extra>")
    )
    for label, (threshold_s, under) in thresholds.items():
        fig.add_vline(x=threshold_s, line_dash="dash", annotation_text=f"{label} {threshold_s:g} s: {under:.0%} under",
                      annotation_position="top left")
    fig.update_layout(
        title=f"{title} (n = {total} runs)",
        xaxis=dict(title=f"waiting time (s, ±{relative_error:.0%})", rangemode="tozero"),
        yaxis=dict(title="share of runs", tickformat=".0%", range=[0, 1.02]),
        height=380,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


def step_breakdown_figure(steps: pd.DataFrame) -> go.Figure:
    """Per step: median and p90 duration (s), and its share of the waiting beyond the threshold.

    ``steps`` has columns ``step``, ``median_s``, ``p90_s``, ``samples``, ``excess_share``.
    """
    if steps.empty:
        return empty_figure("No steps match these filters.")
    fig = go.Figure()
    fig.add_bar(name="median", x=steps["step"], y=steps["median_s"],
                customdata=steps["samples"], hovertemplate="%{x}: median %{y:.3f} s (n = %{customdata})<extra></extra>")
    fig.add_bar(name="p90", x=steps["step"], y=steps["p90_s"],
                customdata=steps["samples"], hovertemplate="%{x}: p90 %{y:.3f} s (n = %{customdata})<extra></extra>")
    if "excess_share" in steps and steps["excess_share"].notna().any():
        fig.add_scatter(name="share of excess waiting", x=steps["step"], y=steps["excess_share"], yaxis="y2",
                        mode="markers+text", text=[f"{v:.0%}" if pd.notna(v) else "" for v in steps["excess_share"]],
                        textposition="top center", hovertemplate="%{x}: %{y:.0%} of the excess<extra></extra>")
    fig.update_layout(
        title=f"Step durations (n = {int(steps['samples'].max())} runs)",
        barmode="group",
        yaxis_title="duration (s)",
        yaxis2=dict(title="share of excess", overlaying="y", side="right", tickformat=".0%", range=[0, 1.1]),
        height=380,
        margin=dict(l=60, r=60, t=50, b=80),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def timeline_figure(buckets: pd.DataFrame, *, threshold_s: float | None, changes: pd.DataFrame | None = None,
                    timezone: str = "UTC") -> go.Figure:
    """Median and p90 waiting time per time bucket, with the threshold and change events marked.

    ``buckets`` has ``bucket`` (UTC), ``p50_s``, ``p90_s``, ``samples``; ``changes`` has ``time`` and
    ``title``.
    """
    if buckets.empty:
        return empty_figure("No runs match these filters.")
    x = buckets["bucket"].dt.tz_convert(timezone)
    fig = go.Figure()
    for column, label in (("p50_s", "median"), ("p90_s", "p90")):
        fig.add_scatter(x=x, y=buckets[column], name=label, mode="lines+markers", customdata=buckets["samples"],
                        hovertemplate="%{x}<br>" + label + " %{y:.2f} s (n = %{customdata})<extra></extra>")
    if threshold_s is not None:
        fig.add_hline(y=threshold_s, line_dash="dash", annotation_text=f"threshold {threshold_s:g} s")
    if changes is not None:
        for change in changes.itertuples():
            when = pd.Timestamp(change.time).tz_convert(timezone)
            fig.add_vline(x=when.to_pydatetime().timestamp() * 1000, line_color="purple", line_dash="dot",
                          annotation_text=str(change.title), annotation_position="top right")
    fig.update_layout(
        title=f"Waiting time over time (n = {int(buckets['samples'].sum())} runs)",
        xaxis_title=f"time ({timezone})",
        yaxis=dict(title="waiting time (s)", rangemode="tozero"),
        height=360,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


PHASES = ("dns_s", "connect_s", "tls_s", "ttfb_s", "transfer_s")
PHASE_NAMES = {"dns_s": "DNS", "connect_s": "connect", "tls_s": "TLS", "ttfb_s": "first byte",
               "transfer_s": "transfer"}


def phases_figure(phases: pd.DataFrame) -> go.Figure:
    """Mean time per request phase (s), stacked per site: network cost next to server time.

    ``phases`` has ``site`` (display names), ``samples`` and one column per phase in
    :data:`PHASES`; with ``extra_s`` (a site's time per request above the other sites' on the same
    steps, as :func:`analysis.rollup_queries.site_phases` gives it), each bar is labelled with it.
    """
    if phases.empty:
        return empty_figure("No requests match these filters.")
    fig = go.Figure()
    for phase in PHASES:
        name = PHASE_NAMES[phase]
        fig.add_bar(name=name, x=phases["site"], y=phases[phase], customdata=phases["samples"],
                    hovertemplate="%{x}: " + name + " %{y:.4f} s per request (n = %{customdata} requests)<extra></extra>")
    if "extra_s" in phases:
        totals = phases[list(PHASES)].sum(axis=1)
        labels = [("+" if extra >= 0 else "\u2212") + f"{abs(extra) * 1000:.0f} ms per request<br>against the other sites"
                  for extra in phases["extra_s"]]
        fig.add_scatter(x=phases["site"], y=totals, mode="text", text=labels, textposition="top center",
                        showlegend=False, hoverinfo="skip")
        fig.update_yaxes(range=[0, float(totals.max()) * 1.3])
    fig.update_layout(
        title=f"Mean time per request phase by site (n = {int(phases['samples'].sum())} requests)",
        barmode="stack",
        yaxis_title="mean time per request (s)",
        legend_title="phase",
        height=380,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


def waterfall_figure(spans: pd.DataFrame) -> go.Figure:
    """One run's spans as a waterfall: probe steps and requests, and the EPR's server spans below.

    ``spans`` has ``span_id``, ``parent_span_id``, ``name``, ``start`` (UTC), ``duration_s``,
    ``source`` ("probe" or "server") and ``depth``, ordered for display.
    """
    if spans.empty:
        return empty_figure("Choose a run in the list to see its waterfall.")
    t0 = spans["start"].min()
    offset_s = (spans["start"] - t0).dt.total_seconds()
    # Non-breaking spaces: Plotly trims ordinary leading spaces from tick labels.
    labels = ["\u00a0\u00a0\u00a0" * int(d) + str(n) for d, n in zip(spans["depth"], spans["name"], strict=True)]
    colours = spans["source"].map({"probe": "#1f77b4", "server": "#ff7f0e"}).fillna("#7f7f7f")
    fig = go.Figure(
        go.Bar(
            y=list(range(len(spans))),
            x=spans["duration_s"],
            base=offset_s,
            orientation="h",
            marker_color=colours,
            customdata=list(zip(labels, spans["source"], strict=True)),
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>starts at +%{base:.3f} s, lasts %{x:.3f} s<extra></extra>",
        )
    )
    fig.update_layout(
        title="Run waterfall (blue: probe, orange: EPR server spans)",
        xaxis_title="seconds since the run started",
        yaxis=dict(tickvals=list(range(len(spans))), ticktext=labels, autorange="reversed"),
        height=max(300, 24 * len(spans) + 100),
        margin=dict(l=260, r=20, t=50, b=50),
        showlegend=False,
    )
    return fig


def sla_beside_experience_figure(cells: pd.DataFrame) -> go.Figure:
    """The SLA's view beside the clinicians': one row per workflow at a site, the SLAs' figures and
    verdicts on the left, the share of runs within T per part of the day on the right, each cell
    green when it meets its target and red when not.

    ``cells`` has ``row`` (a workflow at a site), ``column`` (an SLA's name, or a part of the day),
    ``side`` (``sla`` or ``clinicians``), ``text`` (the cell's figure; ``<br>`` breaks lines),
    ``hover``, ``good`` (1 met, 0 not, NaN not judged) and optionally ``rank`` (the columns'
    order); rows are drawn in the order of the cells, columns by rank (else as they first appear).
    """
    if cells.empty:
        return empty_figure("No runs in this window.")
    rows = list(dict.fromkeys(cells["row"]))
    rank = cells["rank"] if "rank" in cells else pd.Series(range(len(cells)), index=cells.index)
    order = cells.assign(position=rank).groupby("column", sort=False)["position"].min()
    sides = dict(zip(cells["column"], cells["side"], strict=True))
    ranked = sorted(order.index, key=lambda c: (sides[c] != "sla", order[c]))
    sla_columns = [c for c in ranked if sides[c] == "sla"]
    experience_columns = [c for c in ranked if sides[c] != "sla"]
    columns = sla_columns + experience_columns
    at = {(r, c): i for i, (r, c) in enumerate(zip(cells["row"], cells["column"], strict=True))}

    def grid(field: str, blank: object) -> list[list[object]]:
        return [[cells[field].iat[at[(r, c)]] if (r, c) in at else blank for c in columns] for r in rows]

    def wrapped(label: str, width: int = 16) -> str:
        words, lines = label.split(), [""]
        for word in words:
            lines[-1:] = [f"{lines[-1]} {word}".strip()] if len(lines[-1]) + len(word) < width else [lines[-1], word]
        return "<br>".join(lines)

    x = [wrapped(c) for c in columns]
    fig = go.Figure(go.Heatmap(
        z=grid("good", None), x=x, y=rows, text=grid("text", ""), texttemplate="%{text}",
        customdata=grid("hover", ""), hovertemplate="%{customdata}<extra></extra>", textfont=dict(size=12),
        colorscale=[[0, "#f6c6c2"], [0.5, "#f6c6c2"], [0.5, "#c8e6c9"], [1, "#c8e6c9"]], zmin=0, zmax=1,
        showscale=False, xgap=3, ygap=3,
    ))
    if sla_columns and experience_columns:
        fig.add_vline(x=len(sla_columns) - 0.5, line_color="#333", line_width=3)
    for label, first, count in (("The SLA's view: its own formula over this window, all sites pooled", 0,
                                 len(sla_columns)),
                                ("The clinicians' view: runs within the workflow's T at this site", len(sla_columns),
                                 len(experience_columns))):
        if count:
            fig.add_annotation(x=first + (count - 1) / 2, y=1.0, yref="paper", yshift=56, text=f"<b>{label}</b>",
                               showarrow=False, yanchor="bottom", font=dict(size=13))
    fig.update_layout(
        xaxis=dict(side="top", tickfont=dict(size=11), tickangle=0, fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, automargin=True),
        # Rows share the height equally: each as tall as the tallest cell (16 px a line).
        height=150 + 17 * len(rows) * max(3, 1 + max(str(t).count("<br>") for t in cells["text"])),
        margin=dict(l=10, r=10, t=100, b=10),
        font=dict(size=12),
        plot_bgcolor="white",
    )
    return fig
