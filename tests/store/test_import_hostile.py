"""Hostile import files (issue 18 items 3, 7 and 8): nothing of a patient is stored, a span is
stored once however often (or however interrupted) its import runs, and one bad line never costs
the good ones.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from store import connect, list_segments, schema
from store.importers import import_otlp_jsonl, import_server_timings
from store.redact import redact_url, spreadsheet_safe, template_path, template_target
from tests.store.test_import import T0, otlp_line

GOOD_CSV_ROWS = [f"2026-10-01T08:00:{i:02d}Z,GET /fhir/Patient/{{id}},{100 + i},200" for i in range(10)]


def stored_bytes(store_path: Path) -> bytes:
    """Every value of every stored segment as text (attribute maps and events included)."""
    out = []
    for segment in list_segments(store_path):
        out.append(json.dumps(pq.read_table(segment).to_pylist(), default=str))
    return "\n".join(out).encode()


def id_counts(store_path: Path) -> tuple[int, int]:
    con = connect(store_path)
    try:
        return con.execute('SELECT count(*), count(DISTINCT ("TraceId", "SpanId")) FROM spans').fetchone()
    finally:
        con.close()


# -- item 3: redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "template"), [
    ("/fhir/Patient/MRN123456", "/fhir/Patient/{id}"),
    ("/fhir/Patient/SMITH", "/fhir/Patient/{id}"),
    ("/fhir/Patient/{id}", "/fhir/Patient/{id}"),
    ("/fhir/Patient/{patient_id}/_history/3", "/fhir/Patient/{patient_id}/_history/{id}"),
    ("/fhir/r4/Patient/$everything", "/fhir/r4/Patient/$everything"),
    ("/fhir/Patient/pat-0001/$everything", "/fhir/Patient/{id}/$everything"),
    ("/api/v1/patients/9434765919/notes", "/api/v1/patients/{id}/notes"),
    ("/fhir/Observation", "/fhir/Observation"),
    ("/fhir/Patient/0f8fad5b-d9cb-469f-a165-70867728950e", "/fhir/Patient/{id}"),
    ("/search/john.smith@nhs.net", "/search/{id}"),
    ("/api/patients/smith/notes", "/api/patients/{id}/notes"),
    ("/api/patients/_search", "/api/patients/_search"),
])
def test_paths_are_templated_words_kept_ids_replaced(path: str, template: str) -> None:
    assert template_path(path) == template


def test_queries_and_urls_are_redacted() -> None:
    assert template_target("/fhir/Patient?identifier=MRN123456&family=SMITH") == (
        "/fhir/Patient?identifier=REDACTED&family=REDACTED")
    assert redact_url("https://clinician:pw@epr.example:8443/fhir/Patient/MRN1?family=SMITH") == (
        "https://epr.example:8443/fhir/Patient/{id}?family=REDACTED")


def test_imported_otlp_spans_carry_no_patient_data(tmp_path: Path) -> None:
    attributes = [
        {"key": "url.template", "value": {"stringValue": "/fhir/Patient/MRN123456"}},
        {"key": "url.full", "value": {"stringValue": "https://epr.example/fhir/Patient?identifier=MRN123456"}},
        {"key": "url.query", "value": {"stringValue": "family=SMITH&given=John"}},
        {"key": "http.target", "value": {"stringValue": "/fhir/Patient/MRN123456?_format=json"}},
        {"key": "http.response.status_code", "value": {"intValue": "500"}},
    ]
    line = json.loads(otlp_line("ab" * 16, "cd" * 8, attributes=attributes, status=2))
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["name"] = "GET /fhir/Patient/MRN123456"
    span["status"]["message"] = "no record for Patient John SMITH MRN123456"
    span["events"] = [{"timeUnixNano": str(T0 + 5), "name": "exception", "attributes": [
        {"key": "exception.type", "value": {"stringValue": "LookupError"}},
        {"key": "exception.message", "value": {"stringValue": "SMITH MRN123456 not found"}}]}]
    report = import_otlp_jsonl([json.dumps(line)], tmp_path / "data")
    assert report.ok and report.spans == 1
    stored = stored_bytes(tmp_path / "data")
    for secret in (b"MRN123456", b"SMITH", b"John"):
        assert secret not in stored
    con = connect(tmp_path / "data")
    row = con.execute(f'''SELECT "SpanName", "StatusMessage", "SpanAttributes"['{schema.URL_TEMPLATE}'],
        "SpanAttributes"['{schema.URL_QUERY}'], "SpanAttributes"['url.full'] FROM spans''').fetchone()
    con.close()
    assert row == ("GET /fhir/Patient/{id}", "", "/fhir/Patient/{id}", "family=REDACTED&given=REDACTED",
                   "https://epr.example/fhir/Patient?identifier=REDACTED")


def test_imported_request_timings_carry_no_patient_data(tmp_path: Path) -> None:
    path = tmp_path / "epr.csv"
    path.write_text("timestamp,endpoint,duration,status\n"
                    "2026-10-01T08:00:00Z,GET /fhir/Patient?identifier=MRN123456&family=SMITH,120,200\n"
                    "2026-10-01T08:00:01Z,GET /fhir/Patient/MRN123456,80,200\n", encoding="utf-8")
    report = import_server_timings(path, tmp_path / "data")
    assert report.ok and report.spans == 2
    stored = stored_bytes(tmp_path / "data")
    assert b"MRN123456" not in stored and b"SMITH" not in stored
    con = connect(tmp_path / "data")
    rows = con.execute("SELECT url_template FROM requests ORDER BY start").fetchall()
    con.close()
    assert rows == [("/fhir/Patient",), ("/fhir/Patient/{id}",)]


def test_spreadsheet_formulas_are_neutralised_in_the_csv_report() -> None:
    import analysis.report

    assert spreadsheet_safe("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)" and spreadsheet_safe("-0.5") == "-0.5"
    assert spreadsheet_safe(3) == 3 and spreadsheet_safe("ward rounds") == "ward rounds"

    class _Report:  # to_csv reads only the tables
        pass

    tables = [("slas", ["name", "value"], [["=cmd|' /C calc'!A0", 1], ["+1+1", "ok"]])]
    original = analysis.report._tables
    analysis.report._tables = lambda _report: tables  # type: ignore[assignment]
    try:
        text = analysis.report.to_csv(_Report())  # type: ignore[arg-type]
    finally:
        analysis.report._tables = original  # type: ignore[assignment]
    cells = [cell for line in text.splitlines() for cell in line.split(",")]
    assert not any(cell.lstrip('"').startswith(("=", "+", "@")) for cell in cells), text


# -- item 7: idempotent imports ------------------------------------------------------------------------


def test_importing_the_same_files_twice_stores_each_span_once(tmp_path: Path) -> None:
    lines = tmp_path / "spans.jsonl"
    lines.write_text("\n".join(otlp_line(f"{i:032x}", f"{i + 1:016x}", start_ns=T0 + i) for i in range(1, 301)) + "\n")
    timings = tmp_path / "epr.csv"
    timings.write_text("timestamp,endpoint,duration,status\n" + "\n".join(GOOD_CSV_ROWS + GOOD_CSV_ROWS[:2]) + "\n")
    data = tmp_path / "data"
    first = import_otlp_jsonl(lines, data, batch_spans=64), import_server_timings(timings, data, batch_spans=5)
    again = import_otlp_jsonl(lines, data, batch_spans=64), import_server_timings(timings, data, batch_spans=5)
    assert [r.spans for r in first] == [300, 12]  # two identical rows are two requests
    assert [(r.spans, r.already_stored) for r in again] == [(0, 300), (0, 12)]
    assert id_counts(data) == (312, 312)


KILLED_IMPORT = """
import sys
from store.importers import import_otlp_jsonl
import_otlp_jsonl(sys.argv[1], sys.argv[2], batch_spans=200)
"""


def test_an_import_killed_part_way_and_run_again_stores_each_span_once(tmp_path: Path) -> None:
    """The issue's case: 800,000 rows for 300,000 spans after a kill and a second run."""
    source = tmp_path / "spans.jsonl"
    total = 6000
    source.write_text("\n".join(otlp_line(f"{i:032x}", f"{i + 1:016x}", start_ns=T0 + i * 1_000_000)
                                for i in range(1, total + 1)) + "\n")
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, str(source), str(data)],
                             cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if len(list_segments(data)) >= 2:
            break
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written_before = id_counts(data)[0] if list_segments(data) else 0
    assert 0 < written_before < total  # killed part-way
    report = import_otlp_jsonl(source, data)
    assert report.already_stored == written_before and report.spans == total - written_before
    assert id_counts(data) == (total, total)
    # and plain DuckDB over the files agrees (nothing stored twice under another name)
    files = [str(p) for p in list_segments(data)]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({files})").fetchone() == (total,)


