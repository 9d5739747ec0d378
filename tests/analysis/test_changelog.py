"""Changes kept as data: recorded in the data directory, replacing a configured one of the same title."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from analysis.changelog import CHANGES_FILE, ChangeLogError, effective_changes, record_change, recorded_changes
from analysis.config import ChangeEventConfig

UTC = dt.UTC
CONFIGURED = ChangeEventConfig(at="2026-10-14T07:00:00Z", title="Release 24.3", workflows=["open"],
                               description="Added a filter to the medication list.")


def test_nothing_recorded_leaves_the_configured_changes(tmp_path: Path) -> None:
    assert recorded_changes(tmp_path) == []
    assert effective_changes([CONFIGURED], tmp_path) == [CONFIGURED]
    assert effective_changes([CONFIGURED], None) == [CONFIGURED]


def test_a_recorded_change_replaces_the_configured_one_of_its_title(tmp_path: Path) -> None:
    moved = CONFIGURED.model_copy(update={"at": dt.datetime(2026, 11, 11, 7, tzinfo=UTC)})
    other = ChangeEventConfig(at="2026-11-01T06:00:00+00:00", title="Network upgrade")
    assert record_change(tmp_path, moved) is None
    assert record_change(tmp_path, other) is None
    assert recorded_changes(tmp_path) == [other, moved]  # in time order
    assert effective_changes([CONFIGURED], tmp_path) == [other, moved]
    # Recording the title again moves it, and says what it replaced.
    later = moved.model_copy(update={"at": dt.datetime(2026, 11, 12, 7, tzinfo=UTC)})
    assert record_change(tmp_path, later) == moved
    assert recorded_changes(tmp_path) == [other, later]
    text = (tmp_path / CHANGES_FILE).read_text()
    assert text.startswith("# Changes to the EPR") and "at: '2026-11-12T07:00:00Z'" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_writers_at_once_lose_no_change(tmp_path: Path) -> None:
    def add(i: int) -> None:
        record_change(tmp_path, ChangeEventConfig(at=dt.datetime(2026, 11, 1, i, tzinfo=UTC), title=f"R{i}"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [c.title for c in recorded_changes(tmp_path)] == [f"R{i}" for i in range(12)]


@pytest.mark.parametrize("text, message", [
    ("at: now\n", "expected a list of changes"),
    ("- {title: Release 24.3}\n", "change 1: at: Field required"),
    ("- {at: '2026-11-11T07:00:00', title: Release 24.3}\n", "change 1: at: Value error, at needs a UTC offset"),
    ("- [unclosed\n", "not YAML"),
])
def test_a_bad_file_is_named_with_the_entry(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / CHANGES_FILE).write_text(text)
    with pytest.raises(ChangeLogError, match=message) as caught:
        effective_changes([CONFIGURED], tmp_path)
    assert str(tmp_path / CHANGES_FILE) in str(caught.value)
    with pytest.raises(ChangeLogError):  # a bad file is left as it is, never overwritten
        record_change(tmp_path, CONFIGURED)
    assert (tmp_path / CHANGES_FILE).read_text() == text
