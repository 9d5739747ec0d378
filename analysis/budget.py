"""Error budgets, burn rates and budgeting methods, as the references define them.

- Google SRE Workbook, "Alerting on SLOs": budget = 1 - objective; burn rate = observed bad ratio /
  budget; budget consumed in a window = burn rate x window / period. A multi-window alert fires
  when both its long and its short window (1/12 of the long one) burn faster than its threshold;
  the threshold of an alert that spends ``p`` of the period's budget within its long window is
  ``p x period / long window`` (2% in 1 h of 30 days: 14.4).
- OpenSLO v1 budgeting methods: ``Occurrences`` (good events / all events), ``Timeslices`` (good
  slices / all slices, a slice good when its ratio reaches ``timeSliceTarget``) and
  ``RatioTimeslices`` (the mean of the slices' ratios).
- OpenSLO duration units: ``s``, ``m`` (minutes), ``h``, ``d``, ``w``, ``M`` (months), ``Q``, ``Y``.
- Calendar windows in a time zone: a calendar month is from local midnight on its first day to
  local midnight on the next month's first day, so its length follows daylight saving.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = [
    "BUDGETING_METHODS",
    "WORKBOOK_WINDOWS",
    "AlertWindow",
    "BudgetResult",
    "Duration",
    "alert_windows",
    "alert_windows_from_sloth",
    "budget_consumed",
    "budget_from_ratios",
    "budget_minutes",
    "burn_rate",
    "burn_rate_alerts",
    "burn_rate_alerts_from_counts",
    "burn_rate_threshold",
    "calendar_month",
    "error_budget",
    "month_budget_minutes",
    "occurrences",
    "occurrences_from_counts",
    "parse_duration",
    "ratio_timeslices",
    "slice_ratios",
    "timeslices",
]

BUDGETING_METHODS = ("Occurrences", "Timeslices", "RatioTimeslices")
EmptySlices = Literal["skip", "good", "bad"]

# -- Durations -----------------------------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_CALENDAR_UNITS = {"M": 1, "Q": 3, "Y": 12}  # in months
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwMQY])\s*$")


@dataclass(frozen=True)
class Duration:
    """An OpenSLO duration: an amount of a unit (``m`` is minutes, ``M`` months)."""

    amount: int
    unit: str

    @property
    def is_calendar(self) -> bool:
        """Months, quarters and years have no fixed length."""
        return self.unit in _CALENDAR_UNITS

    @property
    def months(self) -> int:
        """The length in months, for ``M``, ``Q`` and ``Y``.

        Raises:
            ValueError: a fixed duration (seconds to weeks).
        """
        if not self.is_calendar:
            raise ValueError(f"{self} is a fixed duration, not a number of months")
        return self.amount * _CALENDAR_UNITS[self.unit]

    def to_timedelta(self) -> dt.timedelta:
        """The fixed length.

        Raises:
            ValueError: months, quarters and years, whose length depends on the calendar.
        """
        if self.is_calendar:
            raise ValueError(f"{self} has no fixed length: use calendar windows for months")
        return dt.timedelta(seconds=self.amount * _UNIT_SECONDS[self.unit])

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse an OpenSLO duration such as ``5m``, ``1h``, ``28d``, ``2w`` or ``1M``.

    Raises:
        ValueError: not ``<positive integer><unit>`` with a unit among s m h d w M Q Y.
    """
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"not a duration: {text!r} (expected e.g. 5m, 1h, 28d, 1M; m is minutes, M months)"
        )
    return Duration(int(match.group(1)), match.group(2))


def _as_timedelta(value: dt.timedelta | str | Duration) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, Duration):
        return value.to_timedelta()
    return parse_duration(value).to_timedelta()


# -- Budget arithmetic (SRE workbook) ------------------------------------------------------------


def _check_objective(objective: float) -> float:
    objective = float(objective)
    if not 0.0 < objective < 1.0:
        raise ValueError(f"an objective is a ratio in (0, 1) such as 0.999, got {objective!r}")
    return objective


