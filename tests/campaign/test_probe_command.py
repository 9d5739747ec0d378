"""`wardwatch probe`: a store that cannot be written is refused before any run; `--once` exit codes.

Issue 18 item 13 and issue 19 item 6. A data directory that cannot take spans (``/dev/null``,
``/proc/self``, a regular file, a read-only or full file system) is one ``store.path: ...`` line
and exit code 2, for ``probe --once`` and ``probe``, before a single request is sent. ``probe
--once`` exits 0 when every run was ok, 1 when some run was not, 2 on a configuration error.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from store import layout
from tests.campaign.hostile import answer, hostile_server
from tests.campaign.support import TESTBED_SECRET, TESTBED_SECRET_VARIABLE, WARDWATCH, child_env, write_config
from wardwatch.cli import main

ENV = {TESTBED_SECRET_VARIABLE: TESTBED_SECRET}


def probe(*args: str) -> object:
    return CliRunner().invoke(main, ["probe", *args], env=ENV)


def refused_once(config: Path) -> None:
    result = probe("-c", str(config), "--once")
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("store.path: "), result.stderr
    assert "Traceback" not in result.output


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only); skipped where it cannot be mounted."""
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a tmpfs (the injected-ENOSPC test covers the same code)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def silent_epr() -> Iterator[tuple[str, list[object]]]:
    """A server that answers every request, and counts them: nothing may reach it."""
    with hostile_server(lambda conn, request, stop: conn.sendall(answer(200, b"{}"))) as (url, seen):
        yield url, seen


def config_for(tmp_path: Path, base_url: str, store_path: Path) -> Path:
    return write_config(tmp_path / "wardwatch.yaml", base_url, store_path, workflows=["open-patient-record"])


@pytest.mark.parametrize("kind", ["dev-null", "proc-self", "regular-file"])
def test_a_store_path_that_cannot_be_a_store_is_refused_before_any_run(kind, tmp_path, silent_epr):
    base_url, seen = silent_epr
    store_path = {"dev-null": Path("/dev/null"), "proc-self": Path("/proc/self"), "regular-file": tmp_path / "file"}[kind]
    if kind == "regular-file":
        store_path.write_text("not a directory\n")
    refused_once(config_for(tmp_path, base_url, store_path))
    assert seen == []


def test_a_read_only_file_system_is_refused_before_any_run(tmp_path, silent_epr):
    base_url, seen = silent_epr
    with tmpfs(tmp_path / "ro", "1m") as mounted:
        layout.init_store(mounted / "data")  # a store made while it could be written
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
        refused_once(config_for(tmp_path, base_url, mounted / "data"))
    assert seen == []


def test_a_full_disk_is_refused_and_leaves_no_temporary_file(tmp_path, silent_epr):
    base_url, seen = silent_epr
    with tmpfs(tmp_path / "full", "1m") as mounted:
        with open(mounted / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"x" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        refused_once(config_for(tmp_path, base_url, mounted / "data"))
        left = sorted(str(p.relative_to(mounted)) for p in mounted.rglob("*") if p.name.endswith(".tmp"))
    assert left == [] and seen == []


def test_a_store_that_cannot_be_synced_is_refused_and_leaves_no_temporary_file(tmp_path, silent_epr, monkeypatch):
    """The full disk again, injected: every fsync fails with ENOSPC."""
    base_url, seen = silent_epr

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(layout.os, "fsync", no_space)
    refused_once(config_for(tmp_path, base_url, tmp_path / "data"))
    assert [p.name for p in (tmp_path / "data").rglob("*.tmp")] == [] and seen == []


def test_probe_without_once_is_refused_too_before_any_run(tmp_path, silent_epr):
    base_url, seen = silent_epr
    config = config_for(tmp_path, base_url, Path("/dev/null"))
    done = subprocess.run(
        [*WARDWATCH, "probe", "-c", str(config)], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["store.path: cannot create a store at /dev/null: Not a directory"]
    assert seen == []


# -- probe --once exit codes (issue 19 item 6) ---------------------------------------------------


def test_probe_once_exits_0_when_every_run_was_ok(tmp_path, epr):
    result = probe("-c", str(config_for(tmp_path, epr.base_url, tmp_path / "data")), "--once")
    assert result.exit_code == 0, result.output
    assert ": ok," in result.output


def test_probe_once_exits_1_when_some_run_was_not_ok(tmp_path, epr):
    config = config_for(tmp_path, epr.base_url, tmp_path / "data")
    result = CliRunner().invoke(main, ["probe", "-c", str(config), "--once"], env={TESTBED_SECRET_VARIABLE: "wrong"})
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "3 runs stored" in result.output


def test_probe_once_exits_1_when_the_target_is_unreachable(tmp_path):
    config = config_for(tmp_path, "http://127.0.0.1:9", tmp_path / "data")
    result = probe("-c", str(config), "--once")
    assert result.exit_code == 1, result.output


def test_probe_once_exits_2_on_a_configuration_error(tmp_path, epr):
    config = config_for(tmp_path, epr.base_url, tmp_path / "data")
    config.write_text(config.read_text().replace("interval_s:", "intervall_s:", 1))
    assert probe("-c", str(config), "--once").exit_code == 2


def test_the_exit_codes_are_in_the_help():
    text = CliRunner().invoke(main, ["probe", "--help"]).output
    assert "0 every run was ok" in text and "1 some run was not" in text and "2 a configuration error" in text
