"""Importing OTLP JSON lines and server request timings into the store."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import connect, schema
from store.importers import import_otlp_jsonl, import_server_timings

NS = 1_000_000_000
T0 = 1_790_000_000 * NS  # 2026-09-22T...Z


def otlp_line(trace_hex: str, span_hex: str, parent_hex: str = "", *, b64: bool = False,
              kind: object = 2, start_ns: int = T0, duration_ns: int = 250_000_000,
              status: object = 0, attributes: list | None = None) -> str:
    def enc(h: str) -> str:
        return base64.b64encode(bytes.fromhex(h)).decode() if b64 and h else h

    span = {
        "traceId": enc(trace_hex), "spanId": enc(span_hex), "parentSpanId": enc(parent_hex),
        "name": "GET /fhir/Patient/{id}", "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + duration_ns),
        "attributes": attributes if attributes is not None else [
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "url.template", "value": {"stringValue": "/fhir/Patient/{id}"}},
            {"key": "http.response.status_code", "value": {"intValue": "200"}},
        ],
        "status": {"code": status},
        "events": [{"timeUnixNano": str(start_ns + 1000), "name": "db.query",
                    "attributes": [{"key": "rows", "value": {"intValue": 3}}]}],
    }
    document = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "epr"}}]},
        "scopeSpans": [{"scope": {"name": "epr.http", "version": "1.2"}, "spans": [span]}],
    }]}
    return json.dumps(document)


def test_otlp_lines_round_trip_with_hex_and_base64_ids(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    lines = [
        otlp_line("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
        otlp_line("0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7", "b7ad6b7169203331",
                  b64=True, kind="SPAN_KIND_INTERNAL", status="STATUS_CODE_ERROR",
                  attributes=[
                      {"key": "flags", "value": {"arrayValue": {"values": [
                          {"boolValue": True}, {"doubleValue": 1.5}]}}},
                      {"key": "db", "value": {"kvlistValue": {"values": [
                          {"key": "system", "value": {"stringValue": "postgresql"}}]}}},
                  ]),
    ]
    path.write_text("\n".join(lines) + "\n")
    store_path = tmp_path / "data"
    report = import_otlp_jsonl(path, store_path)
    assert report.ok and report.lines == 2 and report.spans == 2 and len(report.segments) == 1
    con = connect(store_path)
    rows = con.execute(
        'SELECT "SpanId", "ParentSpanId", "SpanKind", "StatusCode", "ServiceName", "ScopeName", '
        '"Duration", "SpanAttributes", len("Events") FROM spans ORDER BY "SpanKind"').fetchall()
    con.close()
    internal, server = rows
    assert server[:7] == ("b7ad6b7169203331", "", "Server", "Unset", "epr", "epr.http", 250_000_000)
    assert dict(server[7])["http.response.status_code"] == "200"
    assert dict(server[7])[schema.ATTR_SOURCE] == schema.SOURCE_OTLP
    assert server[8] == 1
    assert internal[:4] == ("00f067aa0ba902b7", "b7ad6b7169203331", "Internal", "Error")
    attrs = dict(internal[7])
    assert attrs["flags"] == "[true,1.5]"
    assert json.loads(attrs["db"]) == {"system": "postgresql"}


def test_bad_lines_are_reported_and_skipped_and_nothing_stored_is_lost(
    tmp_path: Path, make_probe
) -> None:
    store_path = tmp_path / "data"
    probe = make_probe(path=store_path)
    probe.run(T0, workflow="open")
    probe_trace = format(probe.memory.get_finished_spans()[0].context.trace_id, "032x")
    lines = [
        "{not json",
        otlp_line(probe_trace, "1111111111111111", start_ns=T0 + 1000),  # joins the probe's run
        json.dumps({"resourceMetrics": []}),
        "",
        otlp_line("zz" * 16, "2222222222222222"),
        otlp_line("ab" * 16, "3333333333333333", kind=9),
    ]
    report = import_otlp_jsonl(lines, store_path)
    assert [(i.line, i.message.split(" ")[0]) for i in report.issues] == [
        (1, "not"), (3, "not"), (5, "traceId"), (6, "unknown")]
    assert str(report.issues[0]).startswith("<lines>:1: not JSON")
    assert report.lines == 5 and report.spans == 1
    con = connect(store_path)
    runs = con.execute("SELECT count(*) FROM runs").fetchone()
    joined = con.execute(
        "SELECT workflow, site, source FROM requests WHERE source = 'server'").fetchall()
    con.close()
    assert runs == (1,)  # the probe's run is still there
    assert joined == [("open", "Ward 7", "server")]  # the server span joined by trace id


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


CSV = """timestamp,endpoint,duration,status
2026-10-01T08:00:00Z,GET /fhir/Patient/{id},120,200
2026-10-01T08:00:01+01:00,GET /fhir/DocumentReference,2400.5,200
2026-10-01T08:00:02Z,/fhir/Observation,80,503
not a time,GET /fhir/Patient,10,200
2026-10-01T08:00:03,GET /fhir/Patient,10,200
2026-10-01T08:00:04Z,GET /fhir/Patient,ten,200
"""


def test_server_timings_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "epr-access.csv"
    path.write_text(CSV)
    store_path = tmp_path / "data"
    report = import_server_timings(path, store_path, duration_unit="ms")
    assert [i.line for i in report.issues] == [5, 6, 7]
    assert "no UTC offset" in report.issues[1].message
    assert report.spans == 3
    con = connect(store_path)
    rows = con.execute(
        "SELECT epoch_ms(start), http_method, url_template, http_status, status, duration_s, source, "
        "span_type, workflow FROM requests ORDER BY start").fetchall()
    source = con.execute(
        f"SELECT DISTINCT \"SpanAttributes\"['{schema.ATTR_SOURCE}'] FROM spans").fetchall()
    con.close()
    assert source == [(schema.SOURCE_SERVER_LOG,)]
    first, second, third = rows
    assert first[0] == ms(dt.datetime(2026, 10, 1, 7, 0, 1, tzinfo=dt.UTC))  # +01:00 converted
    assert first[1:] == ("GET", "/fhir/DocumentReference", 200, "ok", 2.4005, "server", "server", None)
    assert second[1:6] == ("GET", "/fhir/Patient/{id}", 200, "ok", 0.12)
    assert third[1:5] == (None, "/fhir/Observation", 503, "failed")


def test_server_timings_from_parquet_with_assumed_zone(tmp_path: Path) -> None:
    path = tmp_path / "timings.parquet"
    pq.write_table(pa.table({
        "timestamp": ["2026-10-01T09:00:00"], "endpoint": ["GET /fhir/Patient"],
        "duration": [0.5], "status": [200],
    }), path)
    from zoneinfo import ZoneInfo

    report = import_server_timings(path, tmp_path / "data", duration_unit="s",
                                   assume_timezone=ZoneInfo("Europe/London"))
    assert report.ok and report.spans == 1
    con = connect(tmp_path / "data")
    assert con.execute("SELECT epoch_ms(start), duration_s FROM requests").fetchall() == [
        (ms(dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)), 0.5)]
    con.close()


def test_server_timings_need_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("when,endpoint,duration,status\n2026-10-01T08:00:00Z,/a,1,200\n")
    with pytest.raises(ValueError, match="missing column"):
        import_server_timings(path, tmp_path / "data")
    with pytest.raises(ValueError, match="duration_unit"):
        import_server_timings(path, tmp_path / "data", duration_unit="minutes")


def test_gzip_compressed_lines(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "traces.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(otlp_line("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") + "\n")
    report = import_otlp_jsonl(path, tmp_path / "data")
    assert report.ok and report.spans == 1
