"""A probe process loads neither pandas, DuckDB nor Dash: it only runs workflows and writes spans.

The packages' ``__init__`` modules import their public names on first use; these tests keep it so
(a probe's peak memory is one of issue 7's targets) and check that every public name resolves.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pandas", "duckdb", "dash", "plotly")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def test_probe_imports_stay_light() -> None:
    assert _loaded_after("import collector, wardwatch.cli, wardwatch.config, wardwatch.wiring, store.writer") == []


@pytest.mark.parametrize("package", ["analysis", "store"])
def test_every_public_name_resolves(package: str) -> None:
    module = __import__(package)
    assert sorted(module.__all__) == sorted(module._SOURCES)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute"):
        getattr(module, "no_such_name")
