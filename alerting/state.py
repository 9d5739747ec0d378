"""Alert state kept durably in the data directory, so a restart neither re-notifies nor forgets.

One JSON document, ``<data dir>/alerting/state.json``, replaced whole on every change (written
under a temporary name, fsynced, renamed into place): a crash leaves the old state or the new,
never half of one. It holds every alert (pending, firing or resolved; since when; facts; last
notified per receiver), each receiver's groups (when each was last notified, and with which
alerts) and the outbox: notifications not yet delivered, with their attempts and next try.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis.notices import write_json

__all__ = ["STATE_FILE", "empty_state", "load_state", "save_state", "write_json"]

STATE_FILE = Path("alerting") / "state.json"
VERSION = 1


def empty_state() -> dict[str, Any]:
    return {"version": VERSION, "alerts": {}, "groups": {}, "outbox": [], "delivery": {}, "planned": {}, "next_id": 1}


def load_state(data_dir: Path) -> dict[str, Any]:
    """The saved state, or an empty one when there is none yet."""
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty_state()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: alert state unreadable ({exc}); move it aside to start afresh") from exc
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise ValueError(f"{path}: not an alert state of version {VERSION}")
    return {**empty_state(), **state}


def save_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Replace the saved state atomically."""
    write_json(data_dir / STATE_FILE, state)