# -- item 8: one bad line never loses the file -------------------------------------------------------


def test_each_bad_request_timing_line_is_reported_and_the_good_ones_kept(tmp_path: Path) -> None:
    bad = {
        "status 99999999999999999999": "2026-10-01T09:00:00Z,GET /fhir/Patient,10,99999999999999999999",
        "status 42": "2026-10-01T09:00:00Z,GET /fhir/Patient,10,42",
        "duration inf": "2026-10-01T09:00:01Z,GET /fhir/Patient,inf,200",
        "duration nan": "2026-10-01T09:00:01Z,GET /fhir/Patient,nan,200",
        "duration 1e30": "2026-10-01T09:00:02Z,GET /fhir/Patient,1e30,200",
        "year 9999": "9999-12-31T23:59:59Z,GET /fhir/Patient,10,200",
        "year 0001": "0001-01-01T00:00:00+14:00,GET /fhir/Patient,10,200",
        "year 1969": "1969-12-31T23:59:59Z,GET /fhir/Patient,10,200",
        "field over 128 KiB": "2026-10-01T09:00:03Z,GET /fhir/" + "x" * (200 * 1024) + ",10,200",
    }
    rows = []
    for i, line in enumerate(bad.values()):
        rows += [GOOD_CSV_ROWS[i], line]
    rows += GOOD_CSV_ROWS[len(bad):]
    path = tmp_path / "epr.csv"
    body = ("timestamp,endpoint,duration,status\n" + "\n".join(rows) + "\n").encode()
    body += b"2026-10-01T09:00:04Z,GET /fhir/Patient/\xff\xfe,10,200\n"  # not UTF-8
    body += GOOD_CSV_ROWS[0].replace("08:00:00", "08:01:00").encode() + b"\n"
    path.write_bytes(body)
    report = import_server_timings(path, tmp_path / "data")
    expected_lines = [3 + 2 * i for i in range(len(bad))] + [len(rows) + 2]
    assert [issue.line for issue in report.issues] == expected_lines, [str(i) for i in report.issues]
    assert report.spans == len(GOOD_CSV_ROWS) + 1
    assert all(str(issue).startswith(f"{path}:{issue.line}: ") and "\n" not in str(issue) for issue in report.issues)
    assert "UTF-8" in report.issues[-1].message and "field" in report.issues[-2].message


