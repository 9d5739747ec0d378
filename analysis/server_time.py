"""The server-time lens: what the EPR's own servers measured, beside the wait the probe saw.

Where an instrumented EPR's server spans share a trace with a probe's steps (the probe sends the
W3C ``traceparent``; the EPR sends its spans to the observatory), each step's wait splits into the
server's time and the rest: network, TLS, queueing at the front end, the client. Per workflow x
step x site, :func:`server_time` gives the median wait, the median server time and the median of
the rest (medians of the steps' own values, ``quantile_cont``: never averaged), with the count
of steps that had server spans. :func:`parts_grown` compares two windows (:func:`compared_windows`
picks them inside a window: its first and last thirds) and says which part grew, in words: "server
time was flat at 120 ms; the wait at Community hospital grew from 0.4 to 2.1 s: the network or the
front end, not the EPR's servers". :func:`analysis.findings.find_stories` tells each as a story.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from analysis.store import Store

__all__ = ["MIN_STEPS", "PartGrew", "compared_windows", "parts_grown", "server_time", "which_part_grew"]

KEYS = ["workflow", "step", "site"]
# A wait "grew" when it rose by at least this share and this much: smaller moves are noise.
GREW_SHARE = 0.2
GREW_S = 0.1

_QUERY = """
WITH step AS (
    SELECT trace_id, span_id, workflow, site, step, duration_s
    FROM steps
    WHERE start >= ? AND start < ? AND NOT coalesce(simulated, false) AND status = 'ok'
),
request AS (
    SELECT trace_id, span_id, parent_span_id FROM requests WHERE source = 'probe' AND span_type = 'request'
),
server AS (  -- each server span under the step itself, or under one of the step's requests
    SELECT s.trace_id, coalesce(r.parent_span_id, s.parent_span_id) AS step_span_id, s.duration_s
    FROM requests AS s
    LEFT JOIN request AS r ON r.trace_id = s.trace_id AND r.span_id = s.parent_span_id
    WHERE s.source = 'server' AND s.start >= ? AND s.start < ? + INTERVAL 1 HOUR
),
per_step AS (
    SELECT step.workflow, step.step, step.site, step.duration_s AS wait_s, sum(server.duration_s) AS server_s
    FROM step JOIN server ON server.trace_id = step.trace_id AND server.step_span_id = step.span_id
    GROUP BY step.trace_id, step.span_id, step.workflow, step.step, step.site, step.duration_s
)
SELECT workflow, step, site, count(*) AS n,
       quantile_cont(wait_s, 0.5) AS wait_s,
       quantile_cont(server_s, 0.5) AS server_s,
       quantile_cont(wait_s - server_s, 0.5) AS rest_s
FROM per_step
GROUP BY ALL
ORDER BY workflow, step, site
"""


def server_time(store: Store, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Per workflow x step x site, over the measured ok steps starting in ``[start, end)`` that have
    server spans: ``n``, median ``wait_s``, median ``server_s``, median ``rest_s`` (wait - server)."""
    return store.sql(_QUERY, [start, end, start, end])


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _from_to(before: float, after: float) -> str:
    """"from 0.4 to 2.1 s", "from 90 to 140 ms": one unit for the pair, the larger's."""
    if max(before, after) < 1:
        return f"from {before * 1000:.0f} to {after * 1000:.0f} ms"
    return f"from {before:.1f} to {after:.1f} s"


