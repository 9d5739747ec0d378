"""The testbed's latency model: the ground truth the probes are checked against.

:func:`modelled_delay` is a pure function of ``(endpoint, site, at, scenario)``: no clock, no I/O, no
hidden state. The live server calls it with "now" and really waits the result; the history
simulator calls it with an explicit clock. The same input always gives the same :class:`Delay`.

The formula, for a request to route key ``endpoint`` from ``site`` at instant ``at``:

    local    = at converted to the site's time zone (the scenario's ``timezone`` for an unknown
               or absent site)
    base     = scenario.service_ms[endpoint]   (exact key, else first matching pattern, else
               "default")
    load     = load_curve(local)               (weekday or weekend points, linear interpolation
               over the time of day, wrapping at midnight; 1.0 when no points)
    jitter   = jitter_ms * u                   u in [0, 1) from a BLAKE2b hash of
               (endpoint, site, at in UTC to the microsecond): pure, no RNG state
    effect e = add_ms_e + base * (multiplier_e - 1)  for every active period or change e that
               matches the endpoint and site:
                 a period is active on its weekdays, start <= local time-of-day < end, and with a
                 ``stall`` only while (local - start) mod every_min < duration_min;
                 a change is active from ``at`` (inclusive) to ``until`` (exclusive), in UTC
    tail t   = add_ms_t  when v_t < probability_t, for every tail t matching endpoint and site;
               v_t in [0, 1) from the same hash salted with the tail's name (so a share
               ``probability_t`` of requests is hit, deterministically)
    service  = max(0, base * load + jitter + sum(effects) + sum(tails))
    network  = sites[site].network_delay_ms    (0 for an unknown or absent site)
               + network_add_ms_c  for every active change c matching the endpoint and site (a
               degraded link: the wait grows, the server's span does not)
    total    = service + network

During an outage matching the endpoint (start <= at < end, UTC) the request is answered with the
outage's status instead, after ``service = outage.response_ms`` (plus the network delay).

:class:`Delay` keeps the named contributions (``base``, ``load``, ``jitter``, each effect's name,
``network``, ``floor`` when the clamp at 0 applied, or the outage's name), which sum to the total,
so a test or the dashboard can explain a delay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from testbed.scenario import (
    WEEKDAYS,
    Change,
    LoadCurve,
    Outage,
    PeriodEffect,
    Scenario,
    endpoint_matches,
)

__all__ = [
    "Contribution",
    "Delay",
    "is_outage",
    "load_multiplier",
    "modelled_delay",
    "outage_at",
    "site_local_time",
]


@dataclass(frozen=True)
class Contribution:
    """One named part of a delay, in seconds (may be negative: a load below 1.0)."""

    name: str
    seconds: float


@dataclass(frozen=True)
class Delay:
    """The modelled delay of one request.

    Attributes:
        endpoint: the route key, e.g. ``"GET /Patient/{id}"``.
        site: the site name as given (None when absent).
        at: the instant, in UTC.
        local_time: the instant in the time zone the periods were evaluated in.
        service_s: server-side time, seconds.
        network_s: network delay of the site, seconds.
        total_s: ``service_s + network_s``.
        contributions: named parts that sum to ``total_s``.
        outage_status: the HTTP status to answer with during an outage, else None.
    """

    endpoint: str
    site: str | None
    at: datetime
    local_time: datetime
    service_s: float
    network_s: float
    total_s: float
    contributions: tuple[Contribution, ...]
    outage_status: int | None = None

    def contribution_s(self, name: str) -> float:
        """The contribution named ``name`` in seconds (0.0 when it did not apply)."""
        return sum(c.seconds for c in self.contributions if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the contributions, in order."""
        return tuple(c.name for c in self.contributions)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (instants as ISO 8601 strings, durations in seconds)."""
        return {
            "endpoint": self.endpoint,
            "site": self.site,
            "at": self.at.isoformat(),
            "local_time": self.local_time.isoformat(),
            "service_s": self.service_s,
            "network_s": self.network_s,
            "total_s": self.total_s,
            "outage_status": self.outage_status,
            "contributions": [{"name": c.name, "seconds": c.seconds}
                              for c in self.contributions],
        }


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be a time-zone-aware datetime")
    return at.astimezone(UTC)


def site_local_time(at: datetime, site: str | None, scenario: Scenario) -> datetime:
    """``at`` in the site's time zone (the scenario's ``timezone`` for an unknown/absent site)."""
    at_utc = _require_aware(at)
    site_model = scenario.sites.get(site) if site is not None else None
    tz = site_model.timezone if site_model is not None else scenario.timezone
    return at_utc.astimezone(ZoneInfo(tz))


def _seconds_of_day(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def load_multiplier(local: datetime, curve: LoadCurve) -> float:
    """The load-curve multiplier at site-local ``local``: linear between points, wrapping at 24 h."""
    points = curve.weekend if local.weekday() >= 5 else curve.weekday
    if not points:
        return 1.0
    if len(points) == 1:
        return points[0][1]
    xs = [_seconds_of_day(t) for t, _ in points]
    ys = [m for _, m in points]
    x = _seconds_of_day(local.time())
    day = 86400.0
    for i in range(len(xs)):
        x0, y0 = xs[i], ys[i]
        x1, y1 = (xs[i + 1], ys[i + 1]) if i + 1 < len(xs) else (xs[0] + day, ys[0])
        xq = x if x >= xs[0] else x + day
        if x0 <= xq < x1:
            return y0 + (y1 - y0) * (xq - x0) / (x1 - x0)
    return ys[0]  # unreachable for sorted points; keeps the function total


def _period_active(period: PeriodEffect, local: datetime) -> bool:
    if WEEKDAYS[local.weekday()] not in period.days:
        return False
    now_s = _seconds_of_day(local.time())
    start_s, end_s = _seconds_of_day(period.start), _seconds_of_day(period.end)
    if not start_s <= now_s < end_s:
        return False
    if period.stall is None:
        return True
    into_window_s = now_s - start_s
    return into_window_s % (period.stall.every_min * 60) < period.stall.duration_min * 60


def _change_active(change: Change, at_utc: datetime) -> bool:
    return change.at <= at_utc and (change.until is None or at_utc < change.until)


def outage_at(at: datetime, scenario: Scenario, endpoint: str | None = None) -> Outage | None:
    """The outage covering instant ``at`` (and ``endpoint`` when given), or None."""
    at_utc = _require_aware(at)
    for outage in scenario.outages:
        if outage.start <= at_utc < outage.end and (
            endpoint is None or endpoint_matches(endpoint, outage.endpoints)
        ):
            return outage
    return None


def is_outage(at: datetime, scenario: Scenario, endpoint: str | None = None) -> bool:
    """True when an outage of ``scenario`` covers ``at`` (for ``endpoint`` when given)."""
    return outage_at(at, scenario, endpoint) is not None


def _unit_hash(endpoint: str, site: str | None, at_utc: datetime, salt: str = "") -> float:
    key = f"{salt}|{endpoint}|{site or ''}|{at_utc.isoformat(timespec='microseconds')}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _site_applies(sites: list[str] | None, site: str | None) -> bool:
    return sites is None or site in sites


def modelled_delay(endpoint: str, site: str | None, at: datetime, scenario: Scenario) -> Delay:
    """The modelled delay of a request (pure; see the module docstring for the formula).

    Args:
        endpoint: route key, e.g. ``"GET /Patient/{id}"``, ``"GET /Observation"`` (search).
        site: the site the request comes from (``X-Wardwatch-Site``); None or an unknown name means
            no network delay and the scenario's time zone.
        at: when the request arrives; must be time-zone aware.
        scenario: the scenario whose model applies.

    Raises:
        ValueError: ``at`` is naive.
    """
    at_utc = _require_aware(at)
    local = site_local_time(at_utc, site, scenario)
    site_model = scenario.sites.get(site) if site is not None else None
    network_s = (site_model.network_delay_ms if site_model is not None else 0.0) / 1000.0
    parts: list[Contribution] = []

    outage = outage_at(at_utc, scenario, endpoint)
    if outage is not None:
        service_s = outage.response_ms / 1000.0
        parts.append(Contribution(outage.name, service_s))
    else:
        base_ms = scenario.base_service_ms(endpoint)
        load = load_multiplier(local, scenario.load_curve)
        parts.append(Contribution("base", base_ms / 1000.0))
        if load != 1.0:
            parts.append(Contribution("load", base_ms * (load - 1.0) / 1000.0))
        if scenario.jitter_ms > 0:
            u = _unit_hash(endpoint, site, at_utc)
            parts.append(Contribution("jitter", scenario.jitter_ms * u / 1000.0))
        for period in scenario.periods:
            if (endpoint_matches(endpoint, period.endpoints)
                    and _site_applies(period.sites, site)
                    and _period_active(period, local)):
                ms = period.add_ms + base_ms * (period.multiplier - 1.0)
                parts.append(Contribution(period.name, ms / 1000.0))
        for tail in scenario.tails:
            if (endpoint_matches(endpoint, tail.endpoints)
                    and _site_applies(tail.sites, site)
                    and _unit_hash(endpoint, site, at_utc, salt=f"tail:{tail.name}")
                    < tail.probability):
                parts.append(Contribution(tail.name, tail.add_ms / 1000.0))
        for change in scenario.changes:
            if (endpoint_matches(endpoint, change.endpoints)
                    and _site_applies(change.sites, site)
                    and _change_active(change, at_utc)):
                ms = change.add_ms + base_ms * (change.multiplier - 1.0)
                parts.append(Contribution(change.name, ms / 1000.0))
        raw_s = sum(p.seconds for p in parts)
        if raw_s < 0:
            parts.append(Contribution("floor", -raw_s))
        service_s = max(0.0, raw_s)
    if network_s:
        parts.append(Contribution("network", network_s))
    for change in scenario.changes:  # a degraded link: network time, outside the server's span
        if (change.network_add_ms and endpoint_matches(endpoint, change.endpoints)
                and _site_applies(change.sites, site) and _change_active(change, at_utc)):
            parts.append(Contribution(change.name, change.network_add_ms / 1000.0))
            network_s += change.network_add_ms / 1000.0
    return Delay(
        endpoint=endpoint,
        site=site,
        at=at_utc,
        local_time=local,
        service_s=service_s,
        network_s=network_s,
        total_s=service_s + network_s,
        contributions=tuple(parts),
        outage_status=outage.status if outage is not None else None,
    )
