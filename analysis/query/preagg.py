"""The pre-aggregates: :func:`~analysis.query.sources.materialize` of each closed 15-minute bucket,
kept on disk beside the segments and maintained as data arrives.

Layout: ``<store>/aggregates/<definitions digest>/`` holds ``runs-<lo>-<hi>.parquet`` and
``steps-<lo>-<hi>.parquet`` per built range ``[lo, hi)`` (epoch seconds, on bucket edges, within
one UTC day) and ``state.json``: the ranges built, and the live segments they were built from
(``seen``, per partition). A closed day's range also has its coarser levels
(:data:`~analysis.query.sources.LEVELS_S`), ``runs-<level>s-<lo>-<hi>.parquet`` (hour rows,
then day rows), each summed from the level below it, never from the spans: one definition of the
rows; and its kept slowest runs and their steps (``top-<lo>-<hi>.parquet``,
``topsteps-<lo>-<hi>.parquet``: :func:`~analysis.query.sources.kept_slowest`), and the slowest of
each of its hours (``tophours-<lo>-<hi>.parquet``), for a window holding part of the day; and
its missed slots (``missed-<lo>-<hi>.parquet``: :func:`~analysis.query.sources.missed_slot_spans`,
"" in the state when it had none), so a month's missed slots are not read from every span. A file and the state are written under a temporary name and renamed into place, so a
reader sees a whole range or none.

:func:`refresh` (called by the store's maintenance after each pass, and by ``wardwatch
upgrade-store``) builds the buckets closed since the last pass (a bucket closes
:data:`CLOSE_AFTER` after its end), from exactly the segments it listed. A segment that was not
``seen`` and holds spans inside a built range (late data: a spool sent hours later) makes the
ranges it touches stale: they are built again. A merged segment whose inputs were all seen brings
nothing new. A day dropped by retention loses its ranges. A day's ranges are merged into one file
once the day is closed, and its hour and day rows are summed from it then (a stale day loses its
levels with its range, and gets them again when it is built again: until then it is read exactly).
The open day's ranges are merged into one up to its last closed hour as each hour closes, with
the slowest of each of those hours (``tophours``), so today's runs are read from the runs only for
the hour not closed yet.

:func:`coverage` is the reader's side: the built ranges it may trust now (those of days still in
the store, and none that a segment not yet seen touches), so a reader never counts a span twice
or misses one: what the ranges do not cover is read exactly.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from analysis.query import dialect
from analysis.query.sources import (
    BUCKET_S,
    LEVELS_S,
    THRESHOLDS,
    Definitions,
    exact_runs,
    exact_steps,
    kept_slowest,
    listed_steps,
    materialize,
    missed_slot_spans,
)
from store import StoreError, check_store, create_views, list_segments
from store.config import apply_duckdb_settings
from store.segments import read_replaces

__all__ = ["CLOSE_AFTER", "DIRECTORY", "MISSED", "Built", "Coverage", "coverage", "live_segments", "refresh", "segments_between"]

DIRECTORY = "aggregates"
CLOSE_AFTER = dt.timedelta(minutes=5)  # a run's spans are written when it ends: wait for them
_DAY_S = 86_400
_STATE = "state.json"
_LOCK = ".lock"
_COMPACTED_PREFIX = "c-"
_log = logging.getLogger(__name__)

Range = tuple[int, int]  # [lo, hi) in epoch seconds


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``folder`` (through any symbolic link) lies inside the data directory: Wardwatch
    writes only there."""
    return folder.resolve().is_relative_to(Path(path).resolve())


def live_segments(path: Path) -> list[Path]:
    """The store's live segments (what a figure computed now reads)."""
    return list_segments(Path(path))


def segments_between(path: Path, lo: dt.datetime, hi: dt.datetime) -> list[Path]:
    """The live segments that may hold spans starting in ``[lo, hi)`` (by their extents)."""
    a, b = lo.timestamp(), hi.timestamp()
    return [s for s in list_segments(Path(path)) if _extent(s)[0] < b and a < _extent(s)[1]]


