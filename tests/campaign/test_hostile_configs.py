"""Hostile configuration files (issue 18 items 11 and 12): bytes YAML refuses, other encodings,
secret files that are not small regular files, an alias bomb, and values `check` once accepted
that broke the probe or the report later (infinite or absurd numbers, ports out of range,
duplicate keys, credentials in URLs).

Every one must be `FILE:LINE:COL: key: message` lines, exit code 2, no traceback, within a second
or so of work (the slow ones run in a real process with a timeout, so a hang fails rather than
blocks the suite).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.campaign.support import DEMO_TOKENS, EXAMPLE, TESTBED_SECRET, TESTBED_SECRET_VARIABLE, WARDWATCH, child_env
from wardwatch.cli import main

BASE = EXAMPLE.read_text(encoding="utf-8").replace("  path: ../data/demo\n", "  path: data\n", 1)
SECRET_LINE = "client_secret: ${env:WARDWATCH_TESTBED_CLIENT_SECRET}"
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:\s][^:]*?): (?P<message>\S.*)$")
ENV = {TESTBED_SECRET_VARIABLE: TESTBED_SECRET, **DEMO_TOKENS}


def replaced(old: str, new: str, count: int = 1) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, count)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def check_text(tmp_path: Path, content: str | bytes) -> tuple[Path, list[re.Match[str]], str]:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    result = CliRunner().invoke(main, ["check", "-c", str(path)], env=ENV)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    problems = [PROBLEM.match(line) for line in lines]
    assert lines and all(problems), lines
    assert {p["file"] for p in problems} == {str(path)}
    return path, problems, result.stderr  # type: ignore[return-value]


# -- item 11: bytes, encodings, secret files, alias bombs ------------------------------------------------

BYTES = {
    "a NUL byte": replaced("title: Ward 7", "title: Ward\x00 7").encode(),
    "a BEL byte": replaced("title: Ward 7", "title: Ward\x07 7").encode(),
    "Latin-1": replaced("title: Ward 7", "title: Ward 7 \u00e9t\u00e9").encode("latin-1"),
    "UTF-16": BASE.encode("utf-16"),
    "garbage": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", list(BYTES))
def test_bytes_yaml_cannot_read_are_located_problems(tmp_path: Path, name: str) -> None:
    _, problems, _ = check_text(tmp_path, BYTES[name])
    if name in ("a NUL byte", "a BEL byte", "Latin-1"):
        assert int(problems[0]["line"]) == line_of(BASE, "title: Ward 7"), problems[0].group(0)


def test_a_nul_in_a_string_value_is_refused_where_it_is(tmp_path: Path) -> None:
    text = replaced("  path: data\n", '  path: "\\u0000"\n')
    _, problems, _ = check_text(tmp_path, text)
    assert [(int(p["line"]), p["key"]) for p in problems] == [(line_of(text, "path: "), "store.path")]


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Nine anchors, each a list of ten aliases of the one before: a billion strings once expanded
    (under a step's JSON body, which is walked value by value). It took minutes and then MemoryError."""
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    text = replaced("          valueQuantity:\n", "".join(f"          {line}\n" for line in bomb) + "          valueQuantity:\n")
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run([*WARDWATCH, "check", "-c", str(path)], capture_output=True, text=True, timeout=60,
                          env=child_env(ENV))
    assert done.returncode == 2, done.stderr
    assert all(PROBLEM.match(line) for line in done.stderr.strip().splitlines()), done.stderr
    assert "alias" in done.stderr
    assert time.monotonic() - started < 20  # an interpreter start and an import


def secret_file_cases(tmp_path: Path) -> dict[str, str]:
    binary = tmp_path / "binary-secret"
    binary.write_bytes(bytes(range(256)))
    huge = tmp_path / "huge-secret"
    huge.write_bytes(b"s" * (1 << 20))
    fifo = tmp_path / "fifo-secret"
    os.mkfifo(fifo)
    return {"~nouser": "~nouserxyz/x", "binary": str(binary), "/dev/zero": "/dev/zero", "FIFO": str(fifo),
            "1 MiB": str(huge), "a directory": str(tmp_path), "empty": ""}


