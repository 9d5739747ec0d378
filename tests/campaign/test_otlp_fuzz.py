"""1,000 fuzzed OTLP JSON lines through `store.import_otlp_jsonl` and `wardwatch import`.

Valid lines come from the OpenTelemetry SDK's own OTLP encoder (spans shaped like probe runs,
encoded as ``ExportTraceServiceRequest`` and written in the protobuf JSON mapping, as the
Collector's file exporter writes them); each fuzzed line is one of them mutated by a seeded
generator (a key deleted, a value replaced by junk of another type, a container swapped, the text
truncated or a character inserted, a line of other JSON). Expected: every bad line is reported
with its line number and a one-line reason, every valid line is imported, nothing already stored
is lost, and nothing raises.

Lines that once made the whole import raise (a non-numeric ``doubleValue``, nanosecond values
beyond 64 bits or infinite, nesting deeper than Python's recursion limit) are also fed one by
one: each must be one reported line.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

import store
from store import import_otlp_jsonl, schema, write_spans
from tests.campaign.support import write_config
from wardwatch.cli import main

SEED = 7_000_001
FUZZED = 1000
PRISTINE = 50
NS = 1_000_000_000
JUNK: list[Any] = [None, True, 0, -1, 2**40, 1.5, "", "x", "ZZ==", [], {}, [None], {"a": 1}, "NaN", "1e5", [[[]]]]


def run_lines(count: int, rng: random.Random) -> list[str]:
    """``count`` OTLP JSON lines, each one run of 2-4 spans made by the SDK and encoded by OTLP."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        schema.SERVICE_NAME_ATTR: "wardwatch-probe", schema.ATTR_SITE: "ward-7", schema.ATTR_SIMULATED: False,
    }))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("campaign", "1.0")
    lines = []
    for _ in range(count):
        t = 1_795_000_000 * NS + rng.randrange(86_400) * NS
        root = tracer.start_span("open-patient-record", start_time=t, attributes={
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_RUN_WAITING_S: 0.25, schema.ATTR_STEP_INDEX: 3,
            "campaign.tags": ["a", "b"], "campaign.ok": True,
        })
        ctx = set_span_in_context(root)
        for index in range(rng.randint(1, 3)):
            step = tracer.start_span(f"step-{index}", context=ctx, kind=SpanKind.CLIENT, start_time=t + index * NS,
                                     attributes={schema.ATTR_STEP_INDEX: index, schema.ATTR_TTFB_S: 0.1})
            step.add_event("response.headers", {"http.response.status_code": 200}, timestamp=t + index * NS + 1000)
            if rng.random() < 0.3:
                step.set_status(Status(StatusCode.ERROR, "HTTP 500"))
            step.end(end_time=t + (index + 1) * NS)
        root.end(end_time=t + 4 * NS)
        lines.append(MessageToJson(encode_spans(memory.get_finished_spans()), indent=None))
        memory.clear()
    provider.shutdown()
    return lines


def span_ids(line: str) -> set[str]:
    """The hex span ids of a valid line (base64 in the protobuf JSON mapping)."""
    import base64

    doc = json.loads(line)
    return {base64.b64decode(s["spanId"]).hex()
            for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict | list):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            yield from _containers(child, (*path, key))


def mutate(line: str, rng: random.Random) -> str:
    """One fuzzed line from a valid one."""
    operator = rng.randrange(8)
    if operator == 0:  # truncate the text
        return line[: rng.randrange(1, len(line))]
    if operator == 1:  # insert a character
        at = rng.randrange(len(line))
        return line[:at] + rng.choice('{}[]",:0a\\ ') + line[at:]
    if operator == 2:  # a line of other JSON
        return rng.choice(["[]", "42", '"resourceSpans"', "{}", "null", '{"resourceSpans": null}',
                           '{"resourceSpans": [null]}', '{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}'])
    doc = json.loads(line)
    for _ in range(rng.randint(1, 3)):
        containers = [(p, c) for p, c in _containers(doc) if c]
        _, node = rng.choice(containers)
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        if operator == 3:  # delete a key or an item
            del node[key]
        elif operator == 4:  # swap a container's type
            node[key] = list(node[key].values()) if isinstance(node[key], dict) else {"k": node[key]}
        else:  # junk of another type
            node[key] = rng.choice(JUNK)
        if not doc:
            break
    return json.dumps(doc)


def _nanos_out_of_range(value: Any) -> bool:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return isinstance(value, float) and not math.isfinite(value)
    return not -(2**63) <= number < 2**63


def hits_known_defect(line: str) -> bool:
    """Whether a line triggers one of the importer defects recorded in the findings file."""
    try:
        doc = json.loads(line)
    except RecursionError:
        return True
    except json.JSONDecodeError:
        return False
    for _, node in _containers(doc):
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key.endswith("UnixNano") and _nanos_out_of_range(value):
                return True
            if key == "doubleValue" and isinstance(value, str):
                try:
                    float(value)
                except ValueError:
                    return True
            if key in ("intValue", "doubleValue") and isinstance(value, float) and not math.isfinite(value):
                return True
    return False


