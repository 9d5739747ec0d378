"""Rollups saved beside the segments: a dashboard that starts again loads them instead of rolling
up the store again, and gets the same frames; units whose segments leave are deleted; a data
directory that cannot be written keeps rollups in memory only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.rollup import RollupCache, RollupConfig, SegmentRollup
from analysis.rollup_files import DIRECTORY, RollupFiles
from store import compact, write_spans
from tests.analysis.test_aggregates import _T, _month_rows

_TABLES = ("runs", "run_hist", "steps", "step_hist", "slow_hist")
_ROWS = ("loose_steps", "partial_runs", "top_runs", "top_steps", "missed")


def _cache(path: Path, config: RollupConfig = RollupConfig.of(_T, 3.0)) -> RollupCache:
    return RollupCache(path, config, files=RollupFiles(path, config))


@pytest.fixture
def store_path(tmp_path: Path, make_rows) -> Path:
    path = tmp_path / "store"
    for batch in _month_rows(make_rows):
        write_spans(path, batch)
    return path


def _assert_same(ours: SegmentRollup, theirs: SegmentRollup) -> None:
    for table in _TABLES:
        assert getattr(ours, table).keys() == getattr(theirs, table).keys()
        for level, frame in getattr(ours, table).items():
            pd.testing.assert_frame_equal(frame, getattr(theirs, table)[level], check_dtype=True)
    for name in _ROWS:
        pd.testing.assert_frame_equal(getattr(ours, name), getattr(theirs, name), check_dtype=True)
    assert (ours.first_start, ours.last_start) == (theirs.first_start, theirs.last_start)


def test_a_restarted_cache_loads_the_saved_rollups_and_builds_nothing(store_path: Path, monkeypatch) -> None:
    built = _cache(store_path).snapshot()
    assert any((store_path / DIRECTORY).rglob("unit.json"))

    def no_build(self, segments):  # noqa: ANN001
        raise AssertionError(f"rolled up again: {segments}")

    monkeypatch.setattr(RollupCache, "_build", no_build)
    loaded = _cache(store_path).snapshot()
    assert loaded.segments == built.segments and loaded.units == built.units
    for ours, theirs in zip(loaded.rollups, built.rollups, strict=True):
        _assert_same(ours, theirs)


def test_another_configuration_does_not_read_them(store_path: Path, monkeypatch) -> None:
    _cache(store_path).snapshot()
    calls = []
    original = RollupCache._build
    monkeypatch.setattr(RollupCache, "_build", lambda self, segments: calls.append(1) or original(self, segments))
    _cache(store_path, RollupConfig.of({"open": 9.0}, 3.0)).snapshot()
    assert calls, "a rollup made with other thresholds was used"


def test_units_whose_segments_left_are_deleted(store_path: Path) -> None:
    cache = _cache(store_path)
    cache.snapshot()
    before = {p.parent for p in (store_path / DIRECTORY).rglob("unit.json")}
    report = compact(store_path, small_bytes=10**9, min_segments=2, grace_s=3600)
    assert report.skipped is False
    cache.snapshot()
    after = {p.parent for p in (store_path / DIRECTORY).rglob("unit.json")}
    assert after and not before & after


def test_a_stale_unit_saved_by_another_process_is_deleted_on_load(store_path: Path) -> None:
    _cache(store_path).snapshot()
    compact(store_path, small_bytes=10**9, min_segments=2, grace_s=3600)
    stale = {p.parent for p in (store_path / DIRECTORY).rglob("unit.json")}
    _cache(store_path).snapshot()
    assert not stale & {p.parent for p in (store_path / DIRECTORY).rglob("unit.json")}


def test_rollups_that_cannot_be_saved_stay_in_memory(store_path: Path, caplog) -> None:
    """Here a file stands where the directory would go (as a read-only directory would refuse
    it): the dashboard works as before and says once why nothing is saved."""
    (store_path / DIRECTORY).write_text("not a directory", encoding="utf-8")
    with caplog.at_level("INFO", logger="analysis.rollup_files"):
        snapshot = _cache(store_path).snapshot()
    assert snapshot.rollups
    assert "stays in memory" in caplog.text
    assert (store_path / DIRECTORY).read_text(encoding="utf-8") == "not a directory"


def test_a_rollups_directory_leading_out_of_the_data_directory_is_not_written(store_path: Path,
                                                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store_path / DIRECTORY).symlink_to(outside, target_is_directory=True)
    assert _cache(store_path).snapshot().rollups
    assert not any(outside.iterdir())
