"""How ids read in words, for every reader of the analysis (findings, report, dashboard)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["hour_ranges", "step_title"]


def step_title(step: str) -> str:
    """A step as people read it: "chart heart rate", not ``chart-heart-rate``."""
    return step.replace("-", " ").replace("_", " ")


def hour_ranges(hours: Sequence[int], dash: str = "\u2013") -> str:
    """Hours of the day as ranges: ``[2, 3, 14]`` -> ``02:00–04:00, 14:00–15:00``."""
    ranges: list[list[int]] = []
    for hour in sorted(hours):
        if ranges and hour == ranges[-1][1]:
            ranges[-1][1] = hour + 1
        else:
            ranges.append([hour, hour + 1])
    return ", ".join(f"{a:02d}:00{dash}{b % 24:02d}:00" for a, b in ranges)
