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

The probe's requests of a run it stopped itself (status ``interrupted``: Ctrl-C) are not counted:
they are facts about the probe, not the EPR.

Budgeting methods (``share_under`` and ``availability``) follow OpenSLO as
``analysis.budget`` implements them; slices without requests (outside service hours, inside
exclusions) are left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.budget import (
    BudgetResult,
    budget_from_ratios,
    calendar_month,
    occurrences_from_counts,
)
from analysis.calendar import ClinicalCalendar
from analysis.config import WEEKDAYS, ExclusionConfig, ServiceHoursConfig, SLAConfig
from analysis.objectives import ALL_HOURS
from analysis.query.sla import counted_requests_sql
from analysis.store import REQUEST_COLUMNS, FrameCache, Store

__all__ = [
    "SLAResult",
    "all_exclusions",
    "evaluate_sla",
    "load_exclusions_csv",
    "parse_month",
    "counted_requests",
    "filter_requests",
    "in_sla_hours",
    "scope_request_figures",
    "sla_hours_text",
    "sla_requests",
    "sla_window",
]


SCOPE_FIGURE_COLUMNS = ("requests", "good", "durations", "mean_s", "p95_s", "quantile_s")
RequestScope = tuple[str, str, str | None]  # workflow, site, clinical period (None: all hours)


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


def all_exclusions(sla: SLAConfig, base_dir: Path | None = None) -> list[ExclusionConfig]:
    """The SLA's agreed exclusions: those written in the configuration and those of its ``exclusions_file``
    (a relative path taken from ``base_dir``)."""
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
    exclusions = all_exclusions(sla, base_dir)
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


def filter_requests(frame: pd.DataFrame, sla: SLAConfig, base_dir: Path | None = None
                    ) -> pd.DataFrame:
    """Of a ``requests`` frame, the rows the SLA counts (its endpoints, service hours and
    exclusions; the caller has chosen the window, data source, workflows and sites), with the
    SLA's ``good`` column: the in-memory twin of the query :func:`counted_requests` runs."""
    keep = in_sla_hours(frame["start"], sla, base_dir)
    if sla.endpoints and len(frame):
        templates = frame["url_template"].fillna("").astype(str)
        keep &= np.array([any(fnmatch.fnmatchcase(t, p) for p in sla.endpoints)
                          for t in templates], dtype=bool)
    out = frame[keep].reset_index(drop=True)
    return out.assign(good=_good(out, sla))


def _good(frame: pd.DataFrame, sla: SLAConfig) -> np.ndarray:
    if frame.empty:
        return np.zeros(0, dtype=bool)
    status = frame["status"].astype(str).to_numpy()
    duration = frame["duration_s"].astype("float64").to_numpy()
    if sla.metric == "availability":
        return status == "ok"
    limit = float(sla.threshold_s if sla.metric == "share_under" and sla.threshold_s else sla.target)
    return (status != "timed_out") & (duration <= limit)


def _base_query(sla: SLAConfig, start: dt.datetime, end: dt.datetime, base_dir: Path | None,
                columns: str = "start, duration_s, status") -> tuple[str, list[Any]]:
    """``WITH base AS (...)``: :func:`analysis.query.sla.counted_requests_sql` with the SLA's
    exclusions (its own and those of its ``exclusions_file``)."""
    return counted_requests_sql(sla, start, end, all_exclusions(sla, base_dir), columns)


def sla_requests(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    base_dir: Path | None = None,
    only_bad: bool = False,
) -> tuple[pd.DataFrame, int, int]:
    """The requests an SLA counts in ``[window_start, window_end)``.

    Args:
        store: the store.
        sla: the SLA.
        window_start: the window's start (timezone-aware).
        window_end: its end, exclusive.
        base_dir: where a relative ``exclusions_file`` is read from.
        only_bad: only the requests the SLA counts as bad (for explaining a breach).

    Returns:
        ``(requests, excluded, outside_service_hours)``: the ``requests`` frame filtered to the
        SLA's data source, workflows, sites, endpoints, service hours and exclusions, plus a
        bool column ``good`` (the SLA's notion of a good request; for ``mean`` and
        ``percentile``, within the target), and the counts of requests left out.
    """
    frame = counted_requests(store, sla, window_start, window_end, base_dir, only_bad)
    counts = _counts(store, sla, window_start, window_end, base_dir)
    return frame, int(counts["excluded"]), int(counts["outside"])


