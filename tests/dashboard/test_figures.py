"""Figure functions are pure: DataFrames in, figures out, checked without a browser."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import figures

ROOT = Path(__file__).resolve().parents[2]


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


def test_time_of_day_blanks_cells_with_too_few_runs_and_outlines_periods() -> None:
    cells = pd.DataFrame(
        {"weekday": [0, 0, 5], "hour": [8, 9, 8], "value": [0.6, 0.9, 1.0], "samples": [30, 3, 40]}
    )
    boxes = [figures.PeriodBox(weekday=d, start_hour=8, end_hour=10.5) for d in range(5)]
    fig = figures.time_of_day_figure(cells, value_label="share under 3 s", periods=boxes, min_samples=5)
    z = fig.data[0].z
    assert z[0][8] == 0.6
    assert z[0][9] is None or z[0][9] != z[0][9]  # blank (NaN/None): 3 runs are too few
    assert "too few to judge" in fig.data[0].text[0][9]
    assert z[5][8] == 1.0
    assert len(fig.layout.shapes) == 5
    assert (fig.layout.shapes[0].x0, fig.layout.shapes[0].x1) == (7.5, 10.0)
    assert "n = 73 runs" in fig.layout.title.text


def test_ecdf_marks_thresholds_with_the_share_under_each() -> None:
    fig = figures.ecdf_figure(pd.Series([1.0, 2.0, 3.0, 4.0]), thresholds_s={"objective": 3.0}, title="Runs")
    assert list(fig.data[0].y) == [0.25, 0.5, 0.75, 1.0]
    assert fig.layout.annotations[0].text == "objective 3 s: 75% under"
    assert "n = 4 runs" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "waiting time (s)"


def test_waterfall_places_each_span_at_its_offset() -> None:
    t0 = pd.Timestamp("2026-11-02 08:30", tz="UTC")
    spans = pd.DataFrame(
        {
            "span_id": ["a", "b", "c"],
            "parent_span_id": ["", "a", "b"],
            "name": ["open-patient-record", "notes", "GET /fhir/DocumentReference"],
            "start": [t0, t0 + pd.Timedelta(milliseconds=100), t0 + pd.Timedelta(milliseconds=120)],
            "duration_s": [1.0, 0.5, 0.4],
            "source": ["probe", "probe", "server"],
            "depth": [0, 1, 2],
        }
    )
    fig = figures.waterfall_figure(spans)
    bars = {bar.name: bar for bar in fig.data}
    assert [round(b, 3) for b in bars["the EPR's own server span"].base] == [0.12]
    assert list(bars["step: the clinician's wait"].y) == [1]
    assert fig.layout.yaxis.ticktext[1] == "\u00a0" * 3 + "step notes · 500 ms, EPR servers 400 ms of it"
    assert fig.layout.yaxis.ticktext[2] == "\u00a0" * 6 + "EPR server: GET /fhir/DocumentReference · 400 ms"
    # the legend sits at the figure's foot, in the bottom margin under the axis title, not over it
    assert fig.layout.legend.yref == "container" and fig.layout.legend.yanchor == "bottom"
    assert fig.layout.legend.y * fig.layout.height < 0.2 * fig.layout.margin.b


def test_a_browser_runs_waterfall_says_its_requests_long_tasks_and_visible_moment_in_words() -> None:
    t0 = pd.Timestamp("2026-11-18 08:00", tz="UTC")
    ms = lambda n: t0 + pd.Timedelta(milliseconds=n)  # noqa: E731
    spans = pd.DataFrame({
        "span_id": ["run", "sign", "open", "enc", "enc-server", "notes"],
        "parent_span_id": ["", "run", "run", "open", "enc", "open"],
        "name": ["open-record-in-browser", "sign-in", "open-record", "GET /fhir/Encounter", "GET /fhir/Encounter",
                 "GET /fhir/DocumentReference"],
        "start": [ms(0), ms(0), ms(1000), ms(1010), ms(1015), ms(1250)],
        "duration_s": [2.1, 0.3, 1.0, 0.2, 0.18, 0.2],
        "source": ["probe", "probe", "probe", "probe", "server", "probe"],
        "span_type": ["run", "step", "step", "page_request", None, "page_request"],
        "http_status": [None, None, None, 200, 200, 503],
        "error_type": [None, None, "browser_script", None, None, "http_5xx"],
        "depth": [0, 1, 1, 2, 3, 2],
    })
    marks = pd.DataFrame({
        "span_id": ["open", "open", "open", "open"],
        "kind": ["largest_contentful_paint", "long_task", "largest_contentful_paint", "visible"],
        "at": [ms(1300), ms(1460), ms(1600), ms(2000)],
        "duration_s": [float("nan"), 0.12, float("nan"), float("nan")],
    })
    fig = figures.waterfall_figure(spans, marks, workflow_title={"open-record-in-browser": "Open record in browser"}.get)
    labels = [label.replace("\u00a0", " ").strip() for label in fig.layout.yaxis.ticktext]
    assert labels == [
        "run Open record in browser · 2.10 s",
        "step sign in · 300 ms",
        "step open record · 1.00 s, EPR servers 180 ms of it, failed: browser_script",
        "GET /fhir/Encounter · 200 ms, HTTP 200",
        "EPR server: GET /fhir/Encounter · 180 ms, HTTP 200",
        "GET /fhir/DocumentReference · 200 ms, HTTP 503, failed: http_5xx",
        "long task · 120 ms",  # after the step's requests, one level below the step
    ]
    long_task = next(bar for bar in fig.data if bar.name.startswith("long task"))
    assert (list(long_task.y), list(long_task.base), list(long_task.x)) == ([6], [pytest.approx(1.46)], [0.12])
    visible = next(trace for trace in fig.data if trace.name.startswith("what the step waited for"))
    assert (list(visible.y), list(visible.text)) == ([2], ["visible at +2.000 s"])
    paint = next(trace for trace in fig.data if trace.name == "largest contentful paint")
    assert list(paint.text) == ["largest paint at +1.600 s"]  # the step's last candidate is its largest


def test_phases_stack_per_site() -> None:
    phases = pd.DataFrame(
        {"site": ["ward-7", "community-hospital"], "samples": [10, 12], "dns_s": [0, 0], "connect_s": [0.001, 0.08],
         "tls_s": [0, 0], "ttfb_s": [0.1, 0.18], "transfer_s": [0.01, 0.02]}
    )
    fig = figures.phases_figure(phases)
    assert [t.name for t in fig.data] == ["DNS", "connect", "TLS", "first byte", "transfer"]
    assert list(fig.data[1].y) == [0.001, 0.08]
    assert "n = 22 requests" in fig.layout.title.text


def test_the_sla_is_drawn_beside_the_clinicians_view_green_outside_red_inside() -> None:
    import dataclasses
    import datetime as dt

    from analysis.apdex import Apdex
    from analysis.config import ObjectiveConfig, PeriodConfig
    from dashboard.context import DashboardContext, SiteInfo, WorkflowInfo
    from dashboard.findings import SLOW_HOURS, ObjectiveScope, SLAView, picture_cells

    def scope(site: str, scope: str, kind: str, samples: int, satisfied: int, frustrated: int) -> dict:
        share = satisfied / samples
        return {"workflow": "open-patient-record", "site": site, "scope": scope, "kind": kind, "samples": samples,
                "not_ok": 0, "satisfied": satisfied, "tolerating": samples - satisfied - frustrated,
                "share_under": share, "frustrated_share": frustrated / samples,
                "apdex": Apdex(score=share, t_s=3.0, samples=samples, satisfied=satisfied, tolerating=0,
                               frustrated=frustrated, failed=0)}

    scopes = pd.DataFrame([
        scope("clinic", "all hours", "all", 673, 568, 35),
        scope("clinic", "outpatient clinics", "period", 70, 35, 35),
        scope("clinic", "13:00\u201317:00", "hours", 112, 76, 35),
        scope("ward-7", "all hours", "all", 673, 640, 0),
        scope("ward-7", "ward rounds", "period", 50, 49, 0),
    ])
    context = DashboardContext(
        data_dir=None,  # type: ignore[arg-type]
        sites=(SiteInfo("clinic", "Outpatient clinic", "Europe/London"), SiteInfo("ward-7", "Ward 7", "Europe/London")),
        workflows=(WorkflowInfo("open-patient-record", threshold_s=3.0),),
        periods=(PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30)),
                 PeriodConfig(name="outpatient clinics", start=dt.time(13, 30), end=dt.time(17))),
        objectives=(ObjectiveConfig(name="rounds", workflow="open-patient-record", threshold_s=3, target=0.95,
                                    periods=["ward rounds"]),),
    )
    slas = (SLAView("supplier response time", (), "0.71 s", "≤ 1 s", 32100, "met"),
            SLAView("charting within 2 s", ("chart-observations",), "92.9%", "target 95%", 35228, "breached"))
    # The objective judges ward rounds at Ward 7 by its own 2 s: 30 of 50 runs, though 49 were
    # within the workflow's 3 s. The cell must read as the objective's finding does.
    objectives = (ObjectiveScope("rounds", "open-patient-record", "ward-7", "ward rounds", 2.0, 0.95, runs=50, good=30),)
    cells = picture_cells(slas, scopes, context, objectives)
    fig = figures.sla_beside_experience_figure(cells)
    heat = fig.data[0]
    assert list(heat.y) == ["Open patient record · Outpatient clinic", "Open patient record · Ward 7"]
    columns = [label.replace("<br>", " ") for label in heat.x]
    # The SLA's columns first (only those covering the workflow), then all hours, the periods in
    # configuration order, and the hours where runs wait.
    assert columns == ["supplier response time", "all hours", "ward rounds", "outpatient clinics", SLOW_HOURS]
    clinic, ward = heat.z
    assert clinic == [1.0, 0.0, None, 0.0, 0.0]  # SLA met; the clinic red in every part of the day
    assert ward[:3] == [1.0, 1.0, 0.0] and ward[3:] == [None, None]  # 60% within 2 s misses the objective's 95%
    assert "<b>60%</b><br>within 2 s<br>n = 50" in heat.text[1][2]
    assert "objective \u201crounds\u201d, target 95%" in heat.customdata[1][2]
    assert "<b>95%</b><br>within 3 s" in heat.text[1][1]  # all hours: no objective, the workflow's T
    assert "as no objective sets one here" in heat.customdata[1][1]
    # Five runs are too few to judge (as the board rates them): shown, neither green nor red.
    few = picture_cells(slas, scopes, context, (dataclasses.replace(objectives[0], runs=5, good=3),))
    cell = few[(few["row"] == "Open patient record · Ward 7") & (few["column"] == "ward rounds")].iloc[0]
    assert pd.isna(cell["good"]) and "n = 5<br>(too few to judge)" in cell["text"]
    assert "<b>0.71 s</b><br>met" in heat.text[0][0] and "n = 70" in heat.text[0][3]
    assert "13:00\u201317:00" in heat.text[0][4]
    assert fig.layout.shapes[0].x0 == 0.5  # the line between the SLA's view and the clinicians'
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "The SLA's view" in notes and "The clinicians' view" in notes


def test_every_count_is_written_with_one_formatter_a_comma_between_thousands() -> None:
    assert [figures.count_text(n) for n in (1, 980, 12345, np.int64(1234567))] == ["1", "980", "12,345", "1,234,567"]
    fig = figures.ecdf_histogram_figure(np.array([0.5, 2.0]), np.array([12000, 345]), thresholds={"T": (1.0, 0.97)},
                                        relative_error=0.0, title="Waiting time of completed runs")
    assert fig.layout.title.text == "Waiting time of completed runs (n = 12,345 runs)"


OWN_MODULES = ["dashboard/board.py", "dashboard/figures.py", "dashboard/findings.py", "dashboard/filters.py",
               *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "dashboard" / "pages").glob("*.py"))]


@pytest.mark.parametrize("module", OWN_MODULES)
def test_the_pages_write_counts_only_through_count_text(module: str) -> None:
    """"n = 12345" on one page and "12,345" on another: every "n = " in a text goes through
    count_text, and no text formats a number with its own thousands separator."""
    source = (ROOT / module).read_text(encoding="utf-8").replace('return f"{int(n):,}"', "")  # count_text's own
    assert not re.findall(r"\bn = \{(?!count_text\()", source), module
    assert not re.findall(r"(?<!%)\{[^{}]*:,\}", source), module
    assert not re.findall(r"%\{customdata\}\)", source), module  # plotly's hover: %{customdata:,}


def test_step_chart_labels_each_run_with_its_sites_display_name() -> None:
    titles = {"ward-7": "Ward 7", "community-hospital": "Community hospital"}
    fig = figures.step_duration_figure(steps_frame(), timezone="UTC", site_title=titles.get)
    labels = list(dict.fromkeys(x for trace in fig.data for x in trace.x))
    assert [label.split(" · ")[1] for label in labels] == ["Ward 7", "Community hospital"]


def test_step_chart_keeps_runs_of_two_workflows_at_the_same_second_apart() -> None:
    """Two runs starting the same second at one site, of two workflows, were one stacked bar."""
    first = steps_frame()
    second = first[first["trace_id"] == "t0"].assign(trace_id="t9", workflow="ward_handover",
                                                     step=["list patients", "latest-vitals"])
    titles = {"open_patient_record": "Open patient record", "ward_handover": "Ward handover"}
    fig = figures.step_duration_figure(pd.concat([first, second]), timezone="UTC", workflow_title=titles.get)
    labels = list(dict.fromkeys(x for trace in fig.data for x in trace.x))
    assert len(labels) == 3, labels
    assert {label.split(" · ")[-1] for label in labels} == {"Open patient record", "Ward handover"}
    assert "latest vitals" in [trace.name for trace in fig.data]  # steps read as words


def test_step_chart_numbers_runs_that_would_read_alike() -> None:
    first = steps_frame()
    twin = first[first["trace_id"] == "t0"].assign(trace_id="t0b")
    fig = figures.step_duration_figure(pd.concat([first, twin]), timezone="UTC")
    labels = list(dict.fromkeys(x for trace in fig.data for x in trace.x))
    assert len(labels) == 3 and sum(label.endswith(" (2)") for label in labels) == 1, labels


def test_step_breakdown_names_steps_in_words() -> None:
    steps = pd.DataFrame({"step": ["find-patient", "latest_vitals"], "median_s": [0.1, 2.0],
                          "p90_s": [0.2, 3.0], "samples": [10, 10], "excess_share": [0.1, 0.9]})
    fig = figures.step_breakdown_figure(steps)
    assert list(fig.data[0].x) == ["find patient", "latest vitals"]


def test_one_run_is_one_run_not_one_runs() -> None:
    one = steps_frame()[lambda f: f["trace_id"] == "t0"]
    assert figures.step_duration_figure(one).layout.title.text.endswith("(n = 1 run)")
