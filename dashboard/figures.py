"""Pure figure functions: DataFrames in, Plotly figures out. Tested without a browser."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["empty_figure", "step_duration_figure"]


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
