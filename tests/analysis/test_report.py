"""The month's report: plain words first, figures after, in Markdown, HTML and JSON."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from analysis import open_store
from analysis.calendar import ClinicalCalendar
from analysis.config import ChangeEventConfig, ObjectiveConfig, PeriodConfig, SLAConfig
from analysis.report import build_report, to_html, to_json, to_markdown

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


def test_report_words_and_figures(store_path: Path) -> None:
    now = dt.datetime(2026, 11, 2, 9, tzinfo=UTC)
    with open_store(store_path) as store:
        report = build_report(store, [SLA], [ROUNDS], CALENDAR, "2026-10", changes=[CHANGE],
                              timezone="Europe/London", now=now)
    assert report.start == dt.datetime(2026, 9, 30, 23, tzinfo=UTC)
    assert not report.simulated
    # 150 requests, all within 2 s
    assert report.slas[0].met is True and report.slas[0].samples == 150
    assert report.headline[0].startswith("SLA '95% <2 s' (95% of requests within 2 s, 24x7, "
                                         "per calendar month): met, 100.00%")
    assert "breached at ward-7 in ward rounds (0%, p90 3.7 s, n=15)" in report.headline[1]
    assert report.headline[2] == report.findings[0].summary
    assert report.findings[0].kind == "watermelon" and report.findings[0].dominant_step == "notes"
    assert report.headline[3].startswith("Release <24.3> (14 Oct 07:00 UTC): open at ward-7 went "
                                         "from a median of 0.80 s to 1.40 s")
    assert "mostly in meds (+0.60 s)" in report.headline[3]
    # Apdex per workflow with its T: T = 1.5; 35 runs <= 1.5 s satisfied... 15 rounds runs
    # (3.1 or 3.7 s) tolerating (<= 6 s): (35 + 7.5) / 50 = 0.85
    assert report.apdex.iloc[0]["apdex"] == "0.85 [1.5]*"

    md = to_markdown(report)
    assert md.index("## In plain words") < md.index("## Figures")
    assert "| open in 3 s on rounds | ward-7 | ward rounds | 15 |" in md
    assert "0.85 [1.5]*" in md

    page = to_html(report)
    assert "Release &lt;24.3&gt;" in page and "<24.3>" not in page
    assert page.startswith("<!DOCTYPE html>")

    document = json.loads(to_json(report))
    assert document["month"] == "2026-10"
    assert document["slas"][0]["samples"] == 150
    assert document["findings"][0]["dominant_step"] == "notes"
    assert document["changes"][0]["impact"][0]["dominant_step"] == "meds"
    assert document["objectives"][0]["scopes"][0]["apdex"].endswith("[1.5]*")


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


def test_report_of_an_empty_month(store_path: Path) -> None:
    with open_store(store_path) as store:
        report = build_report(store, [SLA], [ROUNDS], CALENDAR, "2026-12")
    assert report.slas[0].met is None and report.findings == []
    assert "not measured" in report.headline[0]
    assert "no runs this month" in report.headline[1]
    json.loads(to_json(report))
    assert "None." in to_markdown(report)


def test_frame_cache_reads_each_frame_once(store_path: Path) -> None:
    from analysis.store import FrameCache

    with open_store(store_path) as store:
        cache = FrameCache(store)
        first = cache.runs(None, None, workflow=["open"])
        assert cache.runs(None, None, workflow=("open",)) is first
        assert cache.runs(None, None, workflow="open") is not first  # another question
        assert cache.runs(workflow=["open"], site=None) is first  # the same question
        assert FrameCache(cache).path == store.path