@dataclass(frozen=True)
class PartGrew:
    """One workflow x step x site whose wait grew between two windows, and which part grew.

    Attributes:
        workflow, step, site: the step's workflow, name and site (ids).
        n_before, n_after: steps with server spans on each side.
        wait_before_s, wait_after_s: the medians of the step's wait.
        server_before_s, server_after_s: the medians of its server time.
        part: ``network`` (server time flat: the network or the front end), ``server`` (the EPR's
            servers grew by at least half the wait's growth) or ``mostly_network`` (they grew less).
    """

    workflow: str
    step: str
    site: str
    n_before: int
    n_after: int
    wait_before_s: float
    wait_after_s: float
    server_before_s: float
    server_after_s: float
    part: str

    @property
    def rest_before_s(self) -> float:
        return self.wait_before_s - self.server_before_s

    @property
    def rest_after_s(self) -> float:
        return self.wait_after_s - self.server_after_s

    @property
    def growth_s(self) -> float:
        return self.wait_after_s - self.wait_before_s

    def clause(self, wait: str = "the wait") -> str:
        """"server time was flat at 120 ms; the wait grew from 0.4 to 2.1 s: the network or the
        front end, not the EPR's servers" (``wait`` names what waited)."""
        grew = f"{wait} grew {_from_to(self.wait_before_s, self.wait_after_s)}"
        if self.part == "network":
            return (f"server time was flat at {_seconds(self.server_after_s)}; {grew}: the network or the "
                    f"front end, not the EPR's servers")
        server = _from_to(self.server_before_s, self.server_after_s)
        if self.part == "server":
            return f"server time grew {server}; {grew}: mostly the EPR's servers"
        return f"server time grew only {server}; {grew}: mostly the network or the front end"


def parts_grown(before: pd.DataFrame, after: pd.DataFrame) -> list[PartGrew]:
    """Each workflow x step x site of two :func:`server_time` frames whose wait grew (by at least
    ``GREW_SHARE`` and ``GREW_S``), with the part that grew; the largest growth first."""
    both = before.merge(after, on=KEYS, suffixes=("_before", "_after"))
    out = []
    for row in both.itertuples():
        wait_growth = row.wait_s_after - row.wait_s_before
        if wait_growth < GREW_S or wait_growth < GREW_SHARE * row.wait_s_before:
            continue
        server_growth = row.server_s_after - row.server_s_before
        if abs(server_growth) < max(GREW_S / 2, GREW_SHARE * row.server_s_before):
            part = "network"
        elif server_growth >= wait_growth / 2:
            part = "server"
        else:
            part = "mostly_network"
        out.append(PartGrew(str(row.workflow), str(row.step), str(row.site), int(row.n_before), int(row.n_after),
                            float(row.wait_s_before), float(row.wait_s_after), float(row.server_s_before),
                            float(row.server_s_after), part))
    return sorted(out, key=lambda p: -p.growth_s)


def which_part_grew(before: pd.DataFrame, after: pd.DataFrame, *,
                    site_title: Callable[[str], str] = str, step_title: Callable[[str, str], str] | None = None,
                    ) -> list[str]:
    """One sentence per workflow x step x site whose wait grew between two :func:`server_time` frames,
    saying whether the EPR's servers or the rest (network, front end) account for it."""
    step_title = step_title or (lambda _workflow, step: f"the {step} step")
    return [f"{_capital(p.clause(f'the wait for {step_title(p.workflow, p.step)} at {site_title(p.site)}'))} "
            f"(n = {p.n_before} before, {p.n_after} after)."
            for p in parts_grown(before, after)]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# Each side of a comparison holds at least this many steps with server spans.
MIN_STEPS = 5


def compared_windows(store: Store, start: dt.datetime, end: dt.datetime
                     ) -> tuple[tuple[dt.datetime, dt.datetime], tuple[dt.datetime, dt.datetime]] | None:
    """The windows :func:`server_time` compares inside ``[start, end)``: the first and the last
    third of the time between the first and the last measured step with server spans (the middle
    third is left out, so a change part-way through is seen whole on either side); ``None`` when
    there are none."""
    first, last = store.sql(
        "SELECT min(s.start), max(s.start) FROM steps AS s JOIN requests AS q ON q.trace_id = s.trace_id "
        "WHERE q.source = 'server' AND s.start >= ? AND s.start < ? AND q.start >= ? AND q.start < ? + INTERVAL 1 HOUR "
        "AND NOT coalesce(s.simulated, false)", [start, end, start, end]).iloc[0]
    if pd.isna(first) or first == last:
        return None
    first, last = pd.Timestamp(first).to_pydatetime(), pd.Timestamp(last).to_pydatetime()
    third = (last - first) / 3
    return (first, first + third), (last - third, last + dt.timedelta(microseconds=1))
