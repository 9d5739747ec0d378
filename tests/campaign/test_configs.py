"""123 malformed configurations, made by mutating examples/testbed.yaml line by line: each is
reported by `wardwatch check -c FILE` as FILE:LINE:COL: key: message lines with exit code 2 (no
traceback), pointing at the mutated line where a line is known; and nothing stored is lost.

Kinds: wrong types, unknown keys, missing required keys, bad references, bad YAML syntax, bad
durations, times and values. Most run in-process with click's CliRunner; a few through a real
`python -m wardwatch check` subprocess.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from store import write_spans
from tests.campaign.support import (
    DEMO_TOKENS,
    EXAMPLE,
    TESTBED_SECRET,
    TESTBED_SECRET_VARIABLE,
    WARDWATCH,
    child_env,
)
from wardwatch.cli import main

BASE_TEXT = EXAMPLE.read_text(encoding="utf-8")
STORE_LINE = "  path: ../data/demo\n"


@dataclass(frozen=True)
class Mutation:
    """One change to the example's text; ``line`` is where a problem must be reported (or None)."""

    kind: str
    name: str
    text: str
    line: int | None
    key: str | None = None  # a word the reported key must contain


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def sub(kind: str, pattern: str, replacement: str, nth: int = 0, *, locate: bool = True, key: str | None = None) -> Mutation:
    """Replace the ``nth`` match of ``pattern`` (a regex over the whole text)."""
    matches = list(re.finditer(pattern, BASE_TEXT, flags=re.MULTILINE))
    assert len(matches) > nth, f"{pattern!r} matches {len(matches)} times"
    m = matches[nth]
    text = BASE_TEXT[: m.start()] + m.expand(replacement) + BASE_TEXT[m.end():]
    return Mutation(kind, f"{pattern} -> {replacement} #{nth}", text, _line_of(BASE_TEXT, m.start()) if locate else None, key)


def insert_after(kind: str, pattern: str, new_line: str, nth: int = 0, key: str | None = None) -> Mutation:
    """Insert ``new_line`` after the line holding the ``nth`` match, at that line's indentation
    (a leading ``- `` counts as indentation)."""
    matches = list(re.finditer(pattern, BASE_TEXT, flags=re.MULTILINE))
    m = matches[nth]
    start = BASE_TEXT.rfind("\n", 0, m.start()) + 1
    end = BASE_TEXT.index("\n", m.start()) + 1
    line = BASE_TEXT[start:end]
    indent = len(line) - len(line.lstrip(" -"))
    text = BASE_TEXT[:end] + " " * indent + new_line + "\n" + BASE_TEXT[end:]
    return Mutation("unknown key", f"after {pattern}: {new_line}", text, _line_of(BASE_TEXT, m.start()) + 1, key)


def delete_line(pattern: str, nth: int = 0, key: str | None = None) -> Mutation:
    matches = list(re.finditer(pattern, BASE_TEXT, flags=re.MULTILINE))
    m = matches[nth]
    start = BASE_TEXT.rfind("\n", 0, m.start()) + 1
    end = BASE_TEXT.index("\n", m.start()) + 1
    return Mutation("missing key", f"delete {pattern} #{nth}", BASE_TEXT[:start] + BASE_TEXT[end:], None, key)


