"""Rollups kept on disk beside the segments they summarise, so a dashboard that starts again does
not roll up the whole store again.

A segment never changes once written, so the rollup of a set of segments, made with one
:class:`~analysis.rollup.RollupConfig`, stays true for as long as those segments are live. Each
rollup is saved under ``DATA_DIR/rollups/<config>/<unit>/``: one Parquet file per frame and a
``unit.json`` naming its segments (paths relative to the data directory) and its time bounds.
``<config>`` is a digest of the configuration and of :data:`FORMAT`, so a dashboard with other
thresholds, or a newer Wardwatch, never reads a rollup it did not make. A unit directory is
written under a temporary name and renamed into place, so a reader sees a whole rollup or none.
Units whose segments have left (compaction, retention) are deleted when they are noticed.

Saving is a convenience: where the data directory cannot be written (a read-only analyst's
copy, or a ``rollups`` entry that leads out of the data directory), rollups live in memory only,
as before, and the reason is logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.rollup import GRID_S, LEVELS_S, RollupConfig, SegmentRollup
from analysis.rollup import _plain as plain  # the frames as build_rollup leaves them
from analysis.store import to_pandas

__all__ = ["DIRECTORY", "FORMAT", "RollupFiles"]

DIRECTORY = "rollups"
FORMAT = 1  # raise when SegmentRollup or its frames change shape
_LEVEL_TABLES = ("runs", "run_hist", "steps", "step_hist", "slow_hist")
_ROW_TABLES = ("loose_steps", "partial_runs", "top_runs", "top_steps", "missed")
_META = "unit.json"
_NAME_COLUMNS = ("workflow", "site", "step", "status", "error_type", "reason")  # those _plain shares
_log = logging.getLogger(__name__)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class RollupFiles:
    """The saved rollups of one data directory and configuration (one process writes at a time
    per unit; several processes may share the directory: a unit is renamed into place whole).

    Args:
        data_dir: the store's data directory.
        config: the configuration the rollups were made with.
    """

    def __init__(self, data_dir: Path, config: RollupConfig) -> None:
        self._data_dir = Path(data_dir)
        self._root = self._data_dir / DIRECTORY
        self._dir = self._root / _digest(f"{FORMAT}:{config!r}")
        self._writable: bool | None = None  # decided on the first save

    def load(self, segments: Iterable[Path]) -> dict[tuple[Path, ...], SegmentRollup]:
        """Every saved unit made only of ``segments``, each segment in one unit at most; units
        whose segments are not all live any more are deleted."""
        live = {self._name(p): p for p in segments}
        found: dict[tuple[Path, ...], SegmentRollup] = {}
        taken: set[str] = set()
        for unit_dir in sorted(self._dir.iterdir()) if self._dir.is_dir() else []:
            names = self._segments_of(unit_dir)
            if names is None:
                continue
            if not set(names) <= set(live):
                self._delete(unit_dir)  # a segment left: this rollup can never be used again
                continue
            if taken & set(names):
                continue
            try:
                rollup = _read(unit_dir)
            except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
                _log.warning("ignoring the saved rollup %s: %s", unit_dir, exc)
                continue
            found[tuple(live[n] for n in names)] = rollup
            taken |= set(names)
        return found

    def save(self, unit: Sequence[Path], rollup: SegmentRollup) -> None:
        """Save ``rollup`` (of the segments ``unit``), unless the data directory cannot be written."""
        if not self._may_write():
            return
        names = [self._name(p) for p in unit]
        final = self._dir / _digest("\n".join(names))
        if final.exists():
            return
        staging = self._dir / f".tmp-{uuid.uuid4().hex}"
        try:
            staging.mkdir(parents=True)
            _write(staging, names, rollup)
            os.replace(staging, final)
        except OSError as exc:
            if not final.exists():  # another process renaming the same unit first is no error
                _log.info("a rollup was not saved (%s); it stays in memory", exc)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def forget(self, unit: Sequence[Path]) -> None:
        """Delete the saved rollup of ``unit`` (its segments have left the store)."""
        self._delete(self._dir / _digest("\n".join(self._name(p) for p in unit)))

    def _name(self, segment: Path) -> str:
        return Path(segment).relative_to(self._data_dir).as_posix()

    def _segments_of(self, unit_dir: Path) -> list[str] | None:
        if unit_dir.name.startswith(".") or not unit_dir.is_dir():
            return None
        try:
            meta = json.loads((unit_dir / _META).read_text(encoding="utf-8"))
            return [str(n) for n in meta["segments"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _may_write(self) -> bool:
        if self._writable is None:
            root = self._root.resolve() if self._root.exists() else self._root.parent.resolve() / DIRECTORY
            inside = root.is_relative_to(self._data_dir.resolve())
            self._writable = inside and os.access(self._data_dir, os.W_OK)
            if not self._writable:
                reason = "it leads out of the data directory" if not inside else "the data directory is read-only"
                _log.info("rollups are not saved under %s: %s; they stay in memory", self._root, reason)
        return self._writable

    def _delete(self, unit_dir: Path) -> None:
        if self._may_write():
            shutil.rmtree(unit_dir, ignore_errors=True)


def _write(directory: Path, names: list[str], rollup: SegmentRollup) -> None:
    for table in _LEVEL_TABLES:
        for level, frame in getattr(rollup, table).items():
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), directory / f"{table}-{level}.parquet")
    for name in _ROW_TABLES:
        pq.write_table(pa.Table.from_pandas(getattr(rollup, name), preserve_index=False),
                       directory / f"{name}.parquet")

    def ns(value: pd.Timestamp | None) -> int | None:
        return None if value is None else int(value.value)

    meta = {"format": FORMAT, "segments": names, "first_start_ns": ns(rollup.first_start),
            "last_start_ns": ns(rollup.last_start)}
    (directory / _META).write_text(json.dumps(meta), encoding="utf-8")


def _read(directory: Path) -> SegmentRollup:
    meta = json.loads((directory / _META).read_text(encoding="utf-8"))

    def frame(name: str) -> pd.DataFrame:
        path = directory / f"{name}.parquet"
        names = [c for c in pq.read_schema(path).names if c in _NAME_COLUMNS]
        return _frame(pq.read_table(path, read_dictionary=names), names)

    def stamp(value: int | None) -> pd.Timestamp | None:
        return None if value is None else pd.Timestamp(value, unit="ns", tz="UTC")

    # Saved sorted by window, as build_rollup left them.
    levels = {table: {level: frame(f"{table}-{level}") for level in LEVELS_S if level >= GRID_S[table]}
              for table in _LEVEL_TABLES}
    return SegmentRollup(**levels, **{name: frame(name) for name in _ROW_TABLES},
                         first_start=stamp(meta["first_start_ns"]), last_start=stamp(meta["last_start_ns"]))


def _frame(table: pa.Table, names: list[str]) -> pd.DataFrame:
    """A saved frame as build_rollup left it. Name columns, read as dictionaries, become object
    columns that share one Python string per distinct name (as ``_plain`` makes them), straight
    from the dictionary: factorizing them again took most of a load."""
    frame = plain(to_pandas(table.drop_columns(names)))
    for name in names:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            values = np.array([*column.dictionary.to_pylist(), None], dtype=object)
            codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            values = values[codes]
        else:  # a column with no value at all was saved as nulls
            values = np.array(column.to_pylist(), dtype=object)
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    return frame[table.column_names]
