"""SLAs evaluated exactly as the contract computes them.

An SLA (:class:`analysis.config.SLAConfig`) is judged on requests, not on workflow runs: the
probes' per-request timings (``data_source: probe``: the ``requests`` frame with source
``probe``) or the EPR's own timings (``data_source: server``: server spans joined to probe traces
and imported server logs, source ``server``). The requests counted are those that start inside the
compliance window, inside the service hours (local time in the SLA's zone) and outside every
agreed exclusion.

- ``mean``: the mean duration of the requests that got a response (not timed out).
- ``percentile``: the pooled percentile of those durations (linear interpolation); its error
  budget is that of the equivalent share: "p95 <= 2 s" is "95% within 2 s".
- ``share_under``: requests answered within ``threshold_s`` / all requests (a timed-out request
  is never within the threshold).
- ``availability``: requests that did not fail / all requests. A slow but successful response
  is available: that is how contracts count it.

Budgeting methods (``share_under`` and ``availability``) follow OpenSLO as
``analysis.budget`` implements them; slices without requests (outside service hours, inside
exclusions) are left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.budget import BudgetResult, calendar_month, occurrences, ratio_timeslices, timeslices
from analysis.config import WEEKDAYS, ExclusionConfig, ServiceHoursConfig, SLAConfig
from analysis.percentiles import percentile
from analysis.store import FrameCache, Store

__all__ = [
    "SLAResult",
    "evaluate_sla",
    "load_exclusions_csv",
    "parse_month",
    "in_sla_hours",
    "sla_hours_text",
    "sla_requests",
    "sla_window",
]


@dataclass(frozen=True)
class SLAResult:
    """An SLA judged over one compliance window.

    Attributes:
        name: the SLA's name.
        metric: ``mean``, ``percentile``, ``share_under`` or ``availability``.
        value: the figure as the contract computes it (seconds, or a ratio; for Timeslices
            budgeting the share of good slices); NaN without requests.
        target: the contract's target (seconds or ratio).
        met: whether the target is met; ``None`` without requests.
        budget_remaining: share of the error budget left (negative when overspent; NaN for
            ``mean``, which has no budget, and without requests).
        samples: requests counted.
        window_start: the compliance window's start (UTC).
        window_end: its end, exclusive (UTC).
        excluded: requests left out by exclusions.
        outside_service_hours: requests left out as outside service hours.
        budget: the budgeting method's result (``None`` for ``mean``).
        wording: the SLA in words.
        data_source: ``probe`` or ``server``.
    """

    name: str
    metric: str
    value: float
    target: float
    met: bool | None
    budget_remaining: float
    samples: int
    window_start: dt.datetime
    window_end: dt.datetime
    excluded: int
    outside_service_hours: int
    budget: BudgetResult | None
    wording: str
    data_source: str

    @property
    def display(self) -> str:
        """The figure as a manager reads it: ``96.1% within 2 s (n=12040)``, ``p95 1.42 s``."""
        if math.isnan(self.value):
            return "no requests (n=0)"
        if self.metric in ("mean", "percentile"):
            return f"{self.value:.2f} s (target {self.target:g} s, n={self.samples})"
        if self.budget is not None and self.budget.method != "Occurrences":
            return (f"{self.value:.2%} of {self.budget.slices} slices good "
                    f"(target {self.target:.2%}, n={self.samples})")
        return f"{self.value:.2%} (target {self.target:.2%}, n={self.samples})"


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-10"`` as ``(2026, 10)``.

    Raises:
        ValueError: not ``YYYY-MM``.
    """
    try:
        year, number = (int(part) for part in str(month).split("-"))
    except ValueError as exc:
        raise ValueError(f"a month is YYYY-MM, e.g. 2026-10, not {month!r}") from exc
    if not 1 <= number <= 12:
        raise ValueError(f"a month is YYYY-MM, e.g. 2026-10, not {month!r}")
    return year, number


