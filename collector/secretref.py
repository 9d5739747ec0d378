"""Secrets by reference: ``${env:NAME}`` or ``${file:PATH}``, resolved at run time.

A config value that is a reference is resolved when a request needs it, from an ``environ``
mapping handed in (tests never touch ``os.environ``) or from a file (trailing newline removed).
Any other value is a literal. Resolved values are never logged, and errors name the reference,
never the value.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SecretRef",
    "SecretResolutionError",
    "is_reference",
    "parse_reference",
    "resolve_secret",
    "secret_reference_error",
]

# A secret file is a small regular text file: a FIFO would block, /dev/zero never ends.
MAX_SECRET_FILE_BYTES = 64 * 1024
_REFERENCE = re.compile(r"^\$\{(?P<kind>env|file):(?P<name>[^}]+)\}$")


class SecretResolutionError(LookupError):
    """A referenced secret is not available (variable unset, file missing or empty)."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed reference: ``kind`` is ``"env"`` or ``"file"``, ``name`` the variable or path."""

    kind: str
    name: str


def is_reference(value: str) -> bool:
    """True when ``value`` is written as ``${...}`` (whether or not well formed)."""
    return value.startswith("${")


def parse_reference(value: str) -> SecretRef | None:
    """The reference in ``value``, or None for a literal."""
    match = _REFERENCE.match(value)
    if match is None:
        return None
    return SecretRef(kind=match.group("kind"), name=match.group("name").strip())


def secret_reference_error(value: str) -> str | None:
    """A message when ``value`` looks like a reference but is malformed, else None."""
    if is_reference(value) and parse_reference(value) is None:
        return "a secret reference is written ${env:NAME} or ${file:PATH}"
    return None


def resolve_secret(value: str, environ: Mapping[str, str]) -> str:
    """The secret ``value`` stands for.

    Args:
        value: a literal, ``${env:NAME}`` or ``${file:PATH}``.
        environ: where ``env`` references are looked up.

    Raises:
        SecretResolutionError: the variable is unset or empty, the file unreadable or empty.
    """
    reference = parse_reference(value)
    if reference is None:
        if is_reference(value):
            raise SecretResolutionError("malformed secret reference (write ${env:NAME} or ${file:PATH})")
        return value
    if reference.kind == "env":
        resolved = environ.get(reference.name, "")
        if not resolved:
            raise SecretResolutionError(f"environment variable {reference.name} is not set")
        return resolved
    resolved = _read_secret_file(reference.name).rstrip("\r\n")
    if not resolved:
        raise SecretResolutionError(f"secret file {reference.name} is empty")
    return resolved


def _read_secret_file(name: str) -> str:
    """A secret file's text: only a regular file, at most ``MAX_SECRET_FILE_BYTES``, UTF-8."""
    try:
        path = Path(name).expanduser()
    except RuntimeError as exc:  # ~user that does not exist
        raise SecretResolutionError(f"secret file {name}: no such user's home directory") from exc
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise SecretResolutionError(f"secret file {name} cannot be read: {reason}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SecretResolutionError(f"secret file {name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretResolutionError(f"secret file {name} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretResolutionError(f"secret file {name} is not UTF-8 text") from exc