def directory(path: Path, defs: Definitions) -> Path:
    return Path(path) / DIRECTORY / defs.digest


_states: dict[str, tuple[int, dict]] = {}


def _load_state(folder: Path) -> dict:
    """The state as last saved (parsed again only when the file changed: it is replaced whole)."""
    path = folder / _STATE
    try:
        stamp = path.stat().st_mtime_ns
        cached = _states.get(str(path))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        state = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return {"ranges": [], "seen": {}}
    _states[str(path)] = (stamp, state)
    return state


def _save_state(folder: Path, state: dict) -> None:
    temp = folder / f".{_STATE}.{uuid.uuid4().hex}.tmp"
    temp.write_text(json.dumps(state, sort_keys=True))
    os.replace(temp, folder / _STATE)


def _by_partition(segments: Iterable[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for segment in segments:
        out.setdefault(segment.parent.name, []).append(segment)
    return out


def _day_of(partition: str) -> int | None:
    try:
        day = dt.date.fromisoformat(partition.split("=", 1)[1])
    except (IndexError, ValueError):
        return None
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


_extents: dict[str, Range] = {}


def _extent(segment: Path) -> Range:
    """The 15-minute buckets a segment's spans start and end in (a run's span covers its steps),
    from the Parquet statistics (cached: segments never change); its whole day and the next when
    the statistics cannot be read."""
    key = str(segment)
    if key in _extents:
        return _extents[key]
    day = _day_of(segment.parent.name) or 0
    extent: Range = (day, day + 2 * _DAY_S)
    try:
        meta = pq.read_metadata(segment)
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        ts, du = names.index("Timestamp"), names.index("Duration")
        lo, hi = None, None
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            t, dd = group.column(ts).statistics, group.column(du).statistics
            if t is None or dd is None or not t.has_min_max or not dd.has_min_max:
                raise ValueError("no statistics")
            start, end = _seconds(t.min), _seconds(t.max) + dd.max / 1e9
            lo = start if lo is None else min(lo, start)
            hi = end if hi is None else max(hi, end)
        if lo is not None and hi is not None:
            extent = (int(lo // BUCKET_S) * BUCKET_S, (int(hi // BUCKET_S) + 1) * BUCKET_S)
    except (OSError, ValueError, KeyError):
        pass
    _extents[key] = extent
    return extent


def _seconds(value: object) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return int(value) / 1e9  # type: ignore[call-overload]


_replaces: dict[str, frozenset[str]] = {}


def _pending(live: dict[str, list[Path]], seen: dict[str, list[str]]) -> list[Path]:
    """Live segments whose spans the built ranges may not hold: not seen, and (for a merged
    segment) replacing some segment that was not seen either."""
    out = []
    for partition, segments in live.items():
        known = set(seen.get(partition, ()))
        for name in list(known):
            if name.startswith(_COMPACTED_PREFIX):
                known |= _replaced(live_dir(segments), name)
        for segment in segments:
            if segment.name in known:
                continue
            if segment.name.startswith(_COMPACTED_PREFIX) and _replaced(segment.parent, segment.name) <= known:
                continue
            out.append(segment)
    return out


def live_dir(segments: list[Path]) -> Path:
    return segments[0].parent


def _replaced(partition: Path, name: str) -> frozenset[str]:
    key = str(partition / name)
    if key not in _replaces:
        try:
            _replaces[key] = read_replaces(partition / name)
        except (FileNotFoundError, OSError, ValueError):
            return frozenset()
        except Exception:  # an unreadable footer: nothing known about it
            return frozenset()
    return _replaces[key]


def _overlaps(a: Range, b: Range) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True)
class Built:
    """One trusted range and its files: ``files[(kind, level_s)]`` (``runs`` or ``steps``: 900 for
    the 15-minute rows, and the coarser levels of a closed day; ``top``, a closed day's kept
    slowest runs, ``topsteps``, their steps, ``tophours``, the slowest of each of its hours, and
    ``missed``, its missed slots (``""``: it had none), at 86,400)."""

    lo: int
    hi: int
    files: dict[tuple[str, int], str]


@dataclass(frozen=True)
class Coverage:
    """The built ranges a reader may use now, and their files."""

    ranges: tuple[Range, ...]
    run_files: tuple[str, ...]
    step_files: tuple[str, ...]
    built: tuple[Built, ...] = ()
    # Where the live segments hold spans (their extents, merged; None: not known): a reader need
    # not read exactly a time no span starts in.
    data: tuple[Range, ...] | None = None


def _key(kind: str, level_s: int) -> str:
    """The state's name of a range's file of ``kind`` at ``level_s`` (the 15-minute rows: ``kind``)."""
    return kind if level_s == BUCKET_S else f"{kind}@{level_s}"


def _file_keys(entry: dict) -> list[str]:
    return [k for k in entry if k not in ("lo", "hi") and entry[k]]


def _trusted(folder: Path, live: dict[str, list[Path]], state: dict) -> list[dict]:
    days = {_day_of(p) for p in live}
    stale = [_extent(s) for s in _pending(live, state["seen"])]
    return [r for r in state["ranges"] if r["lo"] // _DAY_S * _DAY_S in days
            and not any(_overlaps((r["lo"], r["hi"]), e) for e in stale)]


def coverage(path: Path, defs: Definitions, segments: Sequence[Path] | None = None) -> Coverage:
    """The ranges of the pre-aggregate a reader may trust now (see the module's docstring)."""
    folder = directory(path, defs)
    if not _inside(Path(path), folder):
        return Coverage((), (), ())
    state = _load_state(folder)
    if not state["ranges"]:
        return Coverage((), (), ())
    segments = segments if segments is not None else list_segments(Path(path))
    # The same state (the object itself: it is parsed again when the file changes) and the same
    # segments give the same coverage, which a page asks for several times per request.
    key = (str(folder), tuple(segments))
    with _coverages_lock:
        cached = _coverages.get(key)
    if cached is not None and cached[0] is state:
        return cached[1]
    found = _coverage(folder, state, segments)
    with _coverages_lock:
        _coverages[key] = (state, found)
        while len(_coverages) > 8:
            del _coverages[next(iter(_coverages))]
    return found


_coverages: dict[tuple[str, tuple[Path, ...]], tuple[dict, Coverage]] = {}
_coverages_lock = threading.Lock()


def _coverage(folder: Path, state: dict, segments: Sequence[Path]) -> Coverage:
    live = _by_partition(segments)
    ranges = sorted(_trusted(folder, live, state), key=lambda r: r["lo"])
    data: list[Range] = []
    for lo, hi in sorted(_extent(s) for s in segments):
        if data and lo <= data[-1][1]:
            data[-1] = (data[-1][0], max(data[-1][1], hi))
        else:
            data.append((lo, hi))
    built = tuple(Built(r["lo"], r["hi"], {(kind, level): str(folder / r[_key(kind, level)])
                                           for kind in ("runs", "steps", TOP, TOP_STEPS, TOP_HOURS)
                                           for level in LEVELS_S
                                           if r.get(_key(kind, level))}
                        | ({(MISSED, _DAY_S): str(folder / r[_key(MISSED, _DAY_S)]) if r[_key(MISSED, _DAY_S)] else ""}
                           if _key(MISSED, _DAY_S) in r else {})) for r in ranges)
    return Coverage(tuple((r["lo"], r["hi"]) for r in ranges),
                    tuple(str(folder / r["runs"]) for r in ranges if r.get("runs")),
                    tuple(str(folder / r["steps"]) for r in ranges if r.get("steps")), built, tuple(data))


def _gaps(lo: int, hi: int, covered: Iterable[Range]) -> list[Range]:
    out, at = [], lo
    for a, b in sorted(covered):
        if b <= at or a >= hi:
            continue
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < hi:
        out.append((at, hi))
    return out


def _connect(segments: Sequence[Path], defs: Definitions) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    apply_duckdb_settings(con)
    con.execute("SET TimeZone = 'UTC'")
    for statement in dialect.SESSION:
        con.execute(statement)
    create_views(con, list(segments))
    con.register(THRESHOLDS, defs.table())
    return con


def _when(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _write(con: duckdb.DuckDBPyConnection, query: str, params: list, target: Path, order: str = "moment") -> bool:
    """``query``'s rows as a Parquet file at ``target`` (renamed into place); False when empty."""
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    con.execute(f"CREATE OR REPLACE TEMP TABLE built AS {query}", params)
    if con.execute("SELECT count(*) FROM built").fetchone()[0] == 0:  # type: ignore[index]
        return False
    con.execute(f"COPY (SELECT * FROM built ORDER BY {order}) TO '{temp}' (FORMAT parquet)")
    os.replace(temp, target)
    return True


def _build(con: duckdb.DuckDBPyConnection, folder: Path, defs: Definitions, lo: int, hi: int) -> dict:
    interval = [(_when(lo), _when(hi))]
    entry: dict = {"lo": lo, "hi": hi}
    for kind, exact in (("runs", exact_runs), ("steps", exact_steps)):
        sql, params = exact(defs, interval)
        name = f"{kind}-{lo}-{hi}.parquet"
        if _write(con, materialize(kind, sql), params, folder / name):
            entry[kind] = name
    return entry


def _remove(folder: Path, entry: dict) -> None:
    for key in _file_keys(entry):
        (folder / entry[key]).unlink(missing_ok=True)


TOP = "top"  # a closed day's kept slowest runs (sources.kept_slowest), as files[(TOP, DAY_S)]
TOP_STEPS = "topsteps"  # their steps (sources.listed_steps), as files[(TOP_STEPS, DAY_S)]
TOP_HOURS = "tophours"  # the slowest of each hour (sources.kept_slowest per hour), as files[(TOP_HOURS, DAY_S)]
MISSED = "missed"  # a closed day's missed slots (sources.missed_slot_spans), as files[(MISSED, DAY_S)]; "": none
_HOUR_S = 3_600


def _levels(con: duckdb.DuckDBPyConnection, folder: Path, entry: dict) -> dict:
    """A closed day's range with its coarser levels: each level's rows summed from the level
    below (:func:`~analysis.query.sources.materialize` without the histogram: its values are
    representatives already), so hour and day rows are the 15-minute rows grouped again; and
    its kept slowest runs, read from the spans it was built from."""
    entry = dict(entry)
    if entry.get("runs") and not entry.get(_key(TOP, _DAY_S)):
        name = f"{TOP}-{entry['lo']}-{entry['hi']}.parquet"
        sql, params = kept_slowest(_when(entry["lo"]), _when(entry["hi"]))
        if _write(con, sql, params, folder / name, order="rank_all"):
            entry[_key(TOP, _DAY_S)] = name
    if entry.get("runs") and not entry.get(_key(TOP_HOURS, _DAY_S)):
        name = f"{TOP_HOURS}-{entry['lo']}-{entry['hi']}.parquet"
        sql, params = kept_slowest(_when(entry["lo"]), _when(entry["hi"]), per_s=_HOUR_S)
        if _write(con, sql, params, folder / name, order="start"):
            entry[_key(TOP_HOURS, _DAY_S)] = name
    if entry.get(_key(TOP, _DAY_S)) and _key(TOP_STEPS, _DAY_S) not in entry:
        # Their steps, for the runs page's chart: from the day's partition and the next (a run
        # starting before midnight may end after it).
        days = [_when(entry["lo"]).date(), _when(entry["hi"]).date()]
        kept = dialect.read_files([str(folder / entry[_key(TOP, _DAY_S)])])
        sql, params = listed_steps(days, f"trace_id IN (SELECT trace_id FROM {kept})")
        name = f"{TOP_STEPS}-{entry['lo']}-{entry['hi']}.parquet"
        written = _write(con, sql, params, folder / name, order="start, trace_id")
        entry[_key(TOP_STEPS, _DAY_S)] = name if written else ""  # "": none of them has steps
    if _key(MISSED, _DAY_S) not in entry:  # of the day's spans, by their start (as a reader slices them)
        name = f"{MISSED}-{entry['lo']}-{entry['hi']}.parquet"
        written = _write(con, missed_slot_spans(1), [_when(entry["lo"]), _when(entry["hi"])], folder / name,
                         order="slot, trace_id")
        entry[_key(MISSED, _DAY_S)] = name if written else ""
    for kind in ("runs", "steps"):
        for finer, level in zip(LEVELS_S, LEVELS_S[1:]):
            source, key = entry.get(_key(kind, finer)), _key(kind, level)
            if not source or entry.get(key):
                continue
            name = f"{kind}-{level}s-{entry['lo']}-{entry['hi']}.parquet"
            rows = f"SELECT * FROM {dialect.read_files([str(folder / source)])}"
            if _write(con, materialize(kind, rows, level, histogram=False), [], folder / name):
                entry[key] = name
    return entry


def _wants_levels(entry: dict, closed: int) -> bool:
    if not (entry["lo"] % _DAY_S == 0 and entry["hi"] - entry["lo"] == _DAY_S and entry["hi"] <= closed):
        return False
    levels = any(entry.get(kind) and not entry.get(_key(kind, LEVELS_S[-1])) for kind in ("runs", "steps"))
    return levels or _key(MISSED, _DAY_S) not in entry or bool(entry.get("runs")) and not (
        entry.get(_key(TOP, _DAY_S)) and _key(TOP_STEPS, _DAY_S) in entry and entry.get(_key(TOP_HOURS, _DAY_S)))


def refresh(path: Path, defs: Definitions, *, now: dt.datetime | None = None,
            progress: Callable[[int, int], None] | None = None) -> int:
    """Build the pre-aggregate of every bucket closed by ``now`` not built yet (or built before
    a late segment touched it); returns how many days had a range built.

    Any process may call it: one refreshes at a time (a lock file), another returns 0 at once.

    Args:
        progress: ``progress(done, total)`` after each day built.
    """
    path = Path(path)
    try:
        check_store(path)
    except StoreError:  # no store (yet), or one to upgrade first: nothing to build
        return 0
    folder = directory(path, defs)
    if not _inside(path, folder):
        _log.warning("%s leads out of the data directory %s: no pre-aggregates are built or read "
                     "(the figures are read exactly)", path / DIRECTORY, path)
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / _LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        return _refresh(path, folder, defs, now, progress)


def _refresh(path: Path, folder: Path, defs: Definitions, now: dt.datetime | None,
             progress: Callable[[int, int], None] | None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    closed = int((now - CLOSE_AFTER).timestamp()) // BUCKET_S * BUCKET_S
    state = _load_state(folder)
    segments = list_segments(path)
    live = _by_partition(segments)
    trusted = _trusted(folder, live, state)
    kept = {(r["lo"], r["hi"]) for r in trusted}
    for entry in state["ranges"]:
        if (entry["lo"], entry["hi"]) not in kept:
            _remove(folder, entry)
    days = sorted(d for d in (_day_of(p) for p in live) if d is not None and d < closed)
    work = []
    for day in days:
        for lo, hi in _gaps(day, min(day + _DAY_S, closed), [(r["lo"], r["hi"]) for r in trusted]):
            work.append((day, lo, hi))
    ranges = [dict(r) for r in trusted]
    built_days = sorted({day for day, _, _ in work})
    if work or any(_wants_levels(r, closed) for r in ranges):
        con = _connect(segments, defs)
        try:
            for i, day in enumerate(built_days):
                for _, lo, hi in (w for w in work if w[0] == day):
                    ranges.append(_build(con, folder, defs, lo, hi))
                ranges = _consolidate(con, folder, day, closed, ranges)
                ranges = _open_day_hours(con, folder, day, closed, ranges)
                if progress is not None:
                    progress(i + 1, len(built_days))
            # Closed days without their coarser levels (just closed, or built by a version without them).
            ranges = [_levels(con, folder, r) if _wants_levels(r, closed) else r for r in ranges]
        finally:
            con.close()
    new_state = {"ranges": sorted(ranges, key=lambda r: r["lo"]),
                 "seen": {p: sorted(s.name for s in segs) for p, segs in live.items()}}
    if new_state != state:  # a pass with nothing new writes nothing
        _save_state(folder, new_state)
        _sweep(folder, new_state)
    return len(built_days)


def _consolidate(con: duckdb.DuckDBPyConnection, folder: Path, day: int, closed: int, ranges: list[dict]) -> list[dict]:
    """A closed day's ranges as one file of each kind (a day holds at most 96 buckets)."""
    mine = [r for r in ranges if day <= r["lo"] < day + _DAY_S]
    if len(mine) < 2 or day + _DAY_S > closed:
        return ranges
    merged: dict = {"lo": min(r["lo"] for r in mine), "hi": max(r["hi"] for r in mine)}
    for kind in ("runs", "steps"):
        files = [str(folder / r[kind]) for r in mine if r.get(kind)]
        if files:
            name = f"{kind}-{merged['lo']}-{merged['hi']}.parquet"
            if _write(con, f"SELECT * FROM {dialect.read_files(files)}", [], folder / name):
                merged[kind] = name
    for r in mine:
        for key in _file_keys(r):
            if r[key] != merged.get(key):
                (folder / r[key]).unlink(missing_ok=True)
    return [r for r in ranges if r not in mine] + [merged]


def _open_day_hours(con: duckdb.DuckDBPyConnection, folder: Path, day: int, closed: int,
                    ranges: list[dict]) -> list[dict]:
    """The open day's ranges up to its last closed hour as one, with the slowest of each of its
    whole hours (``tophours``), so a window holding today reads today's closed hours from them
    and only the hour not closed yet from the runs. The hours kept at the last pass are kept
    again (each hour's ranks are its own); only the hours closed since are read from the spans."""
    if day + _DAY_S <= closed:
        return ranges
    hour = closed // _HOUR_S * _HOUR_S
    mine = sorted((r for r in ranges if day <= r["lo"] and r["hi"] <= hour), key=lambda r: r["lo"])
    if not mine or mine[0]["lo"] != day or any(a["hi"] != b["lo"] for a, b in zip(mine, mine[1:])):
        return ranges
    first, key = mine[0], _key(TOP_HOURS, _DAY_S)
    if len(mine) == 1 and key in first:
        return ranges
    merged: dict = {"lo": day, "hi": mine[-1]["hi"]}
    for kind in ("runs", "steps"):
        files = [str(folder / r[kind]) for r in mine if r.get(kind)]
        name = f"{kind}-{merged['lo']}-{merged['hi']}.parquet"
        if len(files) == 1 and len(mine) == 1:
            merged[kind] = first[kind]
        elif files and _write(con, f"SELECT * FROM {dialect.read_files(files)}", [], folder / name):
            merged[kind] = name
    # The hours kept before are whole only if the range they were ranked in ended on the hour.
    since = first["hi"] if first.get(key) and first["hi"] % _HOUR_S == 0 else day
    arms, params = [], []
    if since > day:
        arms.append(f"SELECT * FROM {dialect.read_files([str(folder / first[key])])}")
    if since < merged["hi"]:
        sql, params = kept_slowest(_when(since), _when(merged["hi"]), per_s=_HOUR_S)
        arms.append(f"SELECT * FROM ({sql})")
    name = f"{TOP_HOURS}-{merged['lo']}-{merged['hi']}.parquet"
    merged[key] = name if _write(con, " UNION ALL ".join(arms), params, folder / name, order="start") else ""
    for r in mine:
        for k in _file_keys(r):
            if r[k] != merged.get(k):
                (folder / r[k]).unlink(missing_ok=True)
    return [r for r in ranges if r not in mine] + [merged]


def _sweep(folder: Path, state: dict) -> None:
    """Files no range names (left by a crash between a write and the state)."""
    named = {r[k] for r in state["ranges"] for k in _file_keys(r)}
    for entry in folder.iterdir():
        if entry.name not in (_STATE, _LOCK) and entry.name not in named and not entry.name.endswith(".tmp"):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
