"""Pure figure functions: DataFrames in, Plotly figures out. Tested without a browser."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.names import step_title

__all__ = [
    "PHASES",
    "PeriodBox",
    "count_text",
    "duration_text",
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


def count_text(n: object) -> str:
    """A count as every page writes it: 12,345 (a comma between thousands), 980, 1. Plotly's hover
    templates write theirs with ``%{customdata:,}``, the same."""
    return f"{int(n):,}"


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


def step_duration_figure(steps: pd.DataFrame, *, timezone: str = "UTC",
                         site_title: Callable[[str], str] = str,
                         workflow_title: Callable[[str], str] = str) -> go.Figure:
    """Stacked bars of each run's step durations (seconds), one bar per run, in run order.

    ``steps`` is ``analysis`` steps frame (columns ``trace_id``, ``start``, ``step``,
    ``step_index``, ``duration_s``, ``workflow``, ``site``). The bar's height is the run's waiting
    time; think time is not part of it. Each bar is labelled with its run's start and its site's
    display name (``site_title`` of the site's id), and its workflow's (``workflow_title``) when
    the runs are of several workflows; two runs that would read alike are numbered.
    """
    if steps.empty:
        return empty_figure("No runs in the store yet: start a probe (wardwatch probe -c FILE).")
    frame = steps.copy()
    run_start = frame.groupby("trace_id")["start"].transform("min")
    frame["run_start_local"] = run_start.dt.tz_convert(timezone)
    frame["run_label"] = (
        frame["run_start_local"].dt.strftime("%d %b %H:%M:%S") + " · " + frame["site"].map(site_title)
    )
    if "workflow" in frame and frame["workflow"].nunique() > 1:
        frame["run_label"] += " · " + frame["workflow"].map(workflow_title)
    # Runs that would read alike (the same second, site and workflow) stay separate bars.
    firsts = frame.drop_duplicates("trace_id")
    repeat = firsts.groupby("run_label").cumcount()
    renamed = dict(zip(firsts["trace_id"], firsts["run_label"].where(repeat == 0, firsts["run_label"] + " (" + (repeat + 1).astype(str) + ")"), strict=True))
    frame["run_label"] = frame["trace_id"].map(renamed)
    order = frame.drop_duplicates("trace_id").sort_values("run_start_local")["run_label"].tolist()
    fig = go.Figure()
    step_order = frame.sort_values("step_index").drop_duplicates("step")["step"].tolist()
    for step in step_order:
        part = frame[frame["step"] == step]
        fig.add_bar(
            name=step_title(str(step)),
            x=part["run_label"],
            y=part["duration_s"],
            hovertemplate="%{x}<br>" + step_title(str(step)) + ": %{y:.3f} s<extra></extra>",
        )
    runs = frame["trace_id"].nunique()
    fig.update_layout(
        barmode="stack",
        title=f"Waiting time per run by step (n = {count_text(runs)} run{'' if runs == 1 else 's'})",
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
                f"{value_label}: {grid.iat[d, h]:.2f}<br>n = {count_text(counts.iat[d, h])} runs"
                if counts.iat[d, h] >= min_samples
                else f"n = {count_text(counts.iat[d, h])} runs: too few to judge (< {min_samples})"
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
        title=f"{value_label} by weekday and hour (site-local time; n = {count_text(total)} runs; outlined: clinical periods)",
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
        title=f"{title} (n = {count_text(values.size)} runs)",
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
        title=f"{title} (n = {count_text(total)} runs)",
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
    steps = steps.assign(step=steps["step"].astype(str).map(step_title))
    fig.add_bar(name="median", x=steps["step"], y=steps["median_s"],
                customdata=steps["samples"], hovertemplate="%{x}: median %{y:.3f} s (n = %{customdata:,})<extra></extra>")
    fig.add_bar(name="p90", x=steps["step"], y=steps["p90_s"],
                customdata=steps["samples"], hovertemplate="%{x}: p90 %{y:.3f} s (n = %{customdata:,})<extra></extra>")
    if "excess_share" in steps and steps["excess_share"].notna().any():
        fig.add_scatter(name="share of excess waiting", x=steps["step"], y=steps["excess_share"], yaxis="y2",
                        mode="markers+text", text=[f"{v:.0%}" if pd.notna(v) else "" for v in steps["excess_share"]],
                        textposition="top center", hovertemplate="%{x}: %{y:.0%} of the excess<extra></extra>")
    fig.update_layout(
        title=f"Step durations (n = {count_text(steps['samples'].max())} runs)",
        barmode="group",
        yaxis_title="duration (s)",
        # quarters of its own, not ticks placed at the duration axis's (0%, 19%, 39%, ...)
        yaxis2=dict(title="share of excess", overlaying="y", side="right", tickformat=".0%", range=[0, 1.1],
                    tickmode="array", tickvals=[0, 0.25, 0.5, 0.75, 1], showgrid=False),
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
                        hovertemplate="%{x}<br>" + label + " %{y:.2f} s (n = %{customdata:,})<extra></extra>")
    if threshold_s is not None:
        fig.add_hline(y=threshold_s, line_dash="dash", annotation_text=f"threshold {threshold_s:g} s")
    if changes is not None:
        for change in changes.itertuples():
            when = pd.Timestamp(change.time).tz_convert(timezone)
            fig.add_vline(x=when.to_pydatetime().timestamp() * 1000, line_color="purple", line_dash="dot",
                          annotation_text=str(change.title), annotation_position="top right")
    fig.update_layout(
        title=f"Waiting time over time (n = {count_text(buckets['samples'].sum())} runs)",
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
    steps, as :func:`analysis.query.figures.site_phases` gives it), each bar is labelled with it.
    """
    if phases.empty:
        return empty_figure("No requests match these filters.")
    fig = go.Figure()
    for phase in PHASES:
        name = PHASE_NAMES[phase]
        fig.add_bar(name=name, x=phases["site"], y=phases[phase], customdata=phases["samples"],
                    hovertemplate="%{x}: " + name + " %{y:.4f} s per request (n = %{customdata:,} requests)<extra></extra>")
    if "extra_s" in phases:
        totals = phases[list(PHASES)].sum(axis=1)
        labels = [("+" if extra >= 0 else "\u2212") + f"{abs(extra) * 1000:.0f} ms per request<br>against the other sites"
                  for extra in phases["extra_s"]]
        fig.add_scatter(x=phases["site"], y=totals, mode="text", text=labels, textposition="top center",
                        showlegend=False, hoverinfo="skip")
        fig.update_yaxes(range=[0, float(totals.max()) * 1.3])
    fig.update_layout(
        title=f"Mean time per request phase by site (n = {count_text(phases['samples'].sum())} requests)",
        barmode="stack",
        yaxis_title="mean time per request (s)",
        legend_title="phase",
        height=380,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


# The waterfall's kinds of row and mark: (legend text, colour).
_WATERFALL_KINDS = {
    "run": ("the whole run (think time included)", "#9e9e9e"),
    "step": ("step: the clinician's wait", "#1f77b4"),
    "request": ("request (the probe's, or the page's)", "#9ecae1"),
    "server": ("the EPR's own server span", "#ff7f0e"),
    "long_task": ("long task: the page busy, not answering", "#d62728"),
    "other": ("other", "#7f7f7f"),
}
_MARKS = {
    "visible": ("what the step waited for became visible", "#2ca02c", "diamond"),
    "largest_contentful_paint": ("largest contentful paint", "#9467bd", "triangle-up"),
}


def duration_text(seconds: float) -> str:
    """A duration as people read it: milliseconds under a second, else seconds."""
    if pd.isna(seconds):
        return "n/a"
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def _union_s(intervals: list[tuple[float, float]]) -> float:
    """Time covered by at least one of ``intervals`` (start, end), overlaps counted once."""
    covered, reach = 0.0, float("-inf")
    for first, last in sorted(intervals):
        if last > reach:
            covered += last - max(first, reach)
            reach = last
    return covered


def waterfall_figure(spans: pd.DataFrame, marks: pd.DataFrame | None = None, *,
                     run_title: str | None = None,
                     workflow_title: Callable[[str], str] = str) -> go.Figure:
    """One run as a waterfall: the run, its steps (the clinician's wait), the requests under each
    (the probe's, or the ones a browser step's page made), the EPR's own server spans under the
    request they answered, each step's long tasks, and the moments a browser step recorded: what
    it waited for became visible, the largest contentful paint. Every row says what it is and how
    long it took; a step with server spans says how much of its wait they cover.

    ``spans`` has ``span_id``, ``parent_span_id``, ``name``, ``start`` (UTC), ``duration_s``,
    ``source`` ("probe" or "server") and ``depth``, ordered for display, and optionally
    ``span_type``, ``http_status``, ``error_type``; ``marks`` has ``span_id`` (the step's),
    ``kind``, ``at`` (UTC), ``duration_s`` (:class:`analysis.waterfall.Waterfall`); ``run_title``
    names the run in words (workflow, site, start) in the figure's title; ``workflow_title`` the
    run's row (its span is named by the workflow's id). Steps read as words ("step latest vitals").
    """
    if spans.empty:
        return empty_figure("Choose a run in the list to see its waterfall.")
    spans = spans.reset_index(drop=True)
    marks = pd.DataFrame(columns=["span_id", "kind", "at", "duration_s"]) if marks is None else marks
    t0 = spans["start"].min()
    offset_s = (spans["start"] - t0).dt.total_seconds().tolist()
    end_s = [o + d for o, d in zip(offset_s, spans["duration_s"], strict=True)]
    types = spans["span_type"] if "span_type" in spans else pd.Series([None] * len(spans))
    column = {name: (spans[name] if name in spans else pd.Series([None] * len(spans))).tolist()
              for name in ("http_status", "error_type")}

    def kind_of(i: int) -> str:
        if spans.at[i, "source"] == "server":
            return "server"
        span_type = types.iloc[i]
        if span_type in ("run", "step", "cleanup"):
            return "run" if span_type == "run" else "step"
        if span_type in ("request", "page_request", "auth") or spans.at[i, "depth"] >= 2:
            return "request"
        return "step" if spans.at[i, "depth"] == 1 else ("run" if spans.at[i, "depth"] == 0 else "other")

    # Each span's subtree (it and its descendants, which follow it in the display order).
    subtree_end = []
    for i, depth in enumerate(spans["depth"]):
        j = i + 1
        while j < len(spans) and spans.at[j, "depth"] > depth:
            j += 1
        subtree_end.append(j)
    long_tasks = marks[marks["kind"] == "long_task"]
    rows: list[dict[str, object]] = []  # label, kind, base, width, hover
    row_of_span: dict[str, int] = {}
    tasks_after: dict[int, list[dict[str, object]]] = {}
    for i in range(len(spans)):
        kind, name, depth = kind_of(i), str(spans.at[i, "name"]), int(spans.at[i, "depth"])
        duration = float(spans.at[i, "duration_s"])
        words = [duration_text(duration)]
        if kind == "run":
            label = f"run {workflow_title(name)}"
        elif kind == "step":
            label = f"step {step_title(name)}"
            served = [(offset_s[j], end_s[j]) for j in range(i + 1, subtree_end[i]) if spans.at[j, "source"] == "server"]
            if served:
                words.append(f"EPR servers {duration_text(_union_s(served))} of it")
        elif kind == "server":
            label = f"EPR server: {name}"
        else:
            label = name
        status = column["http_status"][i]
        if kind in ("request", "server") and status is not None and not pd.isna(status):
            words.append(f"HTTP {int(status)}")
        error = column["error_type"][i]
        if error is not None and not pd.isna(error) and error != "":
            words.append(f"failed: {error}")
        text = f"{label} · {', '.join(words)}"
        row_of_span[str(spans.at[i, "span_id"])] = len(rows)
        rows.append({"label": "\u00a0\u00a0\u00a0" * depth + text, "kind": kind, "base": offset_s[i],
                     "width": duration, "hover": f"{text}<br>starts at +{offset_s[i]:.3f} s"})
        mine = long_tasks[long_tasks["span_id"] == spans.at[i, "span_id"]]
        if not mine.empty:
            tasks_after.setdefault(subtree_end[i] - 1, []).extend(
                {"label": "\u00a0\u00a0\u00a0" * (depth + 1) + f"long task · {duration_text(task.duration_s)}",
                 "kind": "long_task", "base": (task.at - t0).total_seconds(), "width": float(task.duration_s),
                 "hover": f"long task in step {name}: the page did not answer for {duration_text(task.duration_s)}"
                          f"<br>starts at +{(task.at - t0).total_seconds():.3f} s"}
                for task in mine.itertuples())
        for task_row in tasks_after.pop(i, []):
            rows.append(task_row)

    fig = go.Figure()
    last_s = max(float(row["base"]) + float(row["width"]) for row in rows)
    for kind, (legend, colour) in _WATERFALL_KINDS.items():
        chosen = [(y, row) for y, row in enumerate(rows) if row["kind"] == kind]
        if not chosen:
            continue
        fig.add_bar(y=[y for y, _ in chosen], x=[row["width"] for _, row in chosen],
                    base=[row["base"] for _, row in chosen], orientation="h", name=legend, marker_color=colour,
                    customdata=[row["hover"] for _, row in chosen], hovertemplate="%{customdata}<extra></extra>")
    for kind, (legend, colour, symbol) in _MARKS.items():
        chosen = marks[(marks["kind"] == kind) & marks["span_id"].isin(list(row_of_span))]
        if kind == "largest_contentful_paint":  # the last candidate of a step is its largest paint
            chosen = chosen.groupby("span_id", sort=False).tail(1)
        if chosen.empty:
            continue
        at_s = [(at - t0).total_seconds() for at in chosen["at"]]
        visible = kind == "visible"  # written beside its mark; a paint's time is in its hover (it is close by)
        fig.add_scatter(y=[row_of_span[span] for span in chosen["span_id"]], x=at_s,
                        mode="markers+text" if visible else "markers",
                        name=legend, marker=dict(color=colour, symbol=symbol, size=11),
                        text=[f"{'visible' if visible else 'largest paint'} at +{a:.3f} s" for a in at_s],
                        textposition="middle right", textfont=dict(color=colour),
                        hovertemplate="%{text}<extra></extra>")
        last_s = max(last_s, *at_s)
    labels = [str(row["label"]) for row in rows]
    fig.update_layout(
        # two lines, so the chart's toolbar at the top right does not cover the end of one long one
        title=f"{run_title or 'Run waterfall'}<br><span style='font-size:0.8em'>each step as the clinician "
              "waited, its requests, the EPR's own time</span>",
        xaxis=dict(title="seconds since the run started", range=[0, last_s * 1.2]),  # room for the marks' words
        yaxis=dict(tickvals=list(range(len(rows))), ticktext=labels, autorange="reversed"),
        barmode="overlay",
        height=max(340, 22 * len(rows) + 190),
        # the legend at the figure's foot, under the axis title rather than over it
        margin=dict(l=min(640, 20 + 7 * max(len(label) for label in labels)), r=20, t=75, b=85),
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0.01, xanchor="left", x=0),
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

    def wrapped(label: str, width: int = 12) -> str:
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
    # Two lines each, so the titles of a narrow SLA side and the clinicians' side never run together.
    for (title, detail), first, count in (
            (("The SLA's view", "its own formula, all sites pooled"), 0, len(sla_columns)),
            (("The clinicians' view at each site", "runs within the objective's threshold, else T"),
             len(sla_columns), len(experience_columns))):
        if count:
            fig.add_annotation(x=first + (count - 1) / 2, y=1.0, yref="paper", yshift=56, text=f"<b>{title}</b><br>{detail}",
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
