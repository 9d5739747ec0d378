"""Packages a probe process does without, made unimportable before anything asks for them.

A probe only runs workflows and writes spans, yet pyarrow imports numpy when it is installed (17
MB) and pandas on its first conversion of Python objects (34 MB), only to ask whether what it is
given is theirs. Told they are absent (pyarrow supports both being absent), it goes on without
them. This module imports nothing heavy, so the command can call :func:`forgo` before pyarrow is
imported.
"""

from __future__ import annotations

import importlib.abc
import sys

__all__ = ["forgo"]


class _Forgone(importlib.abc.MetaPathFinder):
    """Answers every import of the given packages with ModuleNotFoundError."""

    def __init__(self, packages: frozenset[str]) -> None:
        self.packages = packages

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"a probe process does without {fullname}", name=fullname)
        return None


def forgo(*packages: str) -> None:
    """Make ``packages`` unimportable in this process, except those something has loaded already.

    Call it only in a process that is a probe and nothing else.
    """
    forgone = set().union(*(f.packages for f in sys.meta_path if isinstance(f, _Forgone)))
    wanted = frozenset(p for p in packages if p not in sys.modules and p not in forgone)
    if wanted:
        sys.meta_path.insert(0, _Forgone(wanted))
