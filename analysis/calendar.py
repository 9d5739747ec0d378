"""The clinical calendar: named recurring periods in each site's local time.

A period (``analysis.config.PeriodConfig``) recurs on its weekdays from its local start to its
local end, except on its exception dates, at the sites it names (all sites when it names none).
Everything is judged on the site's wall clock, so ward rounds at 08:00 stay at 08:00 local across
daylight-saving changes (07:00 UTC in summer in London, 08:00 UTC in winter).

On the morning the clocks go forward a local time that does not exist (01:30 in London) is read
with the offset before the change; in the hour that repeats when they go back, both instants of a
local time are inside a period that covers it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from analysis.config import WEEKDAYS, PeriodConfig

__all__ = ["ClinicalCalendar"]


class ClinicalCalendar:
    """Clinical periods per site, and the labelling of runs with them.

    Args:
        periods: the configured periods.
        timezones: each site's IANA time zone, by site name.
        default_timezone: the zone of a site not in ``timezones``; ``None``: such a site is an
            error.

    Raises:
        ValueError: an unknown time zone, or two periods with one name.
    """

    def __init__(
        self,
        periods: Sequence[PeriodConfig],
        timezones: Mapping[str, str],
        default_timezone: str | None = None,
    ) -> None:
        names = [p.name for p in periods]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"periods named twice: {', '.join(duplicates)}")
        self._periods = {p.name: p for p in periods}
        self._zones = {site: _zone(tz) for site, tz in timezones.items()}
        self._default = None if default_timezone is None else _zone(default_timezone)

    @property
    def period_names(self) -> tuple[str, ...]:
        """The periods, in configuration order."""
        return tuple(self._periods)

    def timezone(self, site: str) -> ZoneInfo:
        """The site's time zone.

        Raises:
            ValueError: the site has no time zone and there is no default.
        """
        zone = self._zones.get(site, self._default)
        if zone is None:
            raise ValueError(f"no time zone for site {site!r}: add it to sites")
        return zone

    def period(self, name: str) -> PeriodConfig:
        """The period called ``name``.

        Raises:
            KeyError: no such period.
        """
        try:
            return self._periods[name]
        except KeyError:
            raise KeyError(f"no period named {name!r}") from None

    def _applies(self, period: PeriodConfig, site: str) -> bool:
        return not period.sites or site in period.sites

    def periods_at(self, moment: dt.datetime | pd.Timestamp, site: str) -> tuple[str, ...]:
        """The periods that ``moment`` (timezone-aware) falls in at ``site``."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} must be timezone-aware")
        local = pd.Timestamp(moment).tz_convert(self.timezone(site))
        return tuple(
            p.name for p in self._periods.values()
            if self._applies(p, site) and _contains(p, local.date(), local.time())
        )

    def occurrences(
        self, name: str, site: str, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime]]:
        """The period's occurrences at ``site`` that overlap ``[start, end)``, as UTC intervals."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        period = self.period(name)
        if not self._applies(period, site):
            return []
        zone = self.timezone(site)
        day = start.astimezone(zone).date() - dt.timedelta(days=1)
        last = end.astimezone(zone).date()
        found = []
        while day <= last:
            if WEEKDAYS[day.weekday()] in period.weekdays and day not in period.except_dates:
                lo = dt.datetime.combine(day, period.start, tzinfo=zone).astimezone(dt.UTC)
                hi = dt.datetime.combine(day, period.end, tzinfo=zone).astimezone(dt.UTC)
                if hi > start and lo < end:
                    found.append((lo, hi))
            day += dt.timedelta(days=1)
        return found

    def mask(
        self,
        frame: pd.DataFrame,
        name: str,
        time_column: str = "start",
        site_column: str = "site",
    ) -> pd.Series:
        """Whether each row of ``frame`` falls in period ``name`` at its site (a bool Series)."""
        period = self.period(name)
        result = pd.Series(False, index=frame.index, dtype=bool)
        for site, rows in frame.groupby(site_column, sort=False, dropna=True):
            if not self._applies(period, str(site)):
                continue
            local = _local(rows[time_column], self.timezone(str(site)))
            result.loc[rows.index] = _contains_vector(period, local)
        return result

    def sql_condition(self, name: str, site: str, time_column: str = "start",
                      local: bool = False) -> tuple[str, list[Any]]:
        """The SQL twin of :meth:`mask` for the rows of one site: a DuckDB condition, true when
        ``time_column`` falls in period ``name`` at ``site``, and its parameters (for ``?``
        placeholders, in order).

        Args:
            name: the period.
            site: the site (its time zone).
            time_column: a zoned timestamp column (or SQL expression).
            local: ``time_column`` already holds the site's wall-clock time (a timestamp without
                zone, as ``timezone(zone, start)`` gives it): converted once by the caller, not
                in each of the condition's terms.

        Raises:
            KeyError: no such period.
            ValueError: the site has no time zone and there is no default.
        """
        period = self.period(name)
        if not self._applies(period, site):
            return "FALSE", []
        zone = self.timezone(site).key
        if local:
            return self._local_condition(period, time_column, [])
        return self._local_condition(period, f"timezone(?, {time_column})", [zone])

    def _local_condition(self, period: PeriodConfig, local: str, local_params: list[Any]
                         ) -> tuple[str, list[Any]]:
        p = local_params
        days = ", ".join(str(WEEKDAYS.index(d) + 1) for d in period.weekdays)
        # list_contains, not IN: DuckDB would plan IN over a column as a join
        sql = (f"(list_contains([{days}]::INTEGER[], isodow({local})) "
               f"AND CAST({local} AS TIME) >= CAST(? AS TIME) "
               f"AND CAST({local} AS TIME) < CAST(? AS TIME)")
        params: list[Any] = [*p, *p, _clock_text(period.start), *p, _clock_text(period.end)]
        if period.except_dates:
            sql += f" AND NOT list_contains(CAST(? AS DATE[]), CAST({local} AS DATE))"
            params += [list(period.except_dates), *p]
        return sql + ")", params

    def label(
        self,
        frame: pd.DataFrame,
        time_column: str = "start",
        site_column: str = "site",
    ) -> pd.DataFrame:
        """A copy of ``frame`` with a ``periods`` column: the tuple of period names of each row."""
        masks = {name: self.mask(frame, name, time_column, site_column) for name in self._periods}
        labels = [
            tuple(name for name in self._periods if masks[name].iat[i]) for i in range(len(frame))
        ]
        out = frame.copy()
        out["periods"] = pd.Series(labels, index=frame.index, dtype=object)
        return out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _contains(period: PeriodConfig, day: dt.date, clock: dt.time) -> bool:
    return (
        WEEKDAYS[day.weekday()] in period.weekdays
        and day not in period.except_dates
        and period.start <= clock < period.end
    )


def _local(times: pd.Series, zone: ZoneInfo) -> pd.Series:
    stamps = pd.to_datetime(times)
    if stamps.dt.tz is None:
        raise ValueError("times must be timezone-aware")
    return stamps.dt.tz_convert(zone)


def _seconds(clock: dt.time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def _clock_text(clock: dt.time) -> str:
    """``clock`` to the whole second, as :func:`_contains_vector` compares it."""
    return f"{clock.hour:02d}:{clock.minute:02d}:{clock.second:02d}"


def _contains_vector(period: PeriodConfig, local: pd.Series) -> np.ndarray:
    weekdays = {WEEKDAYS.index(d) for d in period.weekdays}
    on_day = local.dt.day_of_week.isin(weekdays).to_numpy()
    if period.except_dates:
        on_day = on_day & ~local.dt.date.isin(set(period.except_dates)).to_numpy()
    clock_s = (
        local.dt.hour * 3600 + local.dt.minute * 60 + local.dt.second
        + local.dt.microsecond / 1e6
    ).to_numpy()
    return on_day & (clock_s >= _seconds(period.start)) & (clock_s < _seconds(period.end))