def sla_window(
    sla: SLAConfig, month: str | None = None, end: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The SLA's compliance window as ``[start, end)`` in UTC.

    Args:
        sla: the SLA.
        month: for a calendar-month SLA, ``YYYY-MM`` (in the SLA's time zone).
        end: for a rolling SLA, the window's end (timezone-aware); for a calendar-month SLA
            without ``month``, the month containing this moment.

    Raises:
        ValueError: neither ``month`` nor ``end`` is given, or ``end`` is naive.
    """
    if sla.window == "rolling":
        if end is None and month is not None:
            end = calendar_month(*parse_month(month), tz=sla.timezone)[1]
        if end is None or end.tzinfo is None:
            raise ValueError("a rolling SLA needs a timezone-aware end (or a month it ends with)")
        stop = end.astimezone(dt.UTC)
        return stop - dt.timedelta(days=sla.rolling_days or 0), stop
    if month is None:
        if end is None or end.tzinfo is None:
            raise ValueError("a calendar-month SLA needs month (YYYY-MM) or a timezone-aware end")
        local = end.astimezone(_zone(sla.timezone))
        return calendar_month(local.year, local.month, sla.timezone)
    return calendar_month(*parse_month(month), tz=sla.timezone)


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def load_exclusions_csv(path: Path | str) -> list[ExclusionConfig]:
    """Agreed maintenance windows from a CSV file with columns ``start, end`` and optional ``title``.

    Times are ISO 8601 with an offset (``2026-10-04T01:00:00+01:00`` or ``...Z``).

    Raises:
        ValueError: a missing column or an invalid row (the message names the line).
        OSError: the file cannot be read.
    """
    path = Path(path)
    out: list[ExclusionConfig] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"start", "end"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                out.append(ExclusionConfig(
                    start=_iso(row["start"]), end=_iso(row["end"]), title=row.get("title") or "",
                ))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
    return out


def _iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _in_service_hours(times: pd.Series, hours: ServiceHoursConfig, tz: str) -> np.ndarray:
    local = pd.to_datetime(times).dt.tz_convert(tz)
    weekdays = {WEEKDAYS.index(d) for d in hours.weekdays}
    on_day = local.dt.day_of_week.isin(weekdays).to_numpy()
    if hours.except_dates:
        on_day &= ~local.dt.date.isin(set(hours.except_dates)).to_numpy()
    clock = (local.dt.hour * 3600 + local.dt.minute * 60 + local.dt.second).to_numpy()
    lo = hours.start.hour * 3600 + hours.start.minute * 60 + hours.start.second
    hi = hours.end.hour * 3600 + hours.end.minute * 60 + hours.end.second
    return on_day & (clock >= lo) & (clock < hi)


def _in_exclusions(times: pd.Series, exclusions: list[ExclusionConfig]) -> np.ndarray:
    stamps = pd.to_datetime(times)
    out = np.zeros(len(stamps), dtype=bool)
    for ex in exclusions:
        out |= ((stamps >= pd.Timestamp(ex.start)) & (stamps < pd.Timestamp(ex.end))).to_numpy()
    return out


def _all_exclusions(sla: SLAConfig, base_dir: Path | None) -> list[ExclusionConfig]:
    exclusions = list(sla.exclusions)
    if sla.exclusions_file is not None:
        path = sla.exclusions_file
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        exclusions += load_exclusions_csv(path)
    return exclusions


def in_sla_hours(
    times: pd.Series, sla: SLAConfig, base_dir: Path | None = None
) -> np.ndarray:
    """Whether each moment of ``times`` is counted by the SLA: in service hours, not excluded."""
    keep = np.ones(len(times), dtype=bool)
    if not len(times):
        return keep
    if isinstance(sla.service_hours, ServiceHoursConfig):
        keep &= _in_service_hours(times, sla.service_hours, sla.timezone)
    exclusions = _all_exclusions(sla, base_dir)
    if exclusions:
        keep &= ~_in_exclusions(times, exclusions)
    return keep


def sla_hours_text(sla: SLAConfig) -> str:
    """The hours an SLA counts, in words: ``24x7`` or ``Mon-Fri 08:00-18:00``."""
    if not isinstance(sla.service_hours, ServiceHoursConfig):
        return "24x7"
    h = sla.service_hours
    days = ",".join(d.capitalize() for d in h.weekdays)
    if list(h.weekdays) == list(WEEKDAYS[:5]):
        days = "Mon-Fri"
    elif list(h.weekdays) == list(WEEKDAYS):
        days = "every day"
    return f"{days} {h.start:%H:%M}-{h.end:%H:%M}"


def sla_requests(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    base_dir: Path | None = None,
) -> tuple[pd.DataFrame, int, int]:
    """The requests an SLA counts in ``[window_start, window_end)``.

    Returns:
        ``(requests, excluded, outside_service_hours)``: the ``requests`` frame filtered to the
        SLA's data source, workflows, sites, endpoints, service hours and exclusions, plus a
        bool column ``good`` (the SLA's notion of a good request; for ``mean`` and
        ``percentile``, within the target), and the counts of requests left out.
    """
    frame = store.requests(
        window_start, window_end, workflow=sla.workflows or None, site=sla.sites or None,
        source=sla.data_source,
    )
    if sla.endpoints and len(frame):
        templates = frame["url_template"].fillna("").astype(str)
        keep = np.array([
            any(fnmatch.fnmatchcase(t, p) for p in sla.endpoints) for t in templates
        ], dtype=bool)
        frame = frame[keep]
    outside = 0
    if isinstance(sla.service_hours, ServiceHoursConfig) and len(frame):
        inside = _in_service_hours(frame["start"], sla.service_hours, sla.timezone)
        outside = int((~inside).sum())
        frame = frame[inside]
    excluded = 0
    exclusions = _all_exclusions(sla, base_dir)
    if exclusions and len(frame):
        hit = _in_exclusions(frame["start"], exclusions)
        excluded = int(hit.sum())
        frame = frame[~hit]
    frame = frame.reset_index(drop=True)
    frame["good"] = _good(frame, sla)
    return frame, excluded, outside


def _good(frame: pd.DataFrame, sla: SLAConfig) -> np.ndarray:
    if frame.empty:
        return np.zeros(0, dtype=bool)
    status = frame["status"].astype(str).to_numpy()
    duration = frame["duration_s"].astype("float64").to_numpy()
    if sla.metric == "availability":
        return status == "ok"
    limit = float(sla.threshold_s if sla.metric == "share_under" and sla.threshold_s else sla.target)
    return (status != "timed_out") & (duration <= limit)


def evaluate_sla(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    base_dir: Path | None = None,
) -> SLAResult:
    """Judge ``sla`` over ``[window_start, window_end)`` exactly as configured.

    Args:
        store: the store to read requests from.
        sla: the SLA.
        window_start: the compliance window's start (timezone-aware; see :func:`sla_window`).
        window_end: its end (exclusive).
        base_dir: the directory a relative ``exclusions_file`` is read from (the config file's).

    Raises:
        ValueError: naive bounds, or an unreadable exclusions file.
    """
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    frame, excluded, outside = sla_requests(store, sla, window_start, window_end, base_dir)
    good = frame["good"].to_numpy(dtype=bool)
    budget: BudgetResult | None
    if sla.metric in ("mean", "percentile"):
        answered = frame[frame["status"] != "timed_out"]["duration_s"].astype("float64").dropna()
        n = len(frame)
        if sla.metric == "mean":
            value = float(answered.mean()) if len(answered) else math.nan
            budget = None
            remaining = math.nan
        else:
            value = percentile(answered.to_numpy(), sla.ratio_target).value
            budget = occurrences(good, sla.ratio_target)
            remaining = budget.budget_remaining
        met = None if math.isnan(value) else bool(value <= sla.target)
    else:
        n = len(frame)
        slice_length = dt.timedelta(minutes=sla.time_slice_minutes)
        if sla.budgeting_method == "Occurrences":
            budget = occurrences(good, sla.target)
        elif sla.budgeting_method == "Timeslices":
            budget = timeslices(frame["start"], good, sla.target, sla.time_slice_target or 1.0,
                                slice_length, window_start, window_end)
        else:
            budget = ratio_timeslices(frame["start"], good, sla.target, slice_length,
                                      window_start, window_end)
        value, met, remaining = budget.value, budget.met, budget.budget_remaining
    return SLAResult(
        name=sla.name, metric=sla.metric, value=float(value), target=sla.target, met=met,
        budget_remaining=float(remaining), samples=n,
        window_start=window_start.astimezone(dt.UTC), window_end=window_end.astimezone(dt.UTC),
        excluded=excluded, outside_service_hours=outside, budget=budget, wording=sla.wording,
        data_source=sla.data_source,
    )
