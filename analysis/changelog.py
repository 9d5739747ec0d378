"""Changes kept as data: the releases recorded in the store's data directory, beside the configured ones.

Every reader (the command-line report, the dashboard, the notebooks) asks :func:`effective_changes`
for the changes to compare before and after, so they all see the same ones. A change is recorded
in ``<data dir>/changes.yaml`` (the same fields as the configuration's ``changes:`` section) by
``wardwatch change add`` (a trust's release calendar can be fed in that way) and by the demo,
which moves the testbed's release into the weeks of history it simulates.

A recorded change replaces a configured one of the same title: the record says when it really
happened. Recording a title already recorded moves it. The file is rewritten whole under a
temporary name and renamed into place, with an exclusive lock held for the read-modify-write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from analysis.config import ChangeEventConfig

__all__ = ["CHANGES_FILE", "ChangeLogError", "effective_changes", "record_change", "recorded_changes"]

CHANGES_FILE = "changes.yaml"
_HEADER = (
    "# Changes to the EPR (releases, configuration changes) whose impact Wardwatch measures.\n"
    "# Written by `wardwatch change add` and by the demo; the same fields as the configuration's\n"
    "# `changes:` section. A change here replaces a configured one of the same title.\n"
)


class ChangeLogError(ValueError):
    """The recorded changes file cannot be read (the message names the file and entry)."""


def _path(data_dir: Path | str) -> Path:
    return Path(data_dir) / CHANGES_FILE


def recorded_changes(data_dir: Path | str) -> list[ChangeEventConfig]:
    """The changes recorded in ``data_dir`` (none when the file is absent), in time order.

    Raises:
        ChangeLogError: the file is not a list of changes.
    """
    path = _path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ChangeLogError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ChangeLogError(f"{path}: not YAML: {exc}") from exc
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ChangeLogError(f"{path}: expected a list of changes (at, title, workflows, description)")
    changes = []
    for index, entry in enumerate(entries, start=1):
        try:
            changes.append(ChangeEventConfig.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}" for error in exc.errors()
            )
            raise ChangeLogError(f"{path}: change {index}: {problems}") from exc
    return sorted(changes, key=lambda c: c.at)


def effective_changes(configured: Iterable[ChangeEventConfig], data_dir: Path | str | None) -> list[ChangeEventConfig]:
    """The configured changes with the recorded ones of ``data_dir``, a recorded title replacing a
    configured one; in time order. Every reader asks this, so every reader sees the same changes.

    Raises:
        ChangeLogError: the recorded changes file cannot be read.
    """
    recorded = recorded_changes(data_dir) if data_dir is not None else []
    titles = {change.title for change in recorded}
    kept = [change for change in configured if change.title not in titles]
    return sorted([*kept, *recorded], key=lambda c: c.at)


def record_change(data_dir: Path | str, change: ChangeEventConfig) -> ChangeEventConfig | None:
    """Record ``change`` in ``data_dir``; the change of the same title it replaces, if any.

    Raises:
        ChangeLogError: the existing file cannot be read (it is left as it is).
        OSError: the file cannot be written.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        changes = recorded_changes(directory)
        replaced = next((c for c in changes if c.title == change.title), None)
        changes = sorted([*(c for c in changes if c.title != change.title), change], key=lambda c: c.at)
        _write(_path(directory), changes)
    return replaced


def _entry(change: ChangeEventConfig) -> dict[str, object]:
    entry: dict[str, object] = {"at": change.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                                "title": change.title}
    if change.workflows:
        entry["workflows"] = list(change.workflows)
    if change.description:
        entry["description"] = change.description
    if change.until is not None:
        entry["until"] = change.until.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return entry


def _write(path: Path, changes: Sequence[ChangeEventConfig]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = yaml.safe_dump([_entry(c) for c in changes], sort_keys=False, allow_unicode=True, width=120)
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(_HEADER + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the changes file's lock, so two writers never lose each other's change."""
    with open(directory / f".{CHANGES_FILE}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
