"""When an error budget runs out at the rate it burns now (the one place that computes it).

Burn rate as the SRE workbook defines it: at burn rate ``r`` a budget meant to last ``period`` is
spent at ``r / period`` per unit of time, so what remains of it lasts ``remaining * period / r``.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["budget_remaining", "exhaustion_text", "time_to_exhaustion"]


def budget_remaining(bad_ratio: float, objective: float, elapsed: dt.timedelta, period: dt.timedelta) -> float:
    """The share of the period's budget left after ``elapsed`` of it at ``bad_ratio`` (may be negative).

    Consumed = burn rate x elapsed / period, burn rate = bad ratio / (1 - objective).
    """
    if not 0 < objective < 1:
        raise ValueError(f"objective {objective} is not a ratio in (0, 1)")
    if period <= dt.timedelta(0):
        raise ValueError("period must be positive")
    return 1.0 - bad_ratio / (1.0 - objective) * (elapsed / period)


def time_to_exhaustion(remaining: float, burn_rate: float, period: dt.timedelta) -> dt.timedelta | None:
    """How long ``remaining`` (a share of the budget) lasts at ``burn_rate``; None if it never runs out."""
    if burn_rate <= 0:
        return None
    if remaining <= 0:
        return dt.timedelta(0)
    return remaining * period / burn_rate


def exhaustion_text(at: dt.datetime, exhausted_at: dt.datetime | None, window_end: dt.datetime | None,
                    timezone: str, allowance: str = "the month's allowance") -> str:
    """"at this rate the month's allowance is used up on Thursday 14:00", in ``timezone``'s local time."""
    if exhausted_at is None or (window_end is not None and exhausted_at >= window_end):
        return f"at this rate {allowance} lasts until the window ends"
    if exhausted_at <= at:
        return f"{allowance} is already used up"
    local = exhausted_at.astimezone(ZoneInfo(timezone))
    now_local = at.astimezone(ZoneInfo(timezone))
    if local.date() == now_local.date():
        day = "today"
    elif (local.date() - now_local.date()).days < 7:
        day = f"on {local:%A}"
    else:
        day = f"on {local:%A} {local.day} {local:%b}"
    return f"at this rate {allowance} is used up {day} {local:%H:%M}"
