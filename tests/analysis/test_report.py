"""The month's report: a verdict, a picture per finding, words, then the figures; Markdown, HTML, JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
import yaml

from analysis import open_store
from analysis.calendar import ClinicalCalendar
from analysis.config import ChangeEventConfig, ObjectiveConfig, PeriodConfig, SLAConfig
from analysis.findings import Figure, FindingInputs, SiteLabel, Story, WorkflowLabel
from analysis.report import build_report, story_svg, to_html, to_json, to_markdown

UTC = dt.UTC
CALENDAR = ClinicalCalendar(
    [PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30))],
    {"ward-7": "Europe/London"},
)
ROUNDS = ObjectiveConfig(name="open in 3 s on rounds", workflow="open", threshold_s=3,
                         target=0.9, periods=["ward rounds"], apdex_t_s=1.5)
SLA = SLAConfig(name="95% <2 s", metric="share_under", threshold_s=2, target=0.95,
                timezone="Europe/London")
CHANGE = ChangeEventConfig(at="2026-10-14T07:00:00Z", title="Release <24.3>", workflows=["open"])


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """Weekdays 12-16 October 2026 at ward-7: each hour 07:05-16:05Z one run; ward-round runs
    (07:05, 08:05, 09:05Z) wait 1.0 + 1.9 + meds; others 0.3 + 0.3 + meds; meds is 0.2 s
    before the change (14 Oct 07:00Z) and 0.8 s after."""
    rows = []
    for day in range(12, 17):
        for hour in range(7, 17):
            start = dt.datetime(2026, 10, day, hour, 5, tzinfo=UTC)
            meds = 0.8 if start >= CHANGE.at else 0.2
            steps = ([("find", 1.0), ("notes", 1.9)] if hour < 10 else [("find", 0.3), ("notes", 0.3)])
            rows += make_rows(start, "open", "ward-7", [*steps, ("meds", meds)])
    return rows_store(rows)


LABELS = FindingInputs(workflows=(WorkflowLabel("open", "Open patient record", 3.0),),
                       sites=(SiteLabel("ward-7", "Ward 7", "Europe/London"),))


def visible_text(page: str) -> str:
    """What a reader of the HTML sees: the text outside tags, styles and pictures' titles."""
    page = re.sub(r"<style>.*?</style>|<title>.*?</title>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_report_words_and_figures(store_path: Path) -> None:
    now = dt.datetime(2026, 11, 2, 9, tzinfo=UTC)
    with open_store(store_path) as store:
        report = build_report(store, [SLA], [ROUNDS], CALENDAR, "2026-10", changes=[CHANGE],
                              timezone="Europe/London", now=now, labels=LABELS)
    assert report.start == dt.datetime(2026, 9, 30, 23, tzinfo=UTC)
    assert not report.simulated and report.has_data
    assert report.measured.runs == 50 and report.measured.days == 5
    # 150 requests, all within 2 s
    assert report.slas[0].met is True and report.slas[0].samples == 150
    assert report.headline[0] == (
        "SLA “95% <2 s” (95% of requests within 2 s, 24x7, per calendar month): met, 100.00% of 150 "
        "requests within 2 s (target 95%); 0% of the month's allowance of slow requests (5% of them) "
        "was used.")
    assert report.headline[1] == (
        "Experience objective “open in 3 s on rounds” was breached at Ward 7 during ward rounds (0% "
        "against 90%, 90th percentile 3.7 s, 15 runs).")
    # The findings: the release's change and the ward-round watermelon, as find_stories tells them.
    assert [s.kind for s in report.stories] == ["change", "watermelon"]
    assert report.headline[2:4] == [s.headline for s in report.stories]
    assert report.headline[4].startswith("Release <24.3> (14 Oct 07:00 UTC): Open patient record at "
                                         "Ward 7 went from a median of 0.80 s to 1.40 s")
    assert "mostly in meds (+0.60 s, 100% of the rise)" in report.headline[4]
    # The verdict: the contract held, the clinicians waited, in display names and percentages.
    assert report.verdict == (
        "The supplier's SLA was met, yet clinicians waited: Open patient record at Ward 7 during ward "
        "rounds (runs within 3 s during ward rounds: 0%, target 90%), and 1 more finding below.")
    # Apdex per workflow with its T: T = 1.5; 35 runs <= 1.5 s satisfied... 15 rounds runs
    # (3.1 or 3.7 s) tolerating (<= 6 s): (35 + 7.5) / 50 = 0.85
    assert report.apdex.iloc[0]["apdex"] == "0.85 [1.5]*"

    md = to_markdown(report)
    assert md.index(report.verdict) < md.index("## What was found") < md.index("## Appendix: the figures")
    assert "| open in 3 s on rounds | Ward 7 | ward rounds | 15 |" in md
    assert "0.85 [1.5]*" in md

    page = to_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "Release &lt;24.3&gt;" in page and "<24.3>" not in page
    # Self-contained: no script and nothing fetched; the picture is inline SVG, after the verdict.
    assert "<script" not in page and not re.search(r"""(src|href)=["']?https?:""", page)
    assert page.index(html.escape(report.verdict)) < page.index("<svg") < page.index("Appendix")
    text = visible_text(page)
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), "snake_case reached the reader"
    assert not re.search(r"(?<![<\d.=])0\.\d{3,}\b", text), "a ratio where a percentage belongs (p-values aside)"
    assert "ward-7" not in text and "Ward 7" in text

    document = json.loads(to_json(report))
    assert document["month"] == "2026-10" and document["verdict"] == report.verdict
    assert document["slas"][0]["samples"] == 150 and document["slas"][0]["value"] == 1.0
    assert [f["kind"] for f in document["findings"]] == ["change", "watermelon"]
    assert document["findings"][1]["site_titles"] == ["Ward 7"]
    assert document["findings"][1]["figures"][0]["n"] == 150
    assert document["changes"][0]["impact"][0]["dominant_step"] == "meds"
    assert document["objectives"][0]["scopes"][0]["apdex"].endswith("[1.5]*")