def fuzz_file(path: Path, *, with_defects: bool) -> tuple[dict[int, str], dict[int, set[str]]]:
    """Writes pristine and fuzzed lines interleaved; returns {line: text} of the fuzzed and
    {line: span ids} of the pristine ones."""
    rng = random.Random(SEED)
    valid = run_lines(20, rng)
    pristine_lines = run_lines(PRISTINE, rng)
    fuzzed: dict[int, str] = {}
    pristine: dict[int, set[str]] = {}
    lines: list[str] = []
    made = 0
    while made < FUZZED:
        line = mutate(rng.choice(valid), rng)
        if hits_known_defect(line) and not with_defects:
            continue
        made += 1
        lines.append(line)
        fuzzed[len(lines)] = line
        if made % (FUZZED // PRISTINE) == 0:
            lines.append(pristine_lines[len(pristine)])
            pristine[len(lines)] = span_ids(lines[-1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return fuzzed, pristine


@pytest.fixture
def filled_store(tmp_path: Path) -> tuple[Path, set[str]]:
    """A store already holding spans that no import may lose."""
    path = tmp_path / "store"
    rows = [{"Timestamp": 1_795_000_000 * NS + i, "TraceId": f"{i + 1:032x}", "SpanId": f"{i + 1:016x}"} for i in range(100)]
    write_spans(path, rows)
    return path, {r["SpanId"] for r in rows}


def stored_ids(path: Path) -> list[str]:
    con = store.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT SpanId FROM spans").fetchall()]
    finally:
        con.close()


def test_a_thousand_fuzzed_lines_are_reported_or_imported(tmp_path: Path, filled_store) -> None:
    path, before = filled_store
    source = tmp_path / "fuzzed.jsonl"
    fuzzed, pristine = fuzz_file(source, with_defects=False)
    report = import_otlp_jsonl(source, path)
    issue_lines = {issue.line for issue in report.issues}
    assert issue_lines <= set(fuzzed), "a valid line was refused"
    for issue in report.issues:
        assert issue.source == str(source) and issue.message.strip() and "\n" not in issue.message
        assert "Traceback" not in issue.message
    not_json = set()
    for number, line in fuzzed.items():
        try:
            json.loads(line)
        except ValueError:
            not_json.add(number)
    assert not_json <= issue_lines
    assert len(issue_lines) > FUZZED // 3  # the fuzz does hurt
    ids = stored_ids(path)
    assert before <= set(ids), "spans stored before the import are gone"
    assert set().union(*pristine.values()) <= set(ids), "a valid line's spans were not imported"
    assert report.lines == FUZZED + PRISTINE
    print(f"{FUZZED} fuzzed lines: {len(issue_lines)} reported, {len(fuzzed) - len(issue_lines)} imported anyway")


def test_wardwatch_import_reports_each_bad_line_and_exits_1(tmp_path: Path, filled_store, ) -> None:
    path, before = filled_store
    source = tmp_path / "fuzzed.jsonl"
    fuzzed, pristine = fuzz_file(source, with_defects=False)
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9", path)
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(source)])
    assert result.exit_code == 1, result.output  # some lines skipped, the rest imported
    assert "Traceback" not in result.output
    errors = result.stderr.strip().splitlines()
    assert errors[-1] == "some lines were skipped (listed above); the rest were imported"
    assert all(line.startswith(f"{source}:") and line.split(":", 2)[1].isdigit() for line in errors[:-1])
    assert {int(line.split(":", 2)[1]) for line in errors[:-1]} <= set(fuzzed)
    ids = set(stored_ids(path))
    assert before <= ids and set().union(*pristine.values()) <= ids


def test_the_full_fuzz_including_lines_that_hit_known_defects(tmp_path: Path, filled_store) -> None:
    path, before = filled_store
    source = tmp_path / "fuzzed.jsonl"
    fuzzed, pristine = fuzz_file(source, with_defects=True)
    assert any(hits_known_defect(line) for line in fuzzed.values())
    report = import_otlp_jsonl(source, path)
    ids = set(stored_ids(path))
    assert before <= ids and set().union(*pristine.values()) <= ids
    assert {issue.line for issue in report.issues} <= set(fuzzed)


def _one_span(**span: Any) -> str:
    base = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "n",
            "startTimeUnixNano": "1795000000000000000", "endTimeUnixNano": "1795000001000000000"}
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [{**base, **span}]}]}]})


@pytest.mark.parametrize("bad_line", [
    _one_span(attributes=[{"key": "a", "value": {"doubleValue": "abc"}}]),
    _one_span(startTimeUnixNano=str(10**30)),
    _one_span(endTimeUnixNano=str(2**70)),
    _one_span(events=[{"timeUnixNano": str(2**70), "name": "e"}]),
    _one_span(startTimeUnixNano=1e400),
    _one_span(attributes=[{"key": "a", "value": {"intValue": 1e400}}]),
    '{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}",
], ids=["doubleValue-not-a-number", "start-beyond-int64", "end-beyond-int64", "event-beyond-int64",
        "start-infinite", "intValue-infinite", "nesting-too-deep"])
def test_each_known_defect_alone_is_one_reported_line(tmp_path: Path, bad_line: str) -> None:
    good = _one_span(spanId="00000000000000aa")
    report = import_otlp_jsonl([good, bad_line, good.replace("0af76519", "1af76519")], tmp_path / "store")
    assert [issue.line for issue in report.issues] == [2]
    assert report.spans == 2