def mutations() -> list[Mutation]:
    t, r, u, d, y = "wrong type", "bad reference", "unknown key", "bad value", "yaml"
    out = [
        # -- wrong types
        sub(t, r"(?<=interval_s: )60", "sixty"),
        sub(t, r"(?<=interval_s: )120", "[1, 2]"),
        sub(t, r"(?<=interval_s: )300", "{a: 1}"),
        sub(t, r"(?<=jitter_s: )5", '"five"'),
        sub(t, r"(?<=think_time_s: )0\.5", "[0.5]"),
        sub(t, r"(?<= timeout_s: )60", "a minute"),
        sub(t, r"(?<=step_timeout_s: )10", "{s: 10}"),
        sub(t, r"(?<=max_concurrent_runs: )4", "four"),
        sub(t, r"(?<=max_requests_per_min: )120", "many"),
        sub(t, r"(?<=port: )8050", "eighty"),
        sub(t, r"(?<=refresh_interval_s: )15", "[15]"),
        sub(t, r"(?<=follow_next_pages: )2", "two"),
        sub(t, r"(?<=max_items: )40", "forty"),
        sub(t, r"(?<=expect_status: )201", "created"),
        sub(t, r"(?<=count_gte: )1", "one"),
        sub(t, r"(?<=weight: )3", "heavy"),
        sub(t, r"(?<=target: )0\.9", "ninety"),
        sub(t, r"(?<=window_minutes: )15", "quarter"),
        sub(t, r"(?<=per_day: )60", "sixty"),
        sub(t, r"(?<=timezone: )Europe/London", "[Europe, London]", 2),
        sub(t, r"(?<=    sites: )\[ward-7, outpatient-clinic, community-hospital\]", "{ward: 7}"),
        sub(t, r"(?<=weekdays: )\[mon, tue, wed, thu, fri\]", "monday"),
        sub(t, r'(?<=X-Wardwatch-Site: )"\{\{ site \}\}"', "[a, b]"),
        sub(t, r"(?<=base_url: )http://127\.0\.0\.1:8765/fhir", "[x]"),
        sub(t, r"(?<=client_id: )wardwatch-probe", "{a: 1}"),
        sub(t, r"(?<=patient_id: )\$\.entry\[0\]\.resource\.id", "[1]"),
        sub(t, r"(?<=identifier: )\"\{\{ patient_identifier \}\}\"", "{a: b}"),
        sub(t, r"(?<=threshold_s: )3", "three"),
        sub(t, r"(?<=time_slice_minutes: )5", "[5]"),
        sub(t, r"(?<=- name: )ward-7", "{ward: 7}"),
        # -- unknown keys
        insert_after(u, r"^  path: \.\./data/demo", "pathh: x", key="pathh"),
        insert_after(u, r"^  host: 127\.0\.0\.1", "hots: x", key="hots"),
        insert_after(u, r"^    base_url:", "base_ulr: x", key="base_ulr"),
        insert_after(u, r"^      client_id:", "secret: x", key="secret"),
        insert_after(u, r"^    title: Ward 7", "tz: UTC", key="tz"),
        insert_after(u, r"^  - identifier: .*MRN000002", "nickname: x", key="nickname"),
        insert_after(u, r"^    interval_s: 60", "intervall_s: 60", key="intervall_s"),
        insert_after(u, r"^        path: /Patient/\{\{ patient_id \}\}", "methd: GET", key="methd"),
        insert_after(u, r"^            equals: 1", "equal: 1", key="equal"),
        insert_after(u, r"^    max_concurrent_runs: 4", "max_concurent_runs: 4", key="max_concurent_runs"),
        insert_after(u, r"^    on_error: stop", "on_failure: stop", key="on_failure"),
        insert_after(u, r"^    time_slice_minutes: 5", "time_slice_mins: 5", key="time_slice_mins"),
        insert_after(u, r"^  refresh_interval_s: 15", "colour: red", key="colour"),
        Mutation(u, "top-level section", "storage: {}\n" + BASE_TEXT, 1, "storage"),
        sub(u, r"weight: 3\}", "weight: 3, colour: red}", key="colour"),
        sub(u, r"window_minutes: 15\}", "window_minutes: 15, thresold_s: 3}", key="thresold_s"),
        sub(u, r"metric: mean, ", "metric: mean, metrc: mean, ", key="metrc"),
        sub(u, r"description: Added a filter", "when: x, description: Added a filter", key="when"),
        sub(u, r"per_day: 60, ", "per_day: 60, per_week: 1, ", key="per_week"),
        sub(u, r'end: "18:00"\}', 'end: "18:00", tz: UTC}', key="tz"),
        sub(u, r"title: agreed patching\}", "title: agreed patching, reason: x}", key="reason"),
        # -- missing required keys
        delete_line(r"^    base_url:", key="base_url"),
        delete_line(r"^      token_url:", key="token_url"),
        delete_line(r"^      client_id:", key="client_id"),
        delete_line(r"^    target: testbed", key="target"),
        delete_line(r"^        path: /Patient$", key="path"),
        delete_line(r"^    timezone: Europe/London(?=\n    title: Ward 7)", key="timezone"),
        sub("missing key", r"workflow: open-patient-record, threshold_s: 3, ", "threshold_s: 3, ", locate=False, key="workflow"),
        sub("missing key", r"threshold_s: 3, ", "", locate=False, key="threshold_s"),
        sub("missing key", r"metric: mean, ", "", locate=False, key="metric"),
        sub("missing key", r'start: "08:00", end: "10:30", ', 'end: "10:30", ', locate=False, key="start"),
        sub("missing key", r'at: "2026-10-14T07:00:00Z", ', "", locate=False, key="at"),
        sub("missing key", r"per_day: 60, ", "", locate=False, key="per_day"),
        sub("missing key", r'start: "2026-10-04T01:00:00\+01:00", ', "", locate=False, key="start"),
        # -- bad references
        sub(r, r"(?<=    target: )testbed", "nowhere"),
        sub(r, r"(?<=    sites: )\[ward-7, community-hospital\]", "[ward-7, ward-99]"),
        sub(r, r"(?<=sites: )\[ward-7, community-hospital\], weight", "[ward-8], weight"),
        sub(r, r"(?<=workflow: )open-patient-record(?=, threshold_s: 3)", "open-record"),
        sub(r, r"(?<=periods: )\[ward rounds\]", "[night rounds]"),
        sub(r, r"(?<=workflows: )\[open-patient-record\]", "[open-record]"),
        sub(r, r"(?<=workflows: )\[open-patient-record, chart-observations\]", "[chart]"),
        sub(r, r"(?<=\{workflow: )open-patient-record(?=, period)", "nope"),
        sub(r, r"(?<=period: )ward rounds", "tea break"),
        sub(r, r"(?<=path: /Patient/)\{\{ patient_id \}\}", "{{ patient_idd }}"),
        sub(r, r"(?<=for_each: )ward_patients", "nobody"),
        sub(r, r"\$\{env:WARDWATCH_TESTBED_CLIENT_SECRET\}", "${env:NOT_SET_ANYWHERE_IN_THIS_CAMPAIGN}"),
        sub(r, r"\$\{env:WARDWATCH_TESTBED_CLIENT_SECRET\}", "${file:/nonexistent/wardwatch/secret}"),
        sub(r, r"\$\{env:WARDWATCH_TESTBED_CLIENT_SECRET\}", "${vault:epr}"),
        sub(r, r"(?<=- name: availability\n    metric: availability\n    target: 0.995\n    timezone: )Europe/London", "Europe/Londn"),
        sub(r, r"(?<=    timezone: )Europe/London", "Mars/Olympus_Mons"),
        # -- YAML syntax
        sub(y, r"weight: 3\}", "weight: 3"),
        sub(y, r'start: "08:00"', 'start: "08:00'),
        sub(y, r"^    interval_s: 60", "\tinterval_s: 60"),
        sub(y, r"^    jitter_s: 5", "      jitter_s: 5"),
        sub(y, r"(?<=client_id: )wardwatch-probe", "wardwatch: probe"),
        sub(y, r"^  - name: ward-7", "  - name: ward-7]"),
        sub(y, r"^sites:", "sites: *nothing"),
        sub(y, r"(?<=title: )Ward 7", "@ward"),
        sub(y, r"^patients:", "patients: [\n"),
        Mutation(y, "a document of a scalar", "just a sentence\n", 1),
        # -- bad durations, times and values
        sub(d, r"(?<=    interval_s: )60", "0"),
        sub(d, r"(?<=    interval_s: )120", "-60"),
        sub(d, r"(?<=    jitter_s: )5", "60", locate=False),
        sub(d, r"(?<=    timeout_s: )60", "0"),
        sub(d, r"(?<=step_timeout_s: )10", "-1"),
        sub(d, r"(?<=    think_time_s: )0\.5", "-0.5"),
        sub(d, r'(?<=start: )"08:00"', '"25:00"'),
        sub(d, r'(?<=end: )"10:30"', '"10:61"'),
        sub(d, r'(?<=start: )"13:30"', '"half past one"'),
        sub(d, r"(?<=window_minutes: )15", "0"),
        sub(d, r"(?<=target: )0\.9", "1.5"),
        sub(d, r"(?<=threshold_s: )2, target", "-2, target"),
        sub(d, r"(?<=target: )0\.995", "2", locate=False),  # the SLA's own check: reported at the SLA
        sub(d, r"(?<=time_slice_minutes: )5", "-5"),
        sub(d, r"(?<=time_slice_target: )0\.5", "1.5"),
        sub(d, r'(?<=exclusions: \[\{start: )"2026-10-04T01:00:00\+01:00"', '"yesterday"'),
        sub(d, r'(?<=\{at: )"2026-10-14T07:00:00Z"', '"next tuesday"'),
        sub(d, r"(?<=budgeting_method: )Timeslices", "Bogus"),
        sub(d, r"(?<=metric: )mean", "median"),
        sub(d, r"(?<=connection: )fresh", "sometimes"),
        sub(d, r"(?<=on_error: )stop", "explode"),
        sub(d, r"(?<=method: )POST", "FETCH"),
        sub(d, r"(?<=weekdays: \[mon, tue, wed, thu, )fri", "funday"),
        sub(d, r"(?<=max_concurrent_runs: )4", "0"),
        sub(d, r"(?<=port: )8050", "70000"),
        sub(d, r"(?<=refresh_interval_s: )15", "0"),
        sub(d, r"(?<=follow_next_pages: )2", "1000"),
        sub(d, r"(?<=max_items: )40", "0"),
        sub(d, r"(?<=base_url: )http://127\.0\.0\.1:8765/fhir", "not a url"),
        sub(d, r"(?<=patient_id: )\$\.entry\[0\]\.resource\.id", "$.entry[[0"),
        sub(d, r"(?<=max_requests_per_min: )120", "1"),
        sub(d, r"(?<=per_day: )60", "-60"),
        sub(d, r"(?<=- name: )find-patient", "find patient!"),
    ]
    return out