def test_the_budget_is_said_as_the_day_it_ran_out(store_path: Path) -> None:
    # Within 1.5 s, the three ward-round notes steps (1.9 s) of each day are slow: 3 of 30 a day;
    # the month's 150 requests allow 7.5 slow ones, so the allowance runs out on the third day.
    tight = SLAConfig(name="within 1.5 s", metric="share_under", threshold_s=1.5, target=0.95,
                      timezone="Europe/London")
    with open_store(store_path) as store:
        report = build_report(store, [tight, SLA], [], CALENDAR, "2026-10", labels=LABELS)
    assert report.slas[0].met is False
    assert report.sla_budgets[0] == ("the month's allowance of slow requests was used up by the 14th "
                                     "(Wed 14 Oct), 100% over it by the end")
    assert "budget left" not in to_markdown(report) and "-100%" not in to_markdown(report)
    assert report.verdict.startswith("1 of 2 SLAs was breached (“within 1.5 s”)")
    # The same month read before it is over says its figures are so far, not final.
    with open_store(store_path) as store:
        early = build_report(store, [tight, SLA], [], CALENDAR, "2026-10", labels=LABELS,
                             now=dt.datetime(2026, 10, 17, 12, tzinfo=UTC))
    assert early.sla_budgets[0].endswith("100% over it so far")
    assert early.sla_budgets[1].endswith("was used so far")
    assert "October 2026 in UTC, so far (the month is not over: figures to Sat 17 Oct 12:00)" in to_markdown(early)


