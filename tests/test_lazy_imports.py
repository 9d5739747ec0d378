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


@pytest.mark.parametrize("package", ["analysis", "observatory", "store"])
def test_every_public_name_resolves(package: str) -> None:
    module = __import__(package)
    assert sorted(module.__all__) == sorted(module._SOURCES)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute"):
        getattr(module, "no_such_name")


def test_a_probe_process_writes_its_spans_without_pandas(tmp_path) -> None:
    """pyarrow imports pandas on its first conversion of Python objects unless told it is absent
    (wardwatch.wiring.forgo_pandas, called by ``wardwatch probe``); the spans still land."""
    code = f"""
from wardwatch.wiring import forgo_pandas
forgo_pandas()
import datetime as dt
from store import schema, write_spans, compact
row = {{schema.TIMESTAMP: dt.datetime(2026, 11, 27, tzinfo=dt.UTC), schema.TRACE_ID: "a" * 32,
        schema.SPAN_ID: "b" * 16, schema.SPAN_ATTRIBUTES: {{schema.ATTR_RUN_WAITING_S: 1.5}}}}
write_spans({str(tmp_path)!r}, [row])
write_spans({str(tmp_path)!r}, [dict(row, **{{schema.SPAN_ID: "c" * 16}})])
compact({str(tmp_path)!r}, grace_s=0)
"""
    assert _loaded_after(code) == []
    from store import connect

    with connect(tmp_path) as con:
        assert con.execute('SELECT count(*), sum("WaitingS") FROM spans').fetchall() == [(2, 3.0)]