MUTATIONS = mutations()
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:\s][^:]*?): (?P<message>\S.*)$")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding spans: the configs point at it and must never touch it."""
    path = tmp_path_factory.mktemp("campaign-store")
    rows = [{"Timestamp": 1_795_000_000 * 10**9 + i, "TraceId": f"{i:032x}", "SpanId": f"{i + 1:016x}"} for i in range(50)]
    write_spans(path, rows)
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def write_mutation(mutation: Mutation, directory: Path, store: Path, index: int) -> Path:
    path = directory / f"mutation-{index:03d}.yaml"
    path.write_text(mutation.text.replace(STORE_LINE, f"  path: {store}\n", 1), encoding="utf-8")
    return path


def check_report(path: Path, mutation: Mutation, exit_code: int, stderr: str) -> list[re.Match[str]]:
    assert exit_code == 2, (mutation.name, stderr)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines, mutation.name
    problems = [PROBLEM.match(line) for line in lines]
    assert all(problems), (mutation.name, lines)
    assert {p["file"] for p in problems} == {str(path)}
    if mutation.line is not None:
        reported = {int(p["line"]) for p in problems}
        # a YAML parser notices some mistakes at the next token, a line or two further on
        near = range(mutation.line, mutation.line + (3 if mutation.kind == "yaml" else 1))
        assert reported & set(near), (mutation.kind, mutation.name, lines)
    if mutation.key is not None:
        assert any(mutation.key in p["key"] for p in problems), (mutation.name, lines)
    return problems  # type: ignore[return-value]


