"""The testbed stands alone: it imports nothing of ours, and importing it does no I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import testbed

OURS = {"collector", "store", "analysis", "dashboard", "wardwatch"}
PACKAGE = Path(testbed.__file__).parent


def test_testbed_imports_nothing_of_ours() -> None:
    offenders = []
    for source in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in OURS]
    assert offenders == []


def test_public_api_is_exported() -> None:
    for name in testbed.__all__:
        assert hasattr(testbed, name), name
    assert {"create_app", "TestbedServer", "serve", "modelled_delay", "is_outage",
            "load_scenario", "scenario_for_tests", "Scenario", "Delay"} <= set(testbed.__all__)


def test_import_does_no_io() -> None:
    """Importing opens no sockets and reads no files of the package (the scenario included)."""
    code = (
        "import builtins, socket, sys\n"
        "opened = []\n"
        "real_open = builtins.open\n"
        "def spy(file, *a, **k):\n"
        "    opened.append(str(file)); return real_open(file, *a, **k)\n"
        "builtins.open = spy\n"
        "class NoSocket(socket.socket):\n"
        "    def __init__(self, *a, **k): raise AssertionError('socket at import')\n"
        "socket.socket = NoSocket\n"
        "import testbed\n"
        "bad = [f for f in opened if f.endswith(('.yaml', '.json'))]\n"
        "assert not bad, bad\n"
        "assert 'wardwatch' not in sys.modules and 'store' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 0, result.stderr
