"""SLA attainment as SQL over the store's ``requests`` view: the requests a contract counts.

An SLA (:class:`analysis.config.SLAConfig`) counts the requests of its data source, workflows,
sites and endpoints that start in its compliance window, inside its service hours (local time in
its zone) and outside every agreed exclusion; a request is good as its metric says (answered
within the threshold, or the target for ``mean`` and ``percentile``; not failed for
``availability``). :mod:`analysis.sla` builds every SLA figure (counts, mean, ``quantile_cont``,
slices, the error budget's days) on :func:`counted_requests_sql`, so a month of requests is
aggregated in DuckDB and never loaded.

dialect: ``timezone(zone, ts)`` (a zoned timestamp's wall-clock time; ClickHouse ``toTimeZone``),
``isodow``, ``list_contains`` and ``GLOB`` are DuckDB's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from analysis.config import WEEKDAYS, ExclusionConfig, ServiceHoursConfig, SLAConfig

__all__ = ["counted_requests_sql"]


def _hours(sla: SLAConfig) -> tuple[str, list[Any]]:
    if not isinstance(sla.service_hours, ServiceHoursConfig):
        return "TRUE", []
    h = sla.service_hours
    days = ", ".join(str(WEEKDAYS.index(d) + 1) for d in h.weekdays)  # isodow: Monday is 1
    local = "timezone(?, start)"
    sql = (f"(isodow({local}) IN ({days}) AND CAST({local} AS TIME) >= CAST(? AS TIME) "
           f"AND CAST({local} AS TIME) < CAST(? AS TIME)")
    params: list[Any] = [sla.timezone, sla.timezone, h.start.isoformat(), sla.timezone,
                         h.end.isoformat()]
    if h.except_dates:
        sql += f" AND NOT list_contains(CAST(? AS DATE[]), CAST({local} AS DATE))"
        params += [list(h.except_dates), sla.timezone]
    return sql + ")", params


def _excluded(exclusions: list[ExclusionConfig]) -> tuple[str, list[Any]]:
    if not exclusions:
        return "FALSE", []
    sql = " OR ".join("(start >= ? AND start < ?)" for _ in exclusions)
    params: list[Any] = []
    for ex in exclusions:
        params += [ex.start.astimezone(dt.UTC), ex.end.astimezone(dt.UTC)]
    return f"({sql})", params


def _good(sla: SLAConfig) -> tuple[str, list[Any]]:
    if sla.metric == "availability":
        return "(status = 'ok')", []
    limit = float(sla.threshold_s if sla.metric == "share_under" and sla.threshold_s else sla.target)
    return "(status <> 'timed_out' AND duration_s <= ?)", [limit]


def _where(sla: SLAConfig, start: dt.datetime, end: dt.datetime) -> tuple[str, list[Any]]:
    clauses = ["start >= ?", "start < ?", "source = ?"]
    params: list[Any] = [start.astimezone(dt.UTC), end.astimezone(dt.UTC), sla.data_source]
    if sla.workflows:
        clauses.append("list_contains(?, workflow)")
        params.append(list(sla.workflows))
    if sla.sites:
        clauses.append("list_contains(?, site)")
        params.append(list(sla.sites))
    if sla.endpoints:
        clauses.append("(" + " OR ".join("coalesce(url_template, '') GLOB ?"
                                         for _ in sla.endpoints) + ")")
        params += list(sla.endpoints)
    if sla.data_source == "probe":
        # A run the probe's own stop cut off is a fact about the probe, not the EPR: none of its
        # requests is judged (a run starts at most a day before its requests).
        clauses.append("trace_id NOT IN (SELECT trace_id FROM runs WHERE status = 'interrupted' "
                       "AND start >= ? AND start < ?)")
        params += [start.astimezone(dt.UTC) - dt.timedelta(days=1), end.astimezone(dt.UTC)]
    return " AND ".join(clauses), params


def counted_requests_sql(sla: SLAConfig, start: dt.datetime, end: dt.datetime,
                         exclusions: Sequence[ExclusionConfig],
                         columns: str = "start, duration_s, status") -> tuple[str, list[Any]]:
    """``WITH base AS (...)``: the SLA's candidate requests in ``[start, end)`` over the store's
    ``requests`` view, with ``in_hours`` (its service hours, in its zone), ``excluded`` (inside
    one of ``exclusions``) and ``good`` (as its metric counts a request) flags, and the query's
    parameters. The requests it counts are those ``WHERE in_hours AND NOT excluded``."""
    hours, p_hours = _hours(sla)
    excluded, p_excluded = _excluded(exclusions)
    good, p_good = _good(sla)
    where, p_where = _where(sla, start, end)
    sql = (f"WITH base AS (SELECT {columns}, {hours} AS in_hours, {excluded} AS excluded, "
           f"coalesce({good}, false) AS good FROM requests WHERE {where})")
    return sql, [*p_hours, *p_excluded, *p_good, *p_where]
