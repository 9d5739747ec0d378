"""Figure functions are pure: DataFrames in, figures out, checked without a browser."""

from __future__ import annotations

import pandas as pd

from dashboard import figures


def steps_frame() -> pd.DataFrame:
    start = pd.Timestamp("2026-11-02 08:30", tz="UTC")
    rows = []
    for run, site in enumerate(["ward-7", "community-hospital"]):
        for index, (step, duration_s) in enumerate([("find patient", 0.2), ("read notes", 1.5 + run)]):
            rows.append(
                dict(
                    trace_id=f"t{run}",
                    span_id=f"s{run}{index}",
                    start=start + pd.Timedelta(minutes=run, seconds=index),
                    workflow="open_patient_record",
                    site=site,
                    step=step,
                    step_index=index,
                    duration_s=duration_s,
                )
            )
    return pd.DataFrame(rows)


def test_step_chart_stacks_each_runs_steps_in_seconds() -> None:
    fig = figures.step_duration_figure(steps_frame(), timezone="Europe/London")
    assert fig.layout.barmode == "stack"
    assert [trace.name for trace in fig.data] == ["find patient", "read notes"]
    assert list(fig.data[1].y) == [1.5, 2.5]
    assert fig.layout.yaxis.title.text == "waiting time (s)"
    assert "n = 2 runs" in fig.layout.title.text
    # Run labels are shown in the display time zone: 08:30 UTC is 08:30 GMT in November.
    assert fig.data[0].x[0].startswith("02 Nov 08:30:00")


def test_empty_steps_explain_why_the_chart_is_blank() -> None:
    fig = figures.step_duration_figure(steps_frame().iloc[0:0])
    assert len(fig.data) == 0
    assert "No runs" in fig.layout.annotations[0].text
