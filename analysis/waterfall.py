"""One run's waterfall: every span of its trace in tree order, and the page's moments.

A run's trace holds the probe's spans (the run, its steps, their requests; for a browser run the
requests the page made) and, when the EPR is instrumented and its spans reached the store, the
EPR's own server spans, joined by the W3C ``traceparent`` the probe sent. A browser step sends
its own span id with every request its page makes, so the EPR's spans of a browser run are
children of the step; :func:`run_waterfall` places each under the page's request it answered
(same method and route, the server's span within the request's time), so each request shows
beside the time the EPR's servers spent on it.

The moments a browser step records as events on its span are the waterfall's marks: its long
tasks (the page's main thread busy for 50 ms or more, with their durations), the largest
contentful paints, and the moment what the step waited for was on the screen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from analysis.store import Store
from store import schema as s

__all__ = ["MARK_KINDS", "Waterfall", "run_waterfall"]

# The marks a browser step records, in the order they are drawn.
MARK_KINDS = (s.EVENT_LONG_TASK, s.EVENT_LCP, s.EVENT_VISIBLE)
# A server span is dated by the EPR's clock: it is placed under a request it falls within by this much.
_CLOCK_SLACK = pd.Timedelta(milliseconds=50)


@dataclass(frozen=True)
class Waterfall:
    """One run's spans and marks.

    Attributes:
        spans: ``span_id, parent_span_id, name, start`` (UTC), ``duration_s, source`` (``probe``
            or ``server``: the EPR's own), ``span_type, step, http_status, error_type, depth``;
            parents before children, children by start time.
        marks: ``span_id`` (the step's), ``kind`` (one of :data:`MARK_KINDS`), ``at`` (UTC),
            ``duration_s`` (a long task's; NaN for a moment).
    """

    spans: pd.DataFrame
    marks: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.spans.empty


def run_waterfall(store: Store, trace_id: str,
                  between: tuple[dt.datetime, dt.datetime] | None = None) -> Waterfall:
    """The spans and marks of the run whose trace is ``trace_id``.

    Args:
        store: anything with ``sql`` over the ``spans`` view (a :class:`Store`, or a reader of a
            few segments).
        between: only spans that start in ``[start, end)``, when the caller knows when the run
            happened: segments are sorted by start time, so the rest of them is skipped unread.
    """
    when, params = "", [trace_id]
    if between is not None:
        when = f'AND "{s.TIMESTAMP}" >= ? AND "{s.TIMESTAMP}" < ?'
        params += list(between)
    frame = store.sql(f"""
        SELECT "{s.SPAN_ID}" AS span_id, "{s.PARENT_SPAN_ID}" AS parent_span_id, "{s.SPAN_NAME}" AS name,
               "{s.TIMESTAMP}" AS start, "{s.DURATION}" / 1e9 AS duration_s,
               CASE WHEN "{s.SPAN_KIND}" = 'Server' THEN 'server' ELSE 'probe' END AS source,
               "{s.SPAN_TYPE}" AS span_type, "{s.STEP}" AS step,
               CAST("{s.HTTP_STATUS_CODE}" AS INTEGER) AS http_status,
               "{s.ERROR_TYPE_COLUMN}" AS error_type
        FROM spans WHERE "{s.TRACE_ID}" = ? {when} ORDER BY "{s.TIMESTAMP}", "{s.SPAN_ID}"
    """, params)
    marks = store.sql(f"""
        WITH event AS (
            SELECT "{s.SPAN_ID}" AS span_id, unnest("{s.EVENTS}") AS e
            FROM spans WHERE "{s.TRACE_ID}" = ? {when} AND "{s.SPAN_TYPE}" = '{s.SPAN_TYPE_STEP}'
        )
        SELECT span_id, e."Name" AS kind, e."Timestamp" AS "at",
               TRY_CAST(map_extract_value(e."Attributes", '{s.ATTR_EVENT_DURATION_S}') AS DOUBLE) AS duration_s
        FROM event WHERE e."Name" IN ({", ".join(f"'{kind}'" for kind in MARK_KINDS)})
        ORDER BY "at", span_id
    """, params)
    marks["at"] = pd.to_datetime(marks["at"], utc=True)
    return Waterfall(_in_tree_order(_under_page_requests(frame)), marks.reset_index(drop=True))


def _under_page_requests(frame: pd.DataFrame) -> pd.DataFrame:
    """Each server span whose parent is a browser step, under the page's request it answered: the
    request of the step with the same name (method and route) that was in flight when the server's
    span began (nearest start first). Others stay where their trace put them."""
    pages = frame[frame["span_type"] == s.SPAN_TYPE_PAGE_REQUEST]
    if pages.empty:
        return frame
    frame = frame.copy()
    ends = pages["start"] + pd.to_timedelta(pages["duration_s"], unit="s")
    taken: set[str] = set()
    for i in frame.index[frame["source"] == "server"]:
        parent, name, start = frame.at[i, "parent_span_id"], frame.at[i, "name"], frame.at[i, "start"]
        fits = pages[(pages["parent_span_id"] == parent) & (pages["name"] == name)
                     & (pages["start"] - _CLOCK_SLACK <= start) & (start <= ends + _CLOCK_SLACK)
                     & ~pages["span_id"].isin(taken)]
        if not fits.empty:
            chosen = fits.loc[(fits["start"] - start).abs().idxmin(), "span_id"]
            taken.add(chosen)
            frame.at[i, "parent_span_id"] = chosen
    return frame


def _in_tree_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Depth-first order (children after their parent, by start time) and each span's depth."""
    if frame.empty:
        return frame.assign(depth=pd.Series(dtype="int64"))
    frame = frame.reset_index(drop=True)
    children: dict[str, list[int]] = {}
    ids = set(frame["span_id"])
    roots: list[int] = []
    for i, parent in enumerate(frame["parent_span_id"]):
        if parent and parent in ids:
            children.setdefault(parent, []).append(i)
        else:
            roots.append(i)
    order: list[int] = []
    depth: list[int] = []
    stack = [(i, 0) for i in reversed(roots)]
    while stack:
        i, d = stack.pop()
        order.append(i)
        depth.append(d)
        stack.extend((c, d + 1) for c in reversed(children.get(frame.at[i, "span_id"], [])))
    return frame.iloc[order].assign(depth=depth).reset_index(drop=True)
