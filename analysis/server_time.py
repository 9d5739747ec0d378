"""The server-time lens: what the EPR's own servers measured, beside the wait the probe saw.

Where an instrumented EPR's server spans share a trace with a probe's steps (the probe sends the
W3C ``traceparent``; the EPR sends its spans to the observatory), each step's wait splits into the
server's time and the rest: network, TLS, queueing at the front end, the client. Per workflow x
step x site, :func:`server_time` gives the median wait, the median server time and the median of
the rest (medians of the steps' own values, ``quantile_cont``: never averaged), with the count
of steps that had server spans. :func:`which_part_grew` compares two windows and says in words
which part grew: "server time was flat at 120 ms; the wait at Community hospital grew from 0.4 to
2.1 s: the network or the front end, not the EPR's servers".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd

from analysis.store import Store

__all__ = ["server_time", "which_part_grew"]

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


def which_part_grew(before: pd.DataFrame, after: pd.DataFrame, *,
                    site_title: Callable[[str], str] = str, step_title: Callable[[str, str], str] | None = None,
                    ) -> list[str]:
    """One sentence per workflow x step x site whose wait grew between two :func:`server_time` frames,
    saying whether the EPR's servers or the rest (network, front end) account for it."""
    step_title = step_title or (lambda _workflow, step: f"the {step} step")
    both = before.merge(after, on=KEYS, suffixes=("_before", "_after"))
    sentences = []
    for row in both.itertuples():
        wait_growth = row.wait_s_after - row.wait_s_before
        if wait_growth < GREW_S or wait_growth < GREW_SHARE * row.wait_s_before:
            continue
        server_growth = row.server_s_after - row.server_s_before
        where = f"{step_title(row.workflow, row.step)} at {site_title(row.site)}"
        wait = f"the wait for {where} grew from {_seconds(row.wait_s_before)} to {_seconds(row.wait_s_after)}"
        counts = f"(n = {row.n_before} before, {row.n_after} after)"
        if abs(server_growth) < max(GREW_S / 2, GREW_SHARE * row.server_s_before):
            sentences.append(f"Server time was flat at {_seconds(row.server_s_after)}; {wait}: the network or the "
                             f"front end, not the EPR's servers {counts}.")
        elif server_growth >= wait_growth / 2:
            sentences.append(f"Server time grew from {_seconds(row.server_s_before)} to {_seconds(row.server_s_after)}; "
                             f"{wait}: mostly the EPR's servers {counts}.")
        else:
            sentences.append(f"Server time grew only from {_seconds(row.server_s_before)} to "
                             f"{_seconds(row.server_s_after)}; {wait}: mostly the network or the front end {counts}.")
    return sentences