def error_budget(objective: float) -> float:
    """The error budget of an objective: ``1 - objective`` (0.001 for 99.9%)."""
    return float(1 - Fraction(repr(_check_objective(objective))))


def burn_rate(bad_ratio: float, objective: float) -> float:
    """How fast the budget burns: the observed bad ratio divided by the budget (1 = exactly on budget)."""
    return float(bad_ratio) / error_budget(objective)


def budget_consumed(
    rate: float, window: dt.timedelta | str, period: dt.timedelta | str
) -> float:
    """The share of the period's budget a burn ``rate`` sustained over ``window`` consumes."""
    return rate * (_as_timedelta(window) / _as_timedelta(period))


def burn_rate_threshold(
    budget_percent: float, window: dt.timedelta | str, period: dt.timedelta | str
) -> float:
    """The burn rate that consumes ``budget_percent`` % of the period's budget within ``window``.

    ``burn_rate_threshold(2, "1h", "30d") == 14.4``; ``(2, "1h", "28d") == 13.44``.
    """
    w, p = _as_timedelta(window), _as_timedelta(period)
    ratio = Fraction(int(p.total_seconds() * 1_000_000), int(w.total_seconds() * 1_000_000))
    return float(Fraction(repr(float(budget_percent))) * ratio / 100)


@dataclass(frozen=True)
class AlertWindow:
    """One multi-window, multi-burn-rate alert.

    Attributes:
        severity: ``page`` or ``ticket``.
        budget_percent: the share of the period's budget spent within ``long_window`` at the
            threshold (2 for the fast page).
        long_window: the window the burn rate is judged on.
        short_window: the window that must also burn, so the alert stops soon after the burn does.
        period: the objective's period (30 days).
    """

    severity: str
    budget_percent: float
    long_window: dt.timedelta
    short_window: dt.timedelta
    period: dt.timedelta

    @property
    def burn_rate(self) -> float:
        """The threshold both windows' burn rates must exceed."""
        return burn_rate_threshold(self.budget_percent, self.long_window, self.period)


# The SRE workbook's recommended parameters: (severity, % of budget, long window, short window).
WORKBOOK_WINDOWS: tuple[tuple[str, float, str, str], ...] = (
    ("page", 2, "1h", "5m"),
    ("page", 5, "6h", "30m"),
    ("ticket", 10, "3d", "6h"),
)


def alert_windows(
    period: dt.timedelta | str = "30d",
    table: Iterable[tuple[str, float, str, str]] = WORKBOOK_WINDOWS,
) -> list[AlertWindow]:
    """The multi-window alerts for an objective over ``period`` (the workbook's by default).

    For 30 days the thresholds are 14.4, 6 and 1; for 28 days 13.44, 5.6 and 0.933.
    """
    p = _as_timedelta(period)
    return [
        AlertWindow(severity, float(percent), _as_timedelta(long), _as_timedelta(short), p)
        for severity, percent, long, short in table
    ]


def alert_windows_from_sloth(document: Mapping[str, Any]) -> list[AlertWindow]:
    """Alert windows from a Sloth ``AlertWindows`` document (``sloth.slok.dev/v1``), parsed YAML.

    Raises:
        ValueError: not an ``AlertWindows`` document.
    """
    if document.get("kind") != "AlertWindows" or "spec" not in document:
        raise ValueError("not a Sloth AlertWindows document")
    spec = document["spec"]
    period = _as_timedelta(spec["sloPeriod"])
    windows = []
    for severity in ("page", "ticket"):
        for speed in ("quick", "slow"):
            w = spec[severity][speed]
            windows.append(AlertWindow(
                severity, float(w["errorBudgetPercent"]), _as_timedelta(w["longWindow"]),
                _as_timedelta(w["shortWindow"]), period,
            ))
    return windows


def _to_utc_ns(times: Any) -> np.ndarray:
    index = pd.DatetimeIndex(times)
    if len(index) == 0:
        return np.empty(0, dtype=np.int64)
    if index.tz is None:
        raise ValueError("times must be timezone-aware")
    return index.tz_convert("UTC").as_unit("ns").asi8


