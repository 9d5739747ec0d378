"""Stories: the findings as people read them, on a hand-made day with hand-computed figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis import open_store
from analysis.calendar import ClinicalCalendar
from analysis.config import ObjectiveConfig, PeriodConfig, SLAConfig
from analysis.findings import DEFAULT_THRESHOLD_S, FindingInputs, Story, find_stories

UTC = dt.UTC
START, END = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 2, tzinfo=UTC)
ROUNDS_PERIOD = PeriodConfig(name="ward rounds", start=dt.time(8), end=dt.time(10, 30))
CALENDAR = ClinicalCalendar([ROUNDS_PERIOD], {"ward-7": "Europe/London",
                                              "community": "Europe/London"})
ROUNDS = ObjectiveConfig(name="open in 3 s on rounds", workflow="open", threshold_s=3,
                         target=0.9, periods=["ward rounds"])
SLA = SLAConfig(name="95% in 2 s", metric="share_under", threshold_s=2, target=0.95,
                timezone="Europe/London")
CONFIG = SimpleNamespace(
    workflows=[SimpleNamespace(name="open", description="Open a record")],
    sites=[SimpleNamespace(name="ward-7", title="Ward 7", timezone="Europe/London"),
           SimpleNamespace(name="community", title="Community hospital",
                           timezone="Europe/London")],
    slas=[SLA], objectives=[ROUNDS], periods=[ROUNDS_PERIOD], task_volumes=[], changes=[],
    dashboard=SimpleNamespace(timezone="Europe/London"),
)


@pytest.fixture
def store_path(make_rows, rows_store) -> Path:
    """Thursday 1 October 2026, as in test_watermelon: ward-7's ward rounds (07:00-09:30Z) take
    3.1 s a run, every request under 2 s; the rest of the day 1.0 s."""
    rows = []
    t0 = dt.datetime(2026, 10, 1, 7, 0, tzinfo=UTC)
    for i in range(10):
        rows += make_rows(t0 + dt.timedelta(minutes=12 * i), "open", "ward-7",
                          [("find", 0.6), ("meds", 0.6), ("notes", 1.9)])
        rows += make_rows(t0 + dt.timedelta(minutes=12 * i + 3), "open", "community",
                          [("find", 0.4), ("meds", 0.4), ("notes", 0.5)])
    for i in range(100):
        rows += make_rows(dt.datetime(2026, 10, 1, 10, tzinfo=UTC) + dt.timedelta(minutes=6 * i),
                          "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 0.4)])
    return rows_store(rows)


def test_inputs_from_config_name_and_judge() -> None:
    inputs = FindingInputs.from_config(CONFIG)
    assert inputs.workflow("open").title == "Open"
    assert inputs.workflow("open").threshold_s == 3
    assert inputs.workflow("open").threshold_source == "objective 'open in 3 s on rounds'"
    assert inputs.workflow("ward-handover").title == "Ward handover"
    assert inputs.workflow("ward-handover").threshold_s == DEFAULT_THRESHOLD_S
    assert inputs.site_title("community") == "Community hospital"
    assert inputs.site_title("unknown-site") == "unknown-site"


def test_watermelon_story_in_plain_words(store_path: Path) -> None:
    inputs = FindingInputs.from_config(CONFIG)
    with open_store(store_path) as store:
        stories = find_stories(store, inputs, CALENDAR, START, END)
    assert [(s.kind, s.workflow, s.sites, s.period) for s in stories] == [
        ("watermelon", "open", ("ward-7",), "ward rounds")]
    [s] = stories
    assert s.headline == ("Open at Ward 7 during ward rounds: 0% of runs within 3 s against a "
                          "target of 90% (the slowest tenth over 3.1 s), while the SLA “95% in "
                          "2 s” (100.0%) was met.")
    assert s.since == dt.datetime(2026, 10, 1, 7, tzinfo=UTC) and s.since_text == "since Thu 1 Oct or before (the window's first day)"
    assert "_" not in s.headline and "ward-7" not in s.headline
    sla, runs = s.figures[0], s.figures[1]
    assert (sla.label, sla.value, sla.threshold, sla.n, sla.verdict) == (
        "95% in 2 s", "100.0%", "target 95%", 360, "met")
    assert (runs.value, runs.threshold, runs.n, runs.verdict) == ("0%", "target 90%", 10,
                                                                  "breached")
    names = [lens.name for lens in s.lenses]
    assert len(names) == len(set(names))  # each lens once...
    assert all(lens.sla == "95% in 2 s" for lens in s.lenses)  # ...naming the SLA it explains
    assert all("_" not in lens.title for lens in s.lenses)
    assert s.blame is not None and "notes" in s.blame
    assert s.severity_s == pytest.approx(1.0)  # 10 runs x 0.1 s beyond 3 s
    json.dumps(s.detail)  # every number behind it is JSON-able
    json.dumps([dataclasses.asdict(f) for f in s.figures])


def test_a_quiet_day_tells_no_story(make_rows, rows_store) -> None:
    rows = []
    for i in range(100):
        rows += make_rows(dt.datetime(2026, 10, 1, 6, tzinfo=UTC) + dt.timedelta(minutes=6 * i),
                          "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 0.4)])
    with open_store(rows_store(rows)) as store:
        assert find_stories(store, FindingInputs.from_config(CONFIG), CALENDAR, START, END) == []


def test_window_must_be_aware(store_path: Path) -> None:
    with open_store(store_path) as store, pytest.raises(ValueError, match="timezone-aware"):
        find_stories(store, FindingInputs.from_config(CONFIG), CALENDAR,
                     START.replace(tzinfo=None), END)


def test_story_is_frozen() -> None:
    assert dataclasses.is_dataclass(Story) and Story.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_inputs_from_the_dashboards_context_equal_the_configs() -> None:
    """The dashboard and the command line build the same inputs (one source of truth)."""
    from wardwatch.config import load_config
    from wardwatch.wiring import dashboard_context

    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml")
    assert FindingInputs.from_config(dashboard_context(config)) == FindingInputs.from_config(config)
    inputs = FindingInputs.from_config(config)
    assert inputs.workflow("open-patient-record").title == "Open patient record"
    assert inputs.site_title("community-hospital") == "Community hospital"


def test_a_site_behind_a_slow_link_is_blamed_on_the_network(make_rows, rows_store) -> None:
    """All of 1 October, a run every 10 min at both sites: 0.1 s more on each of three requests
    at the community hospital, at every hour alike."""
    rows = []
    for i in range(144):
        start = dt.datetime(2026, 10, 1, tzinfo=UTC) + dt.timedelta(minutes=10 * i)
        rows += make_rows(start, "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 0.4)])
        rows += make_rows(start + dt.timedelta(seconds=5), "open", "community",
                          [("find", 0.4), ("meds", 0.4), ("notes", 0.5)])
    tight = ROUNDS.model_copy(update={"threshold_s": 1.2})
    inputs = FindingInputs.from_config(SimpleNamespace(**{**vars(CONFIG), "objectives": [tight]}))
    with open_store(rows_store(rows)) as store:
        stories = find_stories(store, inputs, CALENDAR, START, END)
    assert [(s.kind, s.sites) for s in stories] == [
        ("unwatched_wait", ("community",)), ("watermelon", ("community",))]
    gap, watermelon = stories
    assert gap.headline.startswith("At Community hospital every request takes about 0.10 s "
                                   "longer than at Ward 7, whatever the request and the hour")
    assert gap.detail["per_request_gap_s"] == pytest.approx(0.1)
    assert watermelon.blame == ("the network: about 0.10 s more on each of its 3 requests in "
                                "series than at Ward 7 (23% of its waiting)")
    assert watermelon.detail["blame_layer"] == "network" and watermelon.detail["blame_step"] is None


def test_an_sla_breached_inside_a_period_no_objective_watches_is_no_nobody_waiting(
        make_rows, rows_store) -> None:
    """Ward rounds fast (the objective met); the afternoon clinic's notes take 2.5 s (the SLA's
    bad requests), inside a clinical period no objective watches: somebody was waiting."""
    rows = []
    for i in range(10):
        rows += make_rows(dt.datetime(2026, 10, 1, 7, tzinfo=UTC) + dt.timedelta(minutes=12 * i),
                          "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 0.4)])
        rows += make_rows(dt.datetime(2026, 10, 1, 12, tzinfo=UTC) + dt.timedelta(minutes=10 * i),
                          "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 2.5)])
    clinics = PeriodConfig(name="clinics", start=dt.time(13), end=dt.time(15))
    strict = SLA.model_copy(update={"target": 0.99})
    config = SimpleNamespace(**{**vars(CONFIG), "slas": [strict],
                                "periods": [ROUNDS_PERIOD, clinics]})
    inputs = FindingInputs.from_config(config)
    with open_store(rows_store(rows)) as store:
        stories = find_stories(store, inputs, None, START, END)
    [s] = [s for s in stories if s.detail.get("slas") == [strict.name]]
    assert s.kind == "unwatched_wait" and "nobody waiting" not in s.headline
    assert "mostly inside clinical periods that no objective watches" in s.headline
    assert s.detail["share_outside_periods"] == 0.0


def test_an_sla_breached_half_outside_clinical_periods_says_how_much_came_inside(make_rows, rows_store) -> None:
    """Six of the SLA's ten bad requests in the evening, outside every clinical period, four in the
    afternoon clinics: not "nobody waiting", but how much of it came while somebody was."""
    rows = []
    for i in range(10):
        rows += make_rows(dt.datetime(2026, 10, 1, 7, tzinfo=UTC) + dt.timedelta(minutes=12 * i),
                          "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 0.4)])
        slow_at = (dt.datetime(2026, 10, 1, 12, tzinfo=UTC) + dt.timedelta(minutes=10 * i) if i < 4
                   else dt.datetime(2026, 10, 1, 18, tzinfo=UTC) + dt.timedelta(minutes=10 * i))
        rows += make_rows(slow_at, "open", "ward-7", [("find", 0.3), ("meds", 0.3), ("notes", 2.5)])
    clinics = PeriodConfig(name="clinics", start=dt.time(13), end=dt.time(15))
    strict = SLA.model_copy(update={"target": 0.99})
    config = SimpleNamespace(**{**vars(CONFIG), "slas": [strict], "periods": [ROUNDS_PERIOD, clinics]})
    with open_store(rows_store(rows)) as store:
        stories = find_stories(store, FindingInputs.from_config(config), None, START, END)
    [s] = [s for s in stories if s.detail.get("slas") == [strict.name]]
    assert s.detail["share_outside_periods"] == pytest.approx(0.6)
    assert s.headline.startswith("SLA breached, 60% of it while nobody waits"), s.headline
    assert s.headline.endswith(" 40% of its bad requests came inside clinical periods, when clinicians wait.")
    in_hours = s.detail["share_in_top_hours"]
    assert (f"Only {in_hours:.0%} of its bad requests came in those hours" in s.headline) == (in_hours < 0.8)


def test_the_findings_medians_over_the_runs_compared_are_not_held_whole(make_rows, rows_store,
                                                                      monkeypatch) -> None:
    """The step growth, the site gaps' request medians and the watermelons' step figures find
    their medians through histograms (analysis.medians): DuckDB's ``median`` over the runs a
    comparison reads held every value (about 1 GB of a month's report at 10M spans)."""
    from analysis.store import Store

    read: list[tuple[str, set[str]]] = []
    arrow = Store._arrow

    def recording(self, query, params=None, tables=None):
        read.append((query, set(tables or {})))
        return arrow(self, query, params, tables)

    monkeypatch.setattr(Store, "_arrow", recording)
    test_a_site_behind_a_slow_link_is_blamed_on_the_network(make_rows, rows_store)
    compared = [q for q, tables in read if tables & {"gap_runs", "roles", "step_runs"}]
    assert {"gap_runs", "step_runs"} <= set().union(*(t for _, t in read))
    assert compared and not [q for q in compared if "median(" in q or "quantile" in q]
