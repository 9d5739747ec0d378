"""The overview's board: each workflow at each site rated by its worst part of the day."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from analysis.apdex import Apdex
from analysis.query.figures import FRUSTRATED_SHARE
from dashboard.figures import count_text

__all__ = ["MIN_RATED_RUNS", "TOO_FEW", "all_hours_line", "apdex_rating", "rating_words", "scope_words", "worst_scopes"]

# The fewest runs a rating is given on. The Apdex Technical Specification (v1.1) calls a report
# group of fewer than 100 samples (analysis.apdex.SMALL_GROUP_SAMPLES) a small group and marks its value with
# "*", but still reports it and names no minimum below which a score may not be rated; taking 100
# as the minimum would leave most clinical periods of a week unrated. One run moves a score of n
# runs by 1/n: below 17 runs that is more than 0.06, the width of the narrowest band (Excellent,
# 0.94-1.00), so a single run could decide the rating on its own. Below this the board says "too
# few runs to rate (n = 1)"; from it up to 99 runs it rates, with the specification's "*".
MIN_RATED_RUNS = 17
TOO_FEW = "too few runs"


def worst_scopes(scopes: pd.DataFrame) -> pd.DataFrame:
    """Per workflow and site: the pooled figures beside its worst scope's, and the rating, worst first.

    The worst scope is the one with the lowest Apdex among those of at least
    :data:`MIN_RATED_RUNS` runs (the pooled one when no part is worse); a workflow with fewer runs
    than that in all hours is rated :data:`TOO_FEW`, last. Where the worst still reads Excellent or
    Good although some scope has at least ``FRUSTRATED_SHARE`` of its runs frustrated, the row is
    flagged instead, naming the scope with the most frustrated runs: one run in ten waiting four
    times T or more is never rated Good. So is a Fair row rated over all hours: its frustrated
    part of the day was too small to rate (a workflow run every 2 hours has 7 runs in an hour of
    a week), and the row would otherwise not say where the waits are.
    """
    rows = []
    for (workflow, site), part in scopes.groupby(["workflow", "site"], sort=True):
        pooled = part[part["kind"] == "all"].iloc[0]
        if pooled["samples"] < MIN_RATED_RUNS:
            rows.append({"workflow": workflow, "site": site, "pooled": pooled, "worst": pooled, "rating": TOO_FEW,
                         "order": (2, 0.0)})
            continue
        rated = part[(part["samples"] >= MIN_RATED_RUNS) | (part["kind"] == "all")]
        worst = rated.loc[min(rated.index, key=lambda i: (rated.at[i, "apdex"].score, rated.at[i, "kind"] == "all"))]
        rating = worst["apdex"].rating or "no runs"
        flagged = part[part["frustrated_share"] >= FRUSTRATED_SHARE]
        unrated_worse = rating == "Fair" and worst["kind"] == "all"
        if (rating in ("Excellent", "Good") or unrated_worse) and not flagged.empty:
            worst = flagged.loc[flagged["frustrated_share"].idxmax()]
            rating = "Flagged"
        rows.append({"workflow": workflow, "site": site, "pooled": pooled, "worst": worst, "rating": rating,
                     "order": (0 if rating == "Flagged" else 1, worst["apdex"].score)})
    frame = pd.DataFrame(rows)
    return frame.iloc[sorted(range(len(frame)), key=lambda i: frame.at[i, "order"])].reset_index(drop=True)


def apdex_rating(score: Apdex) -> str:
    """A score's rating in words, as the board gives it: "Good", "too few runs to rate", "no runs"."""
    if score.samples == 0:
        return "no runs"
    return score.rating if score.samples >= MIN_RATED_RUNS else "too few runs to rate"


def rating_words(row: pd.Series | object, threshold_s: float) -> str:
    """The board's rating cell: "Fair during ward rounds", "Flagged: 12% of runs over 12 s at
    14:00-15:00", "Excellent", "too few runs to rate (n = 1)"."""
    rating, worst = row.rating, row.worst
    if rating == TOO_FEW:
        return f"too few runs to rate (n = {count_text(worst['samples'])})"
    where = scope_words(worst)
    if rating == "Flagged":
        where = "(all hours)" if worst["kind"] == "all" else where
        return f"Flagged: {worst['frustrated_share']:.0%} of runs over {4 * threshold_s:g} s {where}"
    return rating if worst["kind"] == "all" else f"{rating} {where}"


def all_hours_line(rows: pd.DataFrame, threshold_s: float, site_title: Callable[[str], str]) -> str:
    """One line under a figure over all hours, saying why the overview may rate the same runs worse:
    "That is over all hours; the overview rates by the worst part of the day, which at Ward 7 is Poor
    during ward rounds (0.62 [3.0]*)." ``rows`` are :func:`worst_scopes`'s, worst first."""
    if rows.empty:
        return ""
    row = rows.iloc[0]
    shown = rating_words(row, threshold_s)
    if row.rating not in ("Flagged", TOO_FEW):
        shown += " (no part of the day rates worse)" if row.worst["kind"] == "all" else f" ({row.worst['apdex']})"
    return (f"That is over all hours; the overview rates by the worst part of the day, which at "
            f"{site_title(row.site)} is {shown}.")


def scope_words(worst: pd.Series) -> str:
    """Where a scope is, in words: "all hours", "during ward rounds", "at 13:00-17:00"."""
    if worst["kind"] == "all":
        return "all hours"
    return f"during {worst['scope']}" if worst["kind"] == "period" else f"at {worst['scope']}"
