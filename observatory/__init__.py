"""The central observatory: OTLP/HTTP in from every site's probe (and the EPR's own server spans),
per-site tokens, durable acknowledgement, dedupe; spans land in the store through ``write_spans``.

Imports ``store`` only; the composition root (``wardwatch``) resolves tokens and starts it. Public
names are imported on first use (PEP 562): the config loader reads ``observatory.config`` without
loading the web server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from observatory.auth import Forbidden, Principal, Tokens, Unauthorized
    from observatory.config import ObservatoryConfig, SourceConfig, TLSFilesConfig
    from observatory.dedupe import RecentSpans
    from observatory.ingest import Busy, Ingest, Stored
    from observatory.health import HealthLog, SiteHealth
    from observatory.server import ObservatoryServer, ObservatoryServerError, create_app

_SOURCES = {
    "Busy": "observatory.ingest",
    "Forbidden": "observatory.auth",
    "Ingest": "observatory.ingest",
    "ObservatoryConfig": "observatory.config",
    "ObservatoryServer": "observatory.server",
    "ObservatoryServerError": "observatory.server",
    "Principal": "observatory.auth",
    "RecentSpans": "observatory.dedupe",
    "HealthLog": "observatory.health",
    "SiteHealth": "observatory.health",
    "SourceConfig": "observatory.config",
    "Stored": "observatory.ingest",
    "TLSFilesConfig": "observatory.config",
    "Tokens": "observatory.auth",
    "Unauthorized": "observatory.auth",
    "create_app": "observatory.server",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'observatory' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