def test_the_unmutated_example_is_valid(tmp_path: Path, stored: Path) -> None:
    path = write_mutation(Mutation("none", "none", BASE_TEXT, None), tmp_path, stored, 0)
    result = CliRunner().invoke(main, ["check", "-c", str(path)], env={TESTBED_SECRET_VARIABLE: TESTBED_SECRET, **DEMO_TOKENS})
    assert result.exit_code == 0, result.output


def test_a_hundred_malformed_configs_are_reported_line_by_line(tmp_path: Path, stored: Path) -> None:
    assert len(MUTATIONS) >= 100
    assert len({m.text for m in MUTATIONS}) == len(MUTATIONS)  # a hundred different files
    before = digest(stored)
    runner = CliRunner()
    kinds: dict[str, int] = {}
    failures = []
    for index, mutation in enumerate(MUTATIONS):
        path = write_mutation(mutation, tmp_path, stored, index)
        result = runner.invoke(main, ["check", "-c", str(path)], env={TESTBED_SECRET_VARIABLE: TESTBED_SECRET})
        try:
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            check_report(path, mutation, result.exit_code, result.stderr)
        except AssertionError as exc:
            failures.append(f"#{index} {mutation.kind}: {mutation.name}: {exc}")
        kinds[mutation.kind] = kinds.get(mutation.kind, 0) + 1
    assert not failures, "\n".join(failures)
    assert digest(stored) == before  # nothing stored was touched
    assert set(kinds) == {"wrong type", "unknown key", "missing key", "bad reference", "yaml", "bad value"}


@pytest.mark.parametrize("index", [0, 52, 84])
def test_malformed_configs_through_a_real_process(tmp_path: Path, stored: Path, index: int) -> None:
    mutation = MUTATIONS[index]
    path = write_mutation(mutation, tmp_path, stored, index)
    done = subprocess.run([*WARDWATCH, "check", "-c", str(path)], capture_output=True, text=True, timeout=60, env=child_env())
    check_report(path, mutation, done.returncode, done.stderr)
    assert done.stdout == ""


def test_an_unknown_dashboard_time_zone_is_a_config_error(tmp_path: Path, stored: Path) -> None:
    """`check` passes a misspelt dashboard.timezone; `report` then dies with ZoneInfoNotFoundError."""
    mutation = sub("bad value", r"(?<=^  timezone: )Europe/London", "Europe/Londn", key="dashboard.timezone")
    path = write_mutation(mutation, tmp_path, stored, 0)
    result = CliRunner().invoke(main, ["check", "-c", str(path)], env={TESTBED_SECRET_VARIABLE: TESTBED_SECRET})
    check_report(path, mutation, result.exit_code, result.stderr)
