"""Errors raised by the store."""

from __future__ import annotations

__all__ = ["StoreError"]


class StoreError(Exception):
    """The data directory is not a usable Wardwatch store (missing, another schema version, corrupt)."""