def _to_ns(moment: dt.datetime | pd.Timestamp | str) -> int:
    ts = pd.Timestamp(moment)
    if ts.tzinfo is None:
        raise ValueError(f"{moment!r} must be timezone-aware")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def burn_rate_alerts(
    times: Sequence[Any] | pd.Series | pd.DatetimeIndex,
    good: Sequence[bool] | np.ndarray | pd.Series,
    objective: float,
    at: dt.datetime | pd.Timestamp | str,
    windows: Sequence[AlertWindow] | None = None,
) -> pd.DataFrame:
    """The multi-window alerts judged at moment ``at`` over events (time, good or bad).

    Each window covers ``(at - window, at]``. A window without events burns at 0.

    Returns:
        One row per alert: ``severity, budget_percent, long_window, short_window, threshold,
        long_burn_rate, short_burn_rate, long_samples, short_samples, firing``.
    """
    windows = list(windows) if windows is not None else alert_windows()
    t = _to_utc_ns(times)
    ok = np.asarray(good, dtype=bool)
    if ok.shape != t.shape:
        raise ValueError(f"good has {ok.size} values for {t.size} times")
    end = _to_ns(at)

    def counts(window: dt.timedelta) -> tuple[int, int]:
        start = end - int(window / dt.timedelta(microseconds=1)) * 1000
        inside = (t > start) & (t <= end)
        n = int(np.count_nonzero(inside))
        return n, n - int(np.count_nonzero(ok[inside]))

    return burn_rate_alerts_from_counts(counts, objective, windows)


def burn_rate_alerts_from_counts(
    counts: Callable[[dt.timedelta], tuple[int, int]],
    objective: float,
    windows: Sequence[AlertWindow] | None = None,
) -> pd.DataFrame:
    """:func:`burn_rate_alerts` from the events already counted: ``counts(window)`` gives the
    events and the bad ones in ``(at - window, at]`` (a query computes them; nothing is loaded).

    Returns:
        As :func:`burn_rate_alerts`.
    """
    windows = list(windows) if windows is not None else alert_windows()
    budget = error_budget(objective)

    def rate(window: dt.timedelta) -> tuple[float, int]:
        n, bad = counts(window)
        return (bad / n / budget if n else 0.0), n

    rows = []
    for w in windows:
        long_rate, long_n = rate(w.long_window)
        short_rate, short_n = rate(w.short_window)
        threshold = w.burn_rate
        rows.append({
            "severity": w.severity, "budget_percent": w.budget_percent,
            "long_window": w.long_window, "short_window": w.short_window,
            "threshold": threshold, "long_burn_rate": long_rate, "short_burn_rate": short_rate,
            "long_samples": long_n, "short_samples": short_n,
            "firing": long_rate > threshold and short_rate > threshold,
        })
    return pd.DataFrame(rows)


# -- Calendar windows ----------------------------------------------------------------------------