def test_a_bad_otlp_line_a_non_utf8_line_and_a_truncated_gzip(tmp_path: Path) -> None:
    good = [otlp_line(f"{i:032x}", f"{i + 1:016x}", start_ns=T0 + i) for i in range(1, 11)]
    raw = ("\n".join(good[:5]) + "\n").encode() + b'{"resourceSpans": "\xff"}\n' + ("\n".join(good[5:]) + "\n").encode()
    plain = tmp_path / "spans.jsonl"
    plain.write_bytes(raw)
    report = import_otlp_jsonl(plain, tmp_path / "a")
    assert [i.line for i in report.issues] == [6] and report.spans == 10
    many = [otlp_line(f"{i:032x}", f"{i + 1:016x}", start_ns=T0 + i) for i in range(1, 501)]
    whole = gzip.compress(("\n".join(many) + "\n").encode())
    truncated = tmp_path / "spans.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    report = import_otlp_jsonl(truncated, tmp_path / "b")
    *partial, cut = report.issues
    assert "cut off" in cut.message
    assert [i.message.split(":")[0] for i in partial] in ([], ["not JSON"])  # the line the cut split
    whole_lines = cut.line - 1 - len(partial)
    assert whole_lines > 250 and report.spans == whole_lines  # every whole line before the cut
    assert id_counts(tmp_path / "b") == (whole_lines, whole_lines)


def test_a_csv_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM, which made the header's first column unknown."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("timestamp,endpoint,duration,status\n" + "\n".join(GOOD_CSV_ROWS) + "\n").encode())
    report = import_server_timings(path, tmp_path / "data")
    assert report.ok and report.spans == 10


def test_wardwatch_import_exit_codes(tmp_path: Path) -> None:
    from tests.campaign.support import write_config
    from wardwatch.cli import main

    data = tmp_path / "data"
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9", data)
    good = tmp_path / "good.csv"
    good.write_text("timestamp,endpoint,duration,status\n" + "\n".join(GOOD_CSV_ROWS) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"timestamp,endpoint,duration,status\n" + GOOD_CSV_ROWS[0].encode() + b"\n\xff,x,1,200\n")
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(good)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(good)])
    assert result.exit_code == 0 and "0 spans imported, 10 already stored" in result.output
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(bad)])
    assert result.exit_code == 1 and f"{bad}:3: not UTF-8" in result.stderr and "Traceback" not in result.output
    help_text = CliRunner().invoke(main, ["import", "--help"]).output
    assert "Exit codes: 0" in help_text  # and what a request log must hold (issue 19 item 9)
    assert all(word in help_text for word in ("timestamp", "endpoint", "duration", "status", "--duration-unit",
                                               "/fhir/Patient/{id}", "REDACTED", "convert-access-log.py"))
