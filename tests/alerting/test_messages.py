"""The two messages: figures for the service owner, plain words for clinicians."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from analysis import open_store
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, PeriodConfig, SLAConfig
from dashboard.filters import Filters
from alerting.messages import Names, clinician_text, dashboard_link, owner_text, summary
from alerting.rules import AlertInputs, conditions

UTC = dt.UTC
AT = dt.datetime(2026, 10, 1, 12, tzinfo=UTC)  # a Thursday, 13:00 in London
NAMES = Names(workflows={"open": "Open patient record"}, sites={"ward-7": "Ward 7"},
              dashboard_url="http://wardwatch.example:8050")
JARGON = re.compile(r"\bp\d\d|\bSLOs?\b|\bSLAs?\b|latency|5xx|burn|budget|percentile|threshold|http|error", re.IGNORECASE)


@pytest.fixture
def every_kind(add_runs) -> list:
    """An objective burning, an SLA burning, every run failing at Ward 7, the clinic silent."""
    path = add_runs([(dt.datetime(2026, 10, 1, 11, 0, 30, tzinfo=UTC) + dt.timedelta(minutes=i), "open", "ward-7",
                      "failed" if i % 5 == 0 or i >= 57 else "ok", 5.0 if i % 5 == 0 else 1.0) for i in range(60)]
                    + [(dt.datetime(2026, 10, 1, 11, 0, tzinfo=UTC), "open", "clinic", "ok", 1.0)])
    inputs = AlertInputs(objectives=[ObjectiveConfig(name="open within 3 s", workflow="open", threshold_s=3,
                                                     target=0.99, sites=["ward-7"])],
                         slas=[SLAConfig(name="availability", metric="availability", target=0.999)],
                         cadence_s={"ward-7": 60.0, "clinic": 60.0})
    with open_store(path) as store:
        found = conditions(store, inputs, AT)
    assert {c.labels["alertname"] for c in found} == {"ObjectiveBurnRate", "SLABurnRate", "EveryRunFailing", "SiteSilent"}
    return found


def test_the_service_owner_reads_figures_thresholds_samples_since_budget_and_a_link(every_kind) -> None:
    burn = next(c for c in every_kind if c.labels["alertname"] == "ObjectiveBurnRate")
    since = AT - dt.timedelta(minutes=20)
    text = owner_text(burn.labels, burn.facts, since.isoformat(), AT, NAMES)
    # what, where, since when and how bad lead; then the objective, its burn rates and the budget
    assert text.startswith("Open patient record at Ward 7, since 12:40: 25% of runs took over 3 s or failed in "
                           "the last 1h (n=60), 80% in the last 5m (n=5). Objective 'open within 3 s' (99% of "
                           "runs within 3 s): burn rate 25.0 and 80.0, threshold 14.4.")
    # October in London (745 h: the clocks go back on the 25th) so far: 13 h at 25% bad against a 1%
    # budget leaves 1 - 25 x 13 / 745 = 56.4%, used up at that rate in 0.564 x 745 h / 25 = 16.8 h
    assert ("At this rate the month's allowance is used up on Friday 05:48 (56.4% of the budget left, "
            "n=60 runs so far).") in text
    # the lenses through which the objective sees what an SLA may not, as the unwatched waits name them
    assert text.endswith("Why an SLA may not see it: Each request against the whole task; All sites pooled "
                         "against this site.")
    assert len(text.split()) <= 90, len(text.split())
    # the link is the alert's own annotation, not repeated in the text
    assert "http" not in text
    assert dashboard_link(burn.labels, NAMES, burn.facts) == (
        "http://wardwatch.example:8050/workflow?window=1d&workflow=open&site=ward-7")
    failing = next(c for c in every_kind if c.labels["alertname"] == "EveryRunFailing")
    assert "the latest 3 runs all failed (3 in a row since 12:57; errors: http_5xx)" in owner_text(
        failing.labels, failing.facts, since.isoformat(), AT, NAMES)


def test_the_clinician_text_is_plain_words(every_kind) -> None:
    texts = []
    for condition in every_kind:
        since = (AT - dt.timedelta(minutes=20)).isoformat()
        texts.append(clinician_text(condition.labels, condition.facts, since, AT, NAMES))
        texts.append(clinician_text(condition.labels, condition.facts, since, AT, NAMES, resolved=True))
    for text in texts:
        assert not JARGON.search(text), text
        assert "_" not in text and "-" not in text  # display names, never ids
    failing = next(c for c in every_kind if c.labels["alertname"] == "EveryRunFailing")
    assert clinician_text(failing.labels, failing.facts, "2026-10-01T11:40:00+00:00", AT, NAMES) == (
        "Open patient record is not working at Ward 7 since 12:57. If you need it now, follow your downtime "
        "procedure. We will update you by 13:30.")
    burn = next(c for c in every_kind if c.labels["alertname"] == "ObjectiveBurnRate")
    assert clinician_text(burn.labels, burn.facts, "2026-10-01T11:40:00+00:00", AT, NAMES) == (
        "Open patient record has been slow or failing at times at Ward 7 since 12:40. You can keep working; "
        "it does complete, but may take longer. We will update you by 13:30.")


def test_the_jargon_check_catches_jargon() -> None:
    assert JARGON.search("p95 latency above SLO") and JARGON.search("5xx") and JARGON.search("burn rate")


def test_the_unwatched_waits_clinician_texts_are_plain_words() -> None:
    recurring = {"kind": "unwatched", "hours": "weekdays 13:30-17:00", "days": "weekday", "start": "13:30",
                 "end": "17:00", "headline": "h", "figures": [], "now": True}
    slower_site = {"kind": "unwatched", "hours": "all hours", "days": None, "start": None, "end": None,
                   "headline": "h", "figures": []}
    texts = []
    for labels, facts in ((
            {"alertname": "UnwatchedWait", "workflow": "open", "site": "all", "severity": "page"}, recurring), (
            {"alertname": "UnwatchedWait", "workflow": "open,chart", "site": "ward-7", "severity": "ticket"},
            slower_site)):
        for resolved in (False, True):
            texts.append(clinician_text(labels, facts, AT.isoformat(), AT, NAMES, resolved=resolved))
    assert texts[0] == ("Open patient record is slow at every site since 13:00, as often on weekdays between 13:30 "
                        "and 17:00. You can keep working; it does complete, but may take longer. We will update "
                        "you by 13:30.")
    assert texts[2] == ("Open patient record and Chart are slower at Ward 7 than at other sites, at every hour. "
                        "You can keep working; they do complete, but may take longer.")
    ticket = clinician_text({"workflow": "open,chart,hand", "site": "ward-7,clinic"}, {**recurring, "now": False},
                            AT.isoformat(), AT, NAMES)
    assert ticket == ("Open patient record, Chart and Hand are often slow at Ward 7 and clinic on weekdays between "
                      "13:30 and 17:00. You can keep working; they do complete, but may take longer.")
    texts.append(ticket)
    for text in texts:
        assert not JARGON.search(text), text


def test_a_ward_round_objectives_alert_opens_the_dashboard_on_ward_rounds_and_says_so(add_runs) -> None:
    """Its link carries the period as the dashboard's filter bar writes it, its text names the
    period where and the lens that shows it."""
    ward_round = dt.datetime(2026, 10, 1, 8, 0, 30, tzinfo=UTC)  # 09:00 in London, a Thursday
    path = add_runs([(ward_round + dt.timedelta(minutes=i), "open", "ward-7", "ok", 5.0 if i % 2 else 1.0)
                     for i in range(60)])
    rounds = PeriodConfig(name="ward rounds", start=dt.time(8),
                          end=dt.time(10, 30))
    inputs = AlertInputs(objectives=[ObjectiveConfig(name="open within 3 s on ward rounds", workflow="open",
                                                     threshold_s=3, target=0.99, periods=["ward rounds"],
                                                     sites=["ward-7"])],
                         calendar=ClinicalCalendar([rounds], {"ward-7": "Europe/London"}, "Europe/London"),
                         cadence_s={"ward-7": 60.0})
    at = ward_round + dt.timedelta(minutes=61)
    with open_store(path) as store:
        burn = next(c for c in conditions(store, inputs, at)
                    if c.labels["alertname"] == "ObjectiveBurnRate" and c.labels["window"] == "1h")
    link = dashboard_link(burn.labels, NAMES, burn.facts)
    assert link == "http://wardwatch.example:8050/workflow?window=1d&workflow=open&site=ward-7&period=ward+rounds"
    assert Filters.from_search(link.split("?", 1)[1]).period == "ward rounds"  # as the dashboard reads it
    text = owner_text(burn.labels, burn.facts, at.isoformat(), at, NAMES)
    assert text.startswith("Open patient record at Ward 7 during ward rounds, since 10:01: 50% of runs took over 3 s")
    assert "All hours against the clinical period (ward rounds)" in text
    assert summary(burn.labels, burn.facts, NAMES) == (
        "Open patient record at Ward 7 during ward rounds: objective 'open within 3 s on ward rounds' is burning "
        "its budget 50.0x too fast (1h window, page)")