def calendar_month(year: int, month: int, tz: str = "UTC") -> tuple[dt.datetime, dt.datetime]:
    """The calendar month in time zone ``tz`` as ``[start, end)`` in UTC.

    October 2026 in Europe/London runs from 2026-09-30T23:00Z to 2026-11-01T00:00Z: 31 days and
    one hour, because the clocks go back on 25 October.
    """
    zone = ZoneInfo(tz)
    start = dt.datetime(year, month, 1, tzinfo=zone)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def budget_minutes(
    objective: float, start: dt.datetime, end: dt.datetime
) -> float:
    """Minutes of the window ``[start, end)`` that the objective's error budget allows."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    minutes = Fraction(int((end - start) / dt.timedelta(microseconds=1)), 60_000_000)
    return float(Fraction(repr(error_budget(objective))) * minutes)


def month_budget_minutes(objective: float, year: int, month: int, tz: str = "UTC") -> float:
    """Minutes the objective allows in a calendar month in ``tz``: 44.64 at 99.9% in 31 days."""
    return budget_minutes(objective, *calendar_month(year, month, tz))


# -- OpenSLO budgeting methods -------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetResult:
    """An objective judged by one budgeting method.

    Attributes:
        method: ``Occurrences``, ``Timeslices`` or ``RatioTimeslices``.
        value: good events / events; good slices / slices; or the mean of the slices' ratios.
        target: the objective (0.99).
        met: ``value >= target``; ``None`` without data.
        budget_remaining: the share of the error budget left, ``1 - (1 - value) / (1 - target)``
            (negative when overspent; NaN without data).
        samples: events counted.
        slices: slices counted (``None`` for Occurrences).
        good_slices: slices that met ``timeSliceTarget`` (Timeslices only).
    """

    method: str
    value: float
    target: float
    met: bool | None
    budget_remaining: float
    samples: int
    slices: int | None = None
    good_slices: int | None = None


def _result(method: str, value: float, target: float, samples: int, **extra: Any) -> BudgetResult:
    if math.isnan(value):
        return BudgetResult(method, value, target, None, math.nan, samples, **extra)
    remaining = 1.0 - (1.0 - value) / error_budget(target)
    return BudgetResult(method, value, target, value >= target, remaining, samples, **extra)


def occurrences(good: Sequence[bool] | np.ndarray | pd.Series, target: float) -> BudgetResult:
    """OpenSLO ``Occurrences``: the share of good events against ``target``."""
    _check_objective(target)
    ok = np.asarray(good, dtype=bool).ravel()
    n = int(ok.size)
    value = float(np.count_nonzero(ok)) / n if n else math.nan
    return _result("Occurrences", value, target, n)


def slice_ratios(
    times: Sequence[Any] | pd.Series | pd.DatetimeIndex,
    good: Sequence[bool] | np.ndarray | pd.Series,
    slice_length: dt.timedelta | str,
    start: dt.datetime | pd.Timestamp | str,
    end: dt.datetime | pd.Timestamp | str,
) -> pd.DataFrame:
    """Events counted per slice of ``[start, end)``, slices aligned on ``start``.

    Events outside ``[start, end)`` are ignored; the last slice may be shorter.

    Returns:
        One row per slice: ``slice_start`` (UTC), ``good``, ``total``, ``ratio`` (NaN when empty).
    """
    t = _to_utc_ns(times)
    ok = np.asarray(good, dtype=bool).ravel()
    if ok.shape != t.shape:
        raise ValueError(f"good has {ok.size} values for {t.size} times")
    lo, hi = _to_ns(start), _to_ns(end)
    step = int(_as_timedelta(slice_length) / dt.timedelta(microseconds=1)) * 1000
    if step <= 0 or hi <= lo:
        raise ValueError("the slice length and the window must be positive")
    n_slices = -(-(hi - lo) // step)
    inside = (t >= lo) & (t < hi)
    index = (t[inside] - lo) // step
    total = np.bincount(index, minlength=n_slices)
    good_counts = np.bincount(index, weights=ok[inside].astype(np.float64), minlength=n_slices)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total > 0, good_counts / np.maximum(total, 1), np.nan)
    starts = pd.to_datetime(lo + np.arange(n_slices, dtype=np.int64) * step, utc=True)
    return pd.DataFrame({
        "slice_start": starts, "good": good_counts.astype(np.int64), "total": total,
        "ratio": ratio,
    })


def _slices_for(frame: pd.DataFrame, empty_slices: EmptySlices) -> pd.Series:
    if empty_slices not in ("skip", "good", "bad"):
        raise ValueError(f"empty_slices is skip, good or bad, not {empty_slices!r}")
    ratios = frame["ratio"]
    if empty_slices == "skip":
        return ratios.dropna()
    return ratios.fillna(1.0 if empty_slices == "good" else 0.0)


def timeslices(
    times: Sequence[Any] | pd.Series | pd.DatetimeIndex,
    good: Sequence[bool] | np.ndarray | pd.Series,
    target: float,
    time_slice_target: float,
    slice_length: dt.timedelta | str,
    start: dt.datetime | pd.Timestamp | str,
    end: dt.datetime | pd.Timestamp | str,
    empty_slices: EmptySlices = "skip",
) -> BudgetResult:
    """OpenSLO ``Timeslices``: the share of slices whose ratio reaches ``time_slice_target``.

    Args:
        times: event times (timezone-aware).
        good: per event, whether it was good.
        target: the objective on the share of good slices.
        time_slice_target: the ratio a slice needs to be good.
        slice_length: the ``timeSliceWindow`` (``1m``, ``15m`` or a timedelta).
        start: the window's start; slices are aligned on it.
        end: the window's end (exclusive).
        empty_slices: slices without events are left out (``skip``) or count as good or bad.
    """
    _check_objective(target)
    frame = slice_ratios(times, good, slice_length, start, end)
    ratios = _slices_for(frame, empty_slices)
    n_good = int((ratios >= time_slice_target).sum())
    value = n_good / len(ratios) if len(ratios) else math.nan
    samples = int(frame["total"].sum())
    return _result("Timeslices", value, target, samples, slices=len(ratios), good_slices=n_good)


def ratio_timeslices(
    times: Sequence[Any] | pd.Series | pd.DatetimeIndex,
    good: Sequence[bool] | np.ndarray | pd.Series,
    target: float,
    slice_length: dt.timedelta | str,
    start: dt.datetime | pd.Timestamp | str,
    end: dt.datetime | pd.Timestamp | str,
    empty_slices: EmptySlices = "skip",
) -> BudgetResult:
    """OpenSLO ``RatioTimeslices``: the mean of the slices' good ratios against ``target``.

    Arguments as :func:`timeslices`, without ``time_slice_target``.
    """
    _check_objective(target)
    frame = slice_ratios(times, good, slice_length, start, end)
    ratios = _slices_for(frame, empty_slices)
    value = float(ratios.mean()) if len(ratios) else math.nan
    samples = int(frame["total"].sum())
    return _result("RatioTimeslices", value, target, samples, slices=len(ratios))


def occurrences_from_counts(good: int, total: int, target: float) -> BudgetResult:
    """OpenSLO ``Occurrences`` from counts: ``good / total`` against ``target``."""
    _check_objective(target)
    if good < 0 or total < good:
        raise ValueError(f"need 0 <= good <= total, got {good} of {total}")
    value = good / total if total else math.nan
    return _result("Occurrences", value, target, int(total))


def budget_from_ratios(
    method: str,
    target: float,
    good: Sequence[bool] | np.ndarray,
    ratios: Sequence[float] | np.ndarray,
    time_slice_target: float | None = None,
    samples: int | None = None,
) -> BudgetResult:
    """A budgeting method applied to events already grouped into slices.

    Args:
        method: ``Occurrences``, ``Timeslices`` or ``RatioTimeslices``.
        target: the objective.
        good: per event, whether it was good (all events of every slice).
        ratios: each slice's good ratio (slices without events left out).
        time_slice_target: for ``Timeslices``, the ratio a slice needs to be good.
        samples: the event count to report (default: ``len(good)``), when only the slices'
            ratios are at hand (``good`` is then ignored except for ``Occurrences``).

    Raises:
        ValueError: an unknown method, or ``Timeslices`` without ``time_slice_target``.
    """
    _check_objective(target)
    ok = np.asarray(good, dtype=bool).ravel()
    n = int(ok.size) if samples is None else int(samples)
    r = np.asarray(ratios, dtype=np.float64).ravel()
    r = r[~np.isnan(r)]
    if method == "Occurrences":
        return occurrences(ok, target)
    if method == "Timeslices":
        if time_slice_target is None:
            raise ValueError("Timeslices needs time_slice_target")
        n_good = int(np.count_nonzero(r >= time_slice_target))
        value = n_good / r.size if r.size else math.nan
        return _result("Timeslices", value, target, n, slices=int(r.size), good_slices=n_good)
    if method == "RatioTimeslices":
        value = float(r.mean()) if r.size else math.nan
        return _result("RatioTimeslices", value, target, n, slices=int(r.size))
    raise ValueError(f"budgeting method is one of {', '.join(BUDGETING_METHODS)}, not {method!r}")