def _key(kind: str, sla: SLAConfig, start: dt.datetime, end: dt.datetime,
         base_dir: Path | None, *extra: Any) -> tuple[Any, ...]:
    return (kind, sla.model_dump_json(), start, end, str(base_dir), *extra)


def counted_requests(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    base_dir: Path | None = None,
    only_bad: bool = False,
) -> pd.DataFrame:
    """The requests frame of :func:`sla_requests` alone, without the counts of those left out
    (read once per question through an :class:`analysis.store.FrameCache`)."""
    def read() -> pd.DataFrame:
        columns = ", ".join(REQUEST_COLUMNS)
        base, params = _base_query(sla, window_start, window_end, base_dir, columns)
        query = (f"{base} SELECT {columns}, good FROM base WHERE in_hours AND NOT excluded"
                 + (" AND NOT good" if only_bad else "") + " ORDER BY start, trace_id, span_id")
        frame = store.sql(query, params)
        frame["good"] = frame["good"].astype(bool)
        return frame

    if isinstance(store, FrameCache):
        return store.memo(_key("requests", sla, window_start, window_end, base_dir, only_bad),
                          read)
    return read()


def _counts(store: Store | FrameCache, sla: SLAConfig, start: dt.datetime, end: dt.datetime,
            base_dir: Path | None) -> pd.Series:
    if isinstance(store, FrameCache):
        return store.memo(_key("counts", sla, start, end, base_dir),
                          lambda: _read_counts(store, sla, start, end, base_dir))
    return _read_counts(store, sla, start, end, base_dir)


def _read_counts(store: Store | FrameCache, sla: SLAConfig, start: dt.datetime,
                 end: dt.datetime, base_dir: Path | None) -> pd.Series:
    return _read_counts_and_scopes(store, sla, start, end, base_dir, (), None, 0.95)[0]


