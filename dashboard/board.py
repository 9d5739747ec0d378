"""The overview's board: each workflow at each site rated by its worst part of the day."""

from __future__ import annotations

import pandas as pd

from analysis.query.figures import FRUSTRATED_SHARE

__all__ = ["scope_words", "worst_scopes"]


def worst_scopes(scopes: pd.DataFrame) -> pd.DataFrame:
    """Per workflow and site: the pooled figures beside its worst scope's, and the rating, worst first.

    The worst scope is the one with the lowest Apdex (the pooled one when no part is worse). Where
    that still reads Excellent or Good although some scope has at least ``FRUSTRATED_SHARE`` of its
    runs frustrated, the row is flagged instead, naming the scope with the most frustrated runs:
    one run in ten waiting four times T or more is never rated Good.
    """
    rows = []
    for (workflow, site), part in scopes.groupby(["workflow", "site"], sort=True):
        pooled = part[part["kind"] == "all"].iloc[0]
        worst = part.loc[min(part.index, key=lambda i: (part.at[i, "apdex"].score, part.at[i, "kind"] == "all"))]
        rating = worst["apdex"].rating or "no runs"
        flagged = part[part["frustrated_share"] >= FRUSTRATED_SHARE]
        if rating in ("Excellent", "Good") and not flagged.empty:
            worst = flagged.loc[flagged["frustrated_share"].idxmax()]
            rating = "Flagged"
        rows.append({"workflow": workflow, "site": site, "pooled": pooled, "worst": worst, "rating": rating,
                     "order": (rating != "Flagged", worst["apdex"].score)})
    frame = pd.DataFrame(rows)
    return frame.iloc[sorted(range(len(frame)), key=lambda i: frame.at[i, "order"])].reset_index(drop=True)


def scope_words(worst: pd.Series) -> str:
    """Where a scope is, in words: "all hours", "during ward rounds", "at 13:00-17:00"."""
    if worst["kind"] == "all":
        return "all hours"
    return f"during {worst['scope']}" if worst["kind"] == "period" else f"at {worst['scope']}"
