"""Apdex, as the Apdex Technical Specification v1.1 defines and displays it.

Apdex_T = (satisfied + tolerating / 2) / total, where a sample is satisfied when t <= T,
tolerating when T < t <= F with F = 4T, frustrated when t > F; a failed sample is frustrated
whatever its duration. The value is shown with two decimals and T in brackets (``0.90 [0.5]``),
T with one decimal under 10 s and none from 10 s, a ``*`` on a small group (fewer than 100
samples) and ``NS`` when there are no samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

__all__ = ["RATINGS", "SMALL_GROUP_SAMPLES", "Apdex", "apdex", "apdex_table", "format_t", "rating"]

SMALL_GROUP_SAMPLES = 100

# (lowest two-decimal score, name), best first: Excellent 0.94-1.00 ... Unacceptable 0.00-0.49.
RATINGS = (
    (Decimal("0.94"), "Excellent"),
    (Decimal("0.85"), "Good"),
    (Decimal("0.70"), "Fair"),
    (Decimal("0.50"), "Poor"),
    (Decimal("0.00"), "Unacceptable"),
)


def format_t(t_s: float) -> str:
    """T as the specification shows it: one decimal under 10 s (``0.5``, ``4.0``), none from 10 s."""
    t = Decimal(repr(float(t_s)))
    if t < 10:
        return str(t.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    return str(t.quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _two_decimals(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def rating(score: float) -> str:
    """The rating band of a score, judged on its two-decimal display (0.935 shows 0.94: Excellent).

    Raises:
        ValueError: ``score`` is outside [0, 1].
    """
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"an Apdex score lies in [0, 1], got {score!r}")
    return _band(_two_decimals(Fraction(repr(float(score)))))


def _band(shown: Decimal) -> str:
    return next(name for lowest, name in RATINGS if shown >= lowest)


@dataclass(frozen=True)
class Apdex:
    """An Apdex result.

    Attributes:
        score: Apdex_T in [0, 1]; NaN with no samples.
        t_s: the target threshold T in seconds (F = 4T).
        samples: satisfied + tolerating + frustrated.
        satisfied: samples with t <= T that did not fail.
        tolerating: samples with T < t <= 4T that did not fail.
        frustrated: samples with t > 4T, and every failed sample.
        failed: how many of the frustrated samples failed.
    """

    score: float
    t_s: float
    samples: int
    satisfied: int
    tolerating: int
    frustrated: int
    failed: int

    @property
    def small_group(self) -> bool:
        """Fewer than 100 samples: the specification marks the value with ``*``."""
        return self.samples < SMALL_GROUP_SAMPLES

    @property
    def rating(self) -> str | None:
        """Excellent, Good, Fair, Poor or Unacceptable; ``None`` with no samples."""
        return None if self.samples == 0 else _band(self._shown())

    def _shown(self) -> Decimal:
        return _two_decimals(Fraction(2 * self.satisfied + self.tolerating, 2 * self.samples))

    @property
    def display(self) -> str:
        """``0.90 [0.5]``, ``1.00 [4.0]*`` or ``NS [10]``."""
        t = format_t(self.t_s)
        if self.samples == 0:
            return f"NS [{t}]"
        return f"{self._shown()} [{t}]{'*' if self.small_group else ''}"

    def __str__(self) -> str:
        return self.display


def apdex(
    durations_s: Iterable[float] | np.ndarray | pd.Series,
    t_s: float,
    failed: Iterable[bool] | np.ndarray | pd.Series | None = None,
) -> Apdex:
    """Apdex_T of the samples.

    Args:
        durations_s: response or task times in seconds (a failed sample's may be NaN).
        t_s: the target threshold T in seconds, > 0.
        failed: per sample, whether it failed (counted frustrated); ``None``: none failed.

    Raises:
        ValueError: T is not positive, ``failed`` has another length, or a duration that did not
            fail is NaN.
    """
    t = float(t_s)
    if not t > 0:
        raise ValueError(f"T must be > 0 seconds, got {t_s!r}")
    durations = np.asarray(durations_s, dtype=np.float64).ravel()
    if failed is None:
        failures = np.zeros(durations.shape, dtype=bool)
    else:
        failures = np.asarray(failed, dtype=bool).ravel()
        if failures.shape != durations.shape:
            raise ValueError(
                f"failed has {failures.size} values for {durations.size} durations"
            )
    if np.isnan(durations[~failures]).any():
        raise ValueError("a duration is NaN for a sample that did not fail")
    ok = durations[~failures]
    satisfied = int(np.count_nonzero(ok <= t))
    tolerating = int(np.count_nonzero((ok > t) & (ok <= 4 * t)))
    n_failed = int(np.count_nonzero(failures))
    frustrated = int(ok.size - satisfied - tolerating) + n_failed
    samples = int(durations.size)
    score = (satisfied + tolerating / 2) / samples if samples else float("nan")
    return Apdex(score, t, samples, satisfied, tolerating, frustrated, n_failed)


def apdex_table(
    frame: pd.DataFrame,
    duration_column: str,
    t_s: float,
    by: Sequence[str] = (),
    failed_column: str | None = None,
) -> pd.DataFrame:
    """Apdex per group of ``frame``.

    Returns:
        One row per group: the ``by`` columns, then ``score, t_s, samples, satisfied, tolerating,
        frustrated, failed, small_group, rating, display``.
    """
    by = list(by)
    rows = []
    groups = frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]
    for key, group in groups:
        keys = key if isinstance(key, tuple) else (key,)
        failed = None if failed_column is None else group[failed_column].to_numpy(dtype=bool)
        a = apdex(group[duration_column].to_numpy(dtype=np.float64), t_s, failed)
        rows.append({
            **dict(zip(by, keys, strict=True)),
            "score": a.score, "t_s": a.t_s, "samples": a.samples, "satisfied": a.satisfied,
            "tolerating": a.tolerating, "frustrated": a.frustrated, "failed": a.failed,
            "small_group": a.small_group, "rating": a.rating, "display": a.display,
        })
    columns = [*by, "score", "t_s", "samples", "satisfied", "tolerating", "frustrated", "failed",
               "small_group", "rating", "display"]
    return pd.DataFrame(rows, columns=columns)