def _read_counts_and_scopes(
    store: Store | FrameCache, sla: SLAConfig, start: dt.datetime, end: dt.datetime,
    base_dir: Path | None, scopes: Sequence[RequestScope], calendar: ClinicalCalendar | None,
    q: float,
) -> tuple[pd.Series, pd.DataFrame]:
    """The SLA's counts and the figures of each scope, in one pass over the requests."""
    columns = "start, duration_s, status" + (", workflow, site" if scopes else "")
    base, params = _base_query(sla, start, end, base_dir, columns)
    # Each scope's own requests get their start (as the site's local time when the scope has a
    # period) in a column of their own, null elsewhere, so that the period's condition is
    # computed for those requests alone.
    starts: list[str] = []
    start_params: list[Any] = []
    flags: list[str] = []
    flag_params: list[Any] = []
    figures: list[str] = []
    for i, (workflow, site, period) in enumerate(scopes):
        if sla.sites and site not in sla.sites:  # the SLA does not count this site
            condition, condition_params = "FALSE", []
        elif period is None or period == ALL_HOURS:
            condition, condition_params = "TRUE", []
        elif calendar is None:
            raise ValueError(f"the scope's period {period!r} needs a calendar")
        else:  # on the local time, converted once per request
            condition, condition_params = calendar.sql_condition(period, site, f"start_{i}",
                                                                 local=True)
        zone = [] if calendar is None or condition in ("TRUE", "FALSE") else [
            calendar.timezone(site).key]
        starts.append(f", CASE WHEN in_hours AND NOT excluded AND workflow = ? AND site = ? "
                      f"THEN {'timezone(?, start)' if zone else 'start'} END AS start_{i}")
        start_params += [workflow, site, *zone]
        # CASE evaluates the condition for the scope's own rows alone (AND would not)
        flags.append(f", CASE WHEN start_{i} IS NOT NULL THEN coalesce({condition}, false) "
                     f"ELSE false END AS in_{i}")
        flag_params += condition_params
        for expression, name in (("count(*)", "requests"), ("count(*)", "good"),
                                 ("count(duration_s)", "durations"), ("avg(duration_s)", "mean_s"),
                                 ("quantile_cont(duration_s, 0.95)", "p95_s"),
                                 (f"quantile_cont(duration_s, {float(q)!r})", "quantile_s")):
            extra = " AND good" if name == "good" else ""
            figures.append(f",\n    {expression} FILTER (WHERE in_{i}{extra}) AS {name}_{i}")
    counted = "in_hours AND NOT excluded"
    # The window's quantile holds every request's time (a month's: 8.7M at 10M spans, +200 MB):
    # only a percentile SLA reads it.
    quantile = (f"quantile_cont(duration_s, {float(sla.ratio_target)!r})\n"
                f"        FILTER (WHERE {counted} AND status <> 'timed_out')"
                if sla.metric == "percentile" else "CAST(NULL AS DOUBLE)")
    query = f"""{base},
scoped AS (SELECT *{''.join(starts)} FROM base),
flagged AS (SELECT *{''.join(flags)} FROM scoped)
SELECT
    count(*) FILTER (WHERE NOT in_hours) AS outside,
    count(*) FILTER (WHERE in_hours AND excluded) AS excluded,
    count(*) FILTER (WHERE {counted}) AS n,
    count(*) FILTER (WHERE {counted} AND good) AS n_good,
    avg(duration_s) FILTER (WHERE {counted} AND status <> 'timed_out') AS mean_s,
    {quantile} AS quantile_s{''.join(figures)}
FROM flagged"""
    row = store.sql(query, [*params, *start_params, *flag_params]).iloc[0]

    def number(name: str, i: int) -> float:
        value = row[f"{name}_{i}"]
        return math.nan if value is None or pd.isna(value) else float(value)

    out = pd.DataFrame([{name: number(name, i) for name in SCOPE_FIGURE_COLUMNS}
                        for i in range(len(scopes))], columns=list(SCOPE_FIGURE_COLUMNS))
    return row, out.astype({"requests": "int64", "good": "int64", "durations": "int64"})


def scope_request_figures(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    scopes: Sequence[RequestScope],
    calendar: ClinicalCalendar | None = None,
    base_dir: Path | None = None,
    q: float = 0.95,
) -> pd.DataFrame:
    """Figures of the requests the SLA counts in each of several scopes, in one DuckDB query.

    Args:
        store: the store.
        sla: the SLA (its data source, workflows, sites, endpoints, service hours, exclusions).
        window_start: the window's start (timezone-aware).
        window_end: its end, exclusive.
        scopes: ``(workflow, site, period)`` each: the requests of that workflow at that site
            that start inside that clinical period (``None`` or ``all hours``: at any time);
            none at a site the SLA does not count.
        calendar: the clinical calendar (needed when a scope names a period).
        base_dir: where a relative ``exclusions_file`` is read from.
        q: the quantile of ``quantile_s`` (in (0, 1)).

    Returns:
        One row per scope, in order, columns ``requests`` (counted), ``good`` (the SLA's good
        ones), ``durations`` (with a duration), ``mean_s``, ``p95_s`` and ``quantile_s`` (mean,
        95th percentile and ``q`` quantile of the durations, every status; NaN without any):
        the figures :func:`filter_requests` gives on the ``requests`` frame of each scope.
        Through an :class:`analysis.store.FrameCache`, the first call for an SLA and window
        also computes what :func:`evaluate_sla` needs, in the same pass over the requests.

    Raises:
        ValueError: a scope names a period and there is no calendar.
    """
    if isinstance(store, FrameCache):
        key = _key("scopes", sla, window_start, window_end, base_dir, tuple(scopes), calendar, q)

        def read() -> pd.DataFrame:
            counts, figures = _read_counts_and_scopes(store, sla, window_start, window_end,
                                                      base_dir, scopes, calendar, q)
            store.memo(_key("counts", sla, window_start, window_end, base_dir), lambda: counts)
            return figures

        return store.memo(key, read)
    return _read_counts_and_scopes(store, sla, window_start, window_end, base_dir, scopes,
                                   calendar, q)[1]


