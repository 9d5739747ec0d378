"""Silences for the unplanned: label matchers, a reason, an end; kept durably, expiring by themselves.

``<store.path>/alerting/silences.json``, replaced whole as the state is. A silenced alert is still
evaluated and kept, but no webhook notification is sent for it while the silence holds. Where an
Alertmanager receiver is configured, :func:`add_silence`'s caller also creates the silence there
(:func:`alertmanager_silence`), so one command silences both paths.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from alerting.state import write_json

__all__ = ["SILENCES_FILE", "add_silence", "alertmanager_silence", "expire_alertmanager_silence",
           "expire_silence", "is_silenced", "load_silences"]

SILENCES_FILE = Path("alerting") / "silences.json"


def load_silences(data_dir: Path) -> list[dict[str, Any]]:
    """Every silence, expired ones included (newest last)."""
    try:
        return list(json.loads((data_dir / SILENCES_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return []


def _save(data_dir: Path, silences: Sequence[Mapping[str, Any]]) -> None:
    write_json(data_dir / SILENCES_FILE, list(silences))


def add_silence(data_dir: Path, matchers: Mapping[str, str], until: dt.datetime, reason: str,
                now: dt.datetime, alertmanager_ids: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Record a silence from ``now`` until ``until``; returns it (with its id)."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher KEY=VALUE")
    if until <= now:
        raise ValueError(f"--until {until.isoformat()} is not in the future")
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    silence = {"id": secrets.token_hex(4), "matchers": dict(matchers), "starts_at": now.isoformat(),
               "ends_at": until.isoformat(), "reason": reason.strip(), "created_at": now.isoformat(),
               "alertmanager": dict(alertmanager_ids or {})}
    _save(data_dir, [*load_silences(data_dir), silence])
    return silence


def expire_silence(data_dir: Path, silence_id: str, now: dt.datetime) -> dict[str, Any]:
    """End a silence now; returns it. Raises KeyError for an unknown id."""
    silences = load_silences(data_dir)
    for silence in silences:
        if silence["id"] == silence_id:
            if dt.datetime.fromisoformat(silence["ends_at"]) > now:
                silence["ends_at"] = now.isoformat()
                _save(data_dir, silences)
            return silence
    raise KeyError(silence_id)


def is_active(silence: Mapping[str, Any], now: dt.datetime) -> bool:
    return dt.datetime.fromisoformat(silence["starts_at"]) <= now < dt.datetime.fromisoformat(silence["ends_at"])


def is_silenced(labels: Mapping[str, str], silences: Sequence[Mapping[str, Any]], now: dt.datetime) -> bool:
    """Whether an active silence matches every one of its matchers to these labels."""
    return any(is_active(s, now) and all(labels.get(k) == v for k, v in s["matchers"].items()) for s in silences)


def alertmanager_silence(url: str, matchers: Mapping[str, str], now: dt.datetime, until: dt.datetime,
                         reason: str, timeout_s: float) -> str:
    """Create the same silence in an Alertmanager (API v2); its silence id. Raises httpx.HTTPError."""
    response = httpx.post(f"{url.rstrip('/')}/api/v2/silences", timeout=timeout_s, json={
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": now.astimezone(dt.UTC).isoformat(), "endsAt": until.astimezone(dt.UTC).isoformat(),
        "createdBy": "wardwatch", "comment": reason})
    response.raise_for_status()
    return str(response.json()["silenceID"])


def expire_alertmanager_silence(url: str, silence_id: str, timeout_s: float) -> None:
    """Expire a silence in an Alertmanager (API v2). Raises httpx.HTTPError."""
    httpx.delete(f"{url.rstrip('/')}/api/v2/silence/{silence_id}", timeout=timeout_s).raise_for_status()
