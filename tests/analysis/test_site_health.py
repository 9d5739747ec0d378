"""Site health from the observatory's file and the store's newest runs; a quiet site is said so."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from analysis.site_health import site_health
from store import schema

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
SITES = [("ward-7", "Ward 7"), ("outpatient-clinic", "Outpatient clinic"), ("community-hospital", "Community hospital")]


def write_sites(data_dir: Path, senders: list[dict]) -> None:
    path = data_dir / schema.SITE_HEALTH_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"senders": senders}), encoding="utf-8")


def test_quiet_reporting_and_never_heard(tmp_path: Path) -> None:
    write_sites(tmp_path, [
        {"sender": "ward-7", "last_heard": (NOW - dt.timedelta(minutes=48)).timestamp(), "spool_runs": 0,
         "clock_offset_s": -0.4, "probe_version": "0.1.0"},
        {"sender": "outpatient-clinic", "last_heard": (NOW - dt.timedelta(seconds=30)).timestamp(), "spool_runs": 12,
         "spool_oldest_age_s": 1800.0},
    ])
    ward, clinic, community = site_health(tmp_path, SITES, NOW, timezone="Europe/London")
    assert ward.quiet and ward.sentence == "Ward 7 has not reported since 08:12."
    assert ward.clock_offset_s == -0.4 and ward.probe_version == "0.1.0"
    assert not clinic.quiet and "12 runs were waiting in its spool" in clinic.sentence
    assert community.quiet and community.sentence == "Community hospital has never reported."


def test_a_measured_run_in_the_store_counts_as_hearing_from_the_site(tmp_path: Path) -> None:
    (ward, *_) = site_health(tmp_path, SITES, NOW, last_runs={"ward-7": NOW - dt.timedelta(minutes=2)})
    assert not ward.quiet and ward.last_heard == NOW - dt.timedelta(minutes=2)


def test_an_unreadable_file_is_no_news_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "observatory").mkdir()
    (tmp_path / schema.SITE_HEALTH_FILE).write_text("{not json", encoding="utf-8")
    assert all(h.quiet for h in site_health(tmp_path, SITES, NOW))