def _slice_ratios(store: Store | FrameCache, sla: SLAConfig, start: dt.datetime,
                  end: dt.datetime, base_dir: Path | None) -> np.ndarray:
    base, params = _base_query(sla, start, end, base_dir)
    step_us = sla.time_slice_minutes * 60 * 1_000_000
    origin_us = int(round(start.timestamp() * 1_000_000))
    query = f"""{base}
SELECT (epoch_us(start) - ?) // {step_us} AS slice, count(*) AS total,
       count(*) FILTER (WHERE good) AS good
FROM base WHERE in_hours AND NOT excluded GROUP BY slice"""
    frame = store.sql(query, [*params, origin_us])
    return (frame["good"].astype("float64") / frame["total"].astype("float64")).to_numpy()


def evaluate_sla(
    store: Store | FrameCache,
    sla: SLAConfig,
    window_start: dt.datetime,
    window_end: dt.datetime,
    base_dir: Path | None = None,
) -> SLAResult:
    """Judge ``sla`` over ``[window_start, window_end)`` exactly as configured.

    The figures are computed inside DuckDB (counts, mean, ``quantile_cont``), so a month of
    requests is never loaded into memory.

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
    if isinstance(store, FrameCache):
        return store.memo(_key("result", sla, window_start, window_end, base_dir),
                          lambda: _evaluate(store, sla, window_start, window_end, base_dir))
    return _evaluate(store, sla, window_start, window_end, base_dir)


def _evaluate(store: Store | FrameCache, sla: SLAConfig, window_start: dt.datetime,
              window_end: dt.datetime, base_dir: Path | None) -> SLAResult:
    counts = _counts(store, sla, window_start, window_end, base_dir)
    n, n_good = int(counts["n"]), int(counts["n_good"])
    excluded, outside = int(counts["excluded"]), int(counts["outside"])
    budget: BudgetResult | None
    if sla.metric in ("mean", "percentile"):
        column = "mean_s" if sla.metric == "mean" else "quantile_s"
        raw = counts[column]
        value = math.nan if raw is None or pd.isna(raw) else float(raw)
        if sla.metric == "mean":
            budget, remaining = None, math.nan
        else:
            budget = occurrences_from_counts(n_good, n, sla.ratio_target)
            remaining = budget.budget_remaining
        met = None if math.isnan(value) else bool(value <= sla.target)
    else:
        if sla.budgeting_method == "Occurrences":
            budget = occurrences_from_counts(n_good, n, sla.target)
        else:
            ratios = _slice_ratios(store, sla, window_start, window_end, base_dir)
            budget = budget_from_ratios(sla.budgeting_method, sla.target, good=(), ratios=ratios,
                                        time_slice_target=sla.time_slice_target, samples=n)
        value, met, remaining = budget.value, budget.met, budget.budget_remaining
    return SLAResult(
        name=sla.name, metric=sla.metric, value=float(value), target=sla.target, met=met,
        budget_remaining=float(remaining), samples=n,
        window_start=window_start.astimezone(dt.UTC), window_end=window_end.astimezone(dt.UTC),
        excluded=excluded, outside_service_hours=outside, budget=budget, wording=sla.wording,
        data_source=sla.data_source,
    )