def test_missed_slots_are_told(store_path: Path, make_rows) -> None:
    from store import schema, write_spans

    rows = []
    for i, reason in enumerate(["busy", "busy", "probe_down"]):
        rows.append({
            schema.TIMESTAMP: dt.datetime(2026, 10, 20, 8, i, tzinfo=UTC),
            schema.TRACE_ID: f"{0xabc0 + i:032x}", schema.SPAN_ID: f"{0xdef0 + i:016x}",
            schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_MISSED_SLOT,
                                     schema.ATTR_WORKFLOW: "open", schema.ATTR_MISSED_REASON: reason},
            schema.RESOURCE_ATTRIBUTES: {schema.ATTR_SITE: "ward-7"},
        })
    write_spans(store_path, rows)
    with open_store(store_path) as store:
        report = build_report(store, [SLA], [ROUNDS], CALENDAR, "2026-10")
    assert ("The probes missed 3 scheduled runs this month (busy: 2, probe down: 1); the figures "
            "above leave those moments out.") in report.headline
    assert json.loads(to_json(report))["missed_slots"] == {"busy": 2, "probe_down": 1}


def test_a_month_without_data_draws_no_conclusion(store_path: Path) -> None:
    december_change = ChangeEventConfig(at="2026-12-02T07:00:00Z", title="Release 25.1")
    with open_store(store_path) as store:
        report = build_report(store, [SLA], [ROUNDS], CALENDAR, "2026-12", changes=[december_change],
                              labels=LABELS)
    assert not report.has_data and report.stories == []
    assert report.slas[0].met is None
    assert report.verdict == ("Not enough data for December 2026: no runs were recorded in the month, "
                              "so this report draws no conclusion.")
    assert report.headline == [
        "SLA “95% <2 s” (95% of requests within 2 s, 24x7, per calendar month): not enough data (no "
        "requests counted).",
        "Experience objective “open in 3 s on rounds”: not enough data (no runs).",
        "Release 25.1 (02 Dec 07:00 UTC): not enough data to compare waiting times before and after "
        "(no runs on one side or both).",
    ]
    for text in (to_markdown(report), visible_text(to_html(report))):
        assert "no significant change" not in text and not re.search(r"\b(met|breached)\b", text)
    document = json.loads(to_json(report))
    assert "no significant change" not in to_json(report)
    assert document["slas"][0]["met"] is None and document["objectives"][0]["met"] is None
    assert "None." not in to_markdown(report) and "Not enough data." in to_markdown(report)
    assert document["has_data"] is False and document["slas"][0]["verdict"] == "not enough data"
    assert document["objectives"][0]["verdict"] == "not enough data"
    assert document["changes"][0]["verdict"] == "not enough data"


def test_without_slas_or_objectives_it_says_what_it_measured_and_how_to_add_them(store_path: Path) -> None:
    with open_store(store_path) as store:
        report = build_report(store, [], [], CALENDAR, "2026-10", timezone="Europe/London", labels=LABELS)
    assert report.verdict == (
        "In October 2026 the probes measured 50 runs of 1 workflow at 1 site; with no SLA and no "
        "experience objective configured there is nothing to judge them against yet (see below for "
        "how to add them).")
    md = to_markdown(report)
    assert ("Measured: 50 runs of Open patient record at Ward 7 over 5 days (Mon 12 Oct to Fri 16 Oct), "
            "150 requests.") in md
    assert "add an SLA (what the supplier's contract promises" in md and "None." in md
    # The YAML it offers is a valid configuration for the workflow it measured.
    sections = yaml.safe_load(report.setup)
    assert [SLAConfig.model_validate(s).metric for s in sections["slas"]] == ["share_under"]
    objective = ObjectiveConfig.model_validate(sections["objectives"][0])
    assert objective.workflow == "open" and objective.threshold_s == 3
    assert "```yaml" in md and html.escape("workflow: open") in to_html(report)
    assert json.loads(to_json(report))["setup_yaml"] == report.setup


