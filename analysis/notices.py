"""Notices to clinicians, per site: written when an alert fires and resolves, or by an operator.

``<store.path>/notices.json``, a list replaced whole (a temporary file, fsynced, renamed into
place), so the dashboard's status page reads it while ``wardwatch alerts`` writes it. A notice
carries plain words only (the clinician text of an alert), never patient data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["ALL_SITES", "DELIVERY_FILE", "NOTICES_FILE", "Notice", "add_notice", "edit_notice", "read_delivery",
           "read_notices",
           "write_delivery", "write_json"]

NOTICES_FILE = Path("notices.json")
DELIVERY_FILE = Path("alerting") / "delivery.json"  # receivers with notifications waiting
ALL_SITES = "all"
KEEP = 500  # the newest notices kept


@dataclass(frozen=True)
class Notice:
    id: str
    site: str  # a site id, or "all"
    at: str  # ISO 8601, UTC
    text: str
    source: str  # "alert" or "operator"
    key: str | None = None  # an alert's fingerprint and status: written once
    edited: str | None = None  # ISO 8601, UTC: when an operator last changed its text


def read_notices(data_dir: Path, *, site: str | None = None, limit: int = 20) -> list[Notice]:
    """The newest notices first (for ``site``: its own and those for every site)."""
    try:
        raw = json.loads((data_dir / NOTICES_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    notices = [Notice(**item) for item in raw]
    if site is not None:
        notices = [n for n in notices if n.site in (site, ALL_SITES)]
    return sorted(notices, key=lambda n: n.at, reverse=True)[:limit]


def add_notice(data_dir: Path, site: str, text: str, at: dt.datetime, *, source: str = "operator",
               key: str | None = None) -> Notice | None:
    """Add a notice; None when one with the same ``key`` was written already."""
    if not text.strip():
        raise ValueError("a notice needs text")
    with _locked(data_dir):
        existing = read_notices(data_dir, limit=KEEP)
        moment = at.astimezone(dt.UTC).isoformat()
        if key is not None and any(n.key == key for n in existing):
            return None
        if any(n.site == site and n.text == text.strip() and n.at == moment for n in existing):
            return None  # two alerts saying the same to the same site at once (a burn seen on two windows)
        notice = Notice(secrets.token_hex(4), site, moment, text.strip(), source, key)
        write_json(data_dir / NOTICES_FILE, [asdict(n) for n in [notice, *existing][:KEEP]])
    return notice


def edit_notice(data_dir: Path, notice_id: str, text: str, at: dt.datetime) -> Notice:
    """Replace a notice's text (an alert's too: the operator knows more); it keeps its place and
    says when it was updated. Raises KeyError for an unknown id, ValueError for no text."""
    if not text.strip():
        raise ValueError("a notice needs text")
    with _locked(data_dir):
        existing = read_notices(data_dir, limit=KEEP)
        found = next((n for n in existing if n.id == notice_id), None)
        if found is None:
            raise KeyError(notice_id)
        edited = replace(found, text=text.strip(), edited=at.astimezone(dt.UTC).isoformat())
        write_json(data_dir / NOTICES_FILE, [asdict(edited if n.id == notice_id else n) for n in existing])
    return edited


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """An exclusive lock for a read-modify-write of the notices (alerts and operators both write)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f".{NOTICES_FILE.name}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_delivery(data_dir: Path, waiting: list[dict[str, Any]]) -> None:
    """Record the receivers whose notifications wait (``receiver, waiting, since, error``)."""
    write_json(data_dir / DELIVERY_FILE, waiting)


def read_delivery(data_dir: Path) -> list[dict[str, Any]]:
    """The receivers whose notifications wait, as :func:`write_delivery` left them."""
    try:
        return list(json.loads((data_dir / DELIVERY_FILE).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return []


def write_json(path: Path, document: Any) -> None:
    """Replace ``path`` with ``document`` as JSON, whole: a temporary file, fsynced, renamed."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
