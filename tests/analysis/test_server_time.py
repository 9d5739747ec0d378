"""The server-time lens over spans as the probe and an instrumented EPR write them: each step's wait
beside the server spans under it, and which part grew, in words."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import analysis
from analysis.server_time import server_time, which_part_grew
from store import schema, write_spans

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
NS = 1_000_000_000


def run_rows(n: int, at: dt.datetime, site: str, wait_s: float, server_s: float, via_request: bool = False) -> list[dict]:
    """A run with one step (optionally through a request span), and the EPR's server span under it."""
    start = int(at.timestamp() * NS)
    trace, root, step, request, server = (f"{n:032x}", f"{n:014x}01", f"{n:014x}02", f"{n:014x}03", f"{n:014x}04")
    resource = {schema.ATTR_SITE: site, schema.SERVICE_NAME_ATTR: "wardwatch-probe"}
    rows = [
        {schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: root, schema.DURATION: int(wait_s * NS),
         schema.RESOURCE_ATTRIBUTES: resource, schema.SPAN_ATTRIBUTES: {
             schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_WORKFLOW: "open", schema.ATTR_RUN_STATUS: "ok",
             schema.ATTR_RUN_WAITING_S: wait_s}},
        {schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: step, schema.PARENT_SPAN_ID: root,
         schema.DURATION: int(wait_s * NS), schema.SPAN_KIND: "Client", schema.RESOURCE_ATTRIBUTES: resource,
         schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, schema.ATTR_WORKFLOW: "open",
                                  schema.ATTR_STEP: "read", schema.ATTR_STEP_INDEX: 0,
                                  schema.HTTP_RESPONSE_STATUS_CODE: 200}},
    ]
    parent = step
    if via_request:
        rows.append({schema.TIMESTAMP: start, schema.TRACE_ID: trace, schema.SPAN_ID: request, schema.PARENT_SPAN_ID: step,
                     schema.DURATION: int(wait_s * NS), schema.SPAN_KIND: "Client", schema.RESOURCE_ATTRIBUTES: resource,
                     schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_REQUEST, schema.ATTR_STEP: "read",
                                              schema.HTTP_RESPONSE_STATUS_CODE: 200}})
        parent = request
    rows.append({schema.TIMESTAMP: start + NS // 100, schema.TRACE_ID: trace, schema.SPAN_ID: server,
                 schema.PARENT_SPAN_ID: parent, schema.DURATION: int(server_s * NS), schema.SPAN_KIND: "Server",
                 schema.RESOURCE_ATTRIBUTES: {schema.SERVICE_NAME_ATTR: "epr"},
                 schema.SPAN_ATTRIBUTES: {schema.HTTP_ROUTE: "/fhir/Patient/{id}", schema.HTTP_RESPONSE_STATUS_CODE: 200}})
    return rows


def test_which_part_grew_the_network_not_the_servers(tmp_path: Path) -> None:
    rows, n = [], 0
    for week, community_wait in ((0, 0.4), (7, 2.1)):
        for i in range(5):
            at = T0 + dt.timedelta(days=week, minutes=i)
            n += 1
            rows += run_rows(n, at, "community-hospital", community_wait, 0.12, via_request=bool(i % 2))
            n += 1
            rows += run_rows(n, at, "ward-7", 0.3 if week == 0 else 1.5, 0.1 if week == 0 else 1.2)
    write_spans(tmp_path, rows)
    with analysis.open_store(tmp_path) as store:
        before = server_time(store, T0, T0 + dt.timedelta(days=1))
        after = server_time(store, T0 + dt.timedelta(days=7), T0 + dt.timedelta(days=8))
    community = before[before["site"] == "community-hospital"].iloc[0]
    assert (community["n"], community["wait_s"], round(community["server_s"], 3)) == (5, 0.4, 0.12)
    assert round(community["rest_s"], 3) == 0.28
    titles = {"community-hospital": "Community hospital", "ward-7": "Ward 7"}
    sentences = which_part_grew(before, after, site_title=titles.get,
                                step_title=lambda _w, step: f"the {step} step of opening a record")
    assert sentences == [
        "Server time was flat at 120 ms; the wait for the read step of opening a record at Community hospital grew "
        "from 0.4 to 2.1 s: the network or the front end, not the EPR's servers (n = 5 before, 5 after).",
        "Server time grew from 0.1 to 1.2 s; the wait for the read step of opening a record at Ward 7 grew from "
        "0.3 to 1.5 s: mostly the EPR's servers (n = 5 before, 5 after).",
    ]