def test_a_picture_draws_each_figure_against_its_threshold() -> None:
    story = Story(kind="watermelon", headline="Open <patient> record", since=None, since_text="",
                  workflow="open", sites=("ward-7",), period=None,
                  figures=(Figure("supplier's mean", "0.71 s", "≤ 1 s", 100, "met"),
                           Figure("runs within 3 s", "84%", "target 90%", 40, "breached"),
                           Figure("note", "many", None, None, None)),
                  lenses=(), blame=None, suggestion_yaml=None, severity_s=0.0)
    svg = story_svg(story)
    assert svg.startswith("<svg") and svg.count("<line") == 2 and "Open &lt;patient&gt; record" in svg
    bars = re.findall(r'<rect x="450" y="\d+" width="([0-9.]+)" height="18" fill="(#[0-9a-f]+)"', svg)
    assert bars[0] == ("260", "#eceff1")  # the track behind the first bar
    # A time on its own scale, its target two thirds of the way: 0.71 s of 1.05 * 1.5 s.
    assert float(bars[1][0]) == pytest.approx(0.71 / 1.575 * 260, abs=0.1) and bars[1][1] == "#2e7d32"
    assert float(bars[3][0]) == pytest.approx(0.84 * 260, abs=0.1) and bars[3][1] == "#c62828"
    # Without a verdict, a figure past its mark is told apart from one within it.
    usual = dataclasses.replace(story, figures=(Figure("slow runs' median", "19 s", "usual 1.5 s", 40, None),
                                                Figure("runs within 3 s", "95%", "90% (usual)", 40, None)))
    fills = re.findall(r'height="18" fill="(#[0-9a-f]+)"', story_svg(usual))
    assert fills == ["#eceff1", "#ef6c00", "#eceff1", "#546e7a"]
    assert story_svg(dataclasses.replace(story, figures=story.figures[2:])) == ""


def test_frame_cache_reads_each_frame_once(store_path: Path) -> None:
    from analysis.store import FrameCache

    with open_store(store_path) as store:
        cache = FrameCache(store)
        first = cache.runs(None, None, workflow=["open"])
        assert cache.runs(None, None, workflow=("open",)) is first
        assert cache.runs(None, None, workflow="open") is not first  # another question
        assert cache.runs(workflow=["open"], site=None) is first  # the same question
        assert FrameCache(cache).path == store.path


@pytest.mark.parametrize("slas, objectives, verdict", [
    ([], [ROUNDS], "No SLA is configured, and 1 experience objective was breached."),
    # Without an objective the wait is still found, in the hours it recurs.
    ([SLA], [], "The supplier's SLA was met, yet clinicians waited: Every weekday 08:00–10:30 (ward rounds), "
                "Open patient record takes about 3.7 s at Ward 7"),
    # An SLA with nothing to count is not among those met ("All 2 of the supplier's SLAs" read as if 2 were all).
    ([SLA, SLAConfig(name="charting", metric="share_under", threshold_s=2, target=0.95, workflows=["chart"])], [],
     "1 of the supplier's 2 SLAs was met and the other 1 had not enough data to be judged, yet clinicians waited"),
    ([SLA, SLAConfig(name="again", metric="share_under", threshold_s=3, target=0.95)], [],
     "Both of the supplier's SLAs were met, yet clinicians waited"),
])
def test_the_verdict_says_what_is_missing(store_path: Path, slas: list, objectives: list, verdict: str) -> None:
    with open_store(store_path) as store:
        report = build_report(store, slas, objectives, CALENDAR, "2026-10", labels=LABELS)
    assert report.verdict.startswith(verdict)
    assert "to the configuration file, for example as below" in to_markdown(report)


def test_a_long_figure_label_is_drawn_on_two_lines_not_cut_at_the_left() -> None:
    from analysis.findings import Figure, Story
    from analysis.report import story_svg

    label = "Open patient record, extra time per request at Community hospital (the median over 7 kinds of request)"
    story = Story(kind="unwatched_wait", headline="h", since=None, since_text="", workflow=None, sites=(), period=None,
                  figures=(Figure(label, "76 ms", None, 2004, None),), lenses=(), blame=None, suggestion_yaml=None,
                  severity_s=0.0, detail={})
    svg = story_svg(story)
    assert ">Open patient record, extra time per request at Community</tspan>" in svg
    assert ">hospital (the median over 7 kinds of request)</tspan>" in svg
