"""How ids read in words, for every reader of the analysis (findings, report, dashboard)."""

from __future__ import annotations

__all__ = ["step_title"]


def step_title(step: str) -> str:
    """A step as people read it: "chart heart rate", not ``chart-heart-rate``."""
    return step.replace("-", " ").replace("_", " ")
