"""A small JSON path subset, enough to read FHIR Bundles and resources.

Grammar: ``$`` followed by any number of segments:

- ``.name`` or ``['name']`` / ``["name"]``: a member of an object;
- ``[n]``: an element of an array (negative counts from the end);
- ``[*]`` or ``.*``: every element of an array (or every member value of an object).

``$.total``, ``$.entry[0].resource.id``, ``$.entry[*].resource.id``, ``$.link[0].url``.
A path that does not match gives no values rather than an error: the caller decides whether
absence is a failure (an ``exists`` assertion, an extraction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonPath", "JsonPathError"]

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_SEGMENT = re.compile(
    rf"""\.(?P<dot>{_NAME})
      | \.\*(?P<dotstar>)
      | \[(?P<index>-?\d+)\]
      | \[\*(?P<star>)\]
      | \['(?P<sq>[^']*)'\]
      | \["(?P<dq>[^"]*)"\]""",
    re.VERBOSE,
)

_WILDCARD = object()


class JsonPathError(ValueError):
    """The path text is not in the supported subset."""


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path.

    Attributes:
        text: the source text.
        segments: member names (``str``), indices (``int``) and wildcards, in order.
    """

    text: str
    segments: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse ``text``; raise :class:`JsonPathError` when it is outside the subset."""
        if not text.startswith("$"):
            raise JsonPathError(f"JSON path {text!r} must start with '$'")
        segments: list[Any] = []
        position = 1
        while position < len(text):
            match = _SEGMENT.match(text, position)
            if match is None:
                raise JsonPathError(
                    f"JSON path {text!r}: cannot read {text[position:]!r} "
                    "(supported: .name, ['name'], [n], [*], .*)"
                )
            groups = match.groupdict()
            if groups["dot"] is not None:
                segments.append(groups["dot"])
            elif groups["index"] is not None:
                segments.append(int(groups["index"]))
            elif groups["sq"] is not None:
                segments.append(groups["sq"])
            elif groups["dq"] is not None:
                segments.append(groups["dq"])
            else:
                segments.append(_WILDCARD)
            position = match.end()
        return cls(text=text, segments=tuple(segments))

    @property
    def has_wildcard(self) -> bool:
        """True when the path can match several values."""
        return any(segment is _WILDCARD for segment in self.segments)

    def find(self, document: Any) -> list[Any]:
        """Every value the path selects in ``document``, in document order."""
        current = [document]
        for segment in self.segments:
            following: list[Any] = []
            for value in current:
                if segment is _WILDCARD:
                    if isinstance(value, list):
                        following.extend(value)
                    elif isinstance(value, dict):
                        following.extend(value.values())
                elif isinstance(segment, int):
                    if isinstance(value, list) and -len(value) <= segment < len(value):
                        following.append(value[segment])
                elif isinstance(value, dict) and segment in value:
                    following.append(value[segment])
            current = following
        return current

    def count(self, document: Any) -> int:
        """How many values the path selects.

        With a wildcard, the number of matches. Without one, the length of the selected value
        when it is an array, 0 when nothing matches, else 1 (``$.entry`` counts entries).
        """
        found = self.find(document)
        if self.has_wildcard:
            return len(found)
        if not found:
            return 0
        return len(found[0]) if isinstance(found[0], list) else 1

    def __str__(self) -> str:
        return self.text