@pytest.mark.parametrize("name", ["~nouser", "binary", "/dev/zero", "FIFO", "1 MiB", "a directory", "empty"])
def test_secret_files_that_are_not_small_regular_text_files(tmp_path: Path, name: str) -> None:
    reference = secret_file_cases(tmp_path)[name]
    text = replaced(SECRET_LINE, "client_secret: ${file:" + reference + "}")
    path = tmp_path / "secret.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run([*WARDWATCH, "check", "-c", str(path)], capture_output=True, text=True, timeout=30,
                          env=child_env())
    assert done.returncode == 2, done.stderr
    problems = [PROBLEM.match(line) for line in done.stderr.strip().splitlines()]
    assert problems and all(problems), done.stderr
    assert "Traceback" not in done.stderr
    assert any(p["key"] == "targets.testbed.auth.client_secret" for p in problems), done.stderr
    assert any(int(p["line"]) == line_of(text, "client_secret:") for p in problems)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("name", ["/dev/zero", "FIFO", "8 MiB"])
def test_a_configuration_path_that_is_not_a_small_regular_file(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / "config-fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (8 << 20) + b"\n")
    path = {"/dev/zero": "/dev/zero", "FIFO": str(fifo), "8 MiB": str(big)}[name]
    done = subprocess.run([*WARDWATCH, "check", "-c", path], capture_output=True, text=True, timeout=60, env=child_env(ENV))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [PROBLEM.match(line)["key"] for line in done.stderr.strip().splitlines()] == ["file"]


# -- item 12: values that broke later ------------------------------------------------------------------

LATER = {
    "interval_s: .inf": ("interval_s: 60", "interval_s: .inf", "workflows.0.interval_s"),
    "interval_s: 1e308": ("interval_s: 60", "interval_s: 1e308", "workflows.0.interval_s"),
    "interval_s: nan": ("interval_s: 60", "interval_s: .nan", "workflows.0.interval_s"),
    "interval_s: 'inf'": ("interval_s: 60", "interval_s: 'inf'", "workflows.0.interval_s"),
    "compaction_interval_s: .inf": ("  path: data\n", "  path: data\n  compaction_interval_s: .inf\n",
                                    "store.compaction_interval_s"),
    "retention_days: 1000000000": ("  path: data\n", "  path: data\n  retention_days: 1000000000\n", "store.retention_days"),
    "threshold_s: .inf": ("threshold_s: 3,", "threshold_s: .inf,", "objectives.0.threshold_s"),
    "timeout_s: 1e300": ("timeout_s: 60", "timeout_s: 1e300", "workflows.0.timeout_s"),
    "port 99999": ("base_url: http://127.0.0.1:8765/fhir", "base_url: http://127.0.0.1:99999/fhir",
                   "targets.testbed.base_url"),
    "user:pass@": ("base_url: http://127.0.0.1:8765/fhir", "base_url: http://user:pass@127.0.0.1:8765/fhir",
                   "targets.testbed.base_url"),
    "token_url user@": ("token_url: http://127.0.0.1:8765/auth/token",
                        "token_url: http://probe@127.0.0.1:8765/auth/token", "targets.testbed.auth.token_url"),
    "duplicate key": ("interval_s: 60", "interval_s: 60\n    interval_s: 30", "workflows.0.interval_s"),
    "per_day: 1e300": ("per_day: 60,", "per_day: 1e300,", "task_volumes.0.per_day"),
}


@pytest.mark.parametrize("name", list(LATER))
def test_values_that_broke_later_are_refused_by_check(tmp_path: Path, name: str) -> None:
    old, new, key = LATER[name]
    text = replaced(old, new)
    _, problems, stderr = check_text(tmp_path, text)
    assert "Traceback" not in stderr
    wanted_line = line_of(text, new.strip().splitlines()[-1].strip())
    assert any(p["key"] == key and int(p["line"]) == wanted_line for p in problems), (key, wanted_line, stderr)
    if name == "user:pass@":
        assert "user:pass" not in stderr  # the credential is not echoed


def test_the_example_with_anchors_and_merge_keys_is_still_valid(tmp_path: Path) -> None:
    """Aliases in moderation and ``<<`` merge keys are ordinary YAML, not a bomb or a duplicate."""
    text = replaced("    interval_s: 60\n", "    <<: &cadence {interval_s: 60}\n")
    path = tmp_path / "anchors.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "-c", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
