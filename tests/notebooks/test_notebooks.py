"""The example notebooks run top to bottom against simulated demo data, and are stored stripped.

A module fixture simulates nine days of history from the testbed's latency model (the demo's own
``simulate_history``, into a temporary store), ending on a Thursday so that the default scenario's
release falls a day after the history starts. Each notebook then runs in a fresh kernel with
``WARDWATCH_DATA`` pointing at that store, from the ``notebooks/`` folder as a reader would. The
kernel is this interpreter (the project's virtual environment), from a kernel spec written for
the test, so nothing in the user's own Jupyter set-up is picked up.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from wardwatch.config import load_config
from wardwatch.simulate import simulate_history

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01-exploring-probe-traces", "02-sla-versus-experience", "03-change-impact")
KERNEL_NAME = "wardwatch-test-python"
CELL_TIMEOUT_S = 120
# A Thursday 05:00 UTC: nine days back is a Tuesday, and the default scenario's release
# (a Wednesday 07:00 UTC, moved by whole weeks into the window) falls 26 hours in.
HISTORY_END = dt.datetime(2026, 11, 12, 5, 0, tzinfo=dt.UTC)
HISTORY_DAYS = 9
# Variables the notebooks read; the test sets WARDWATCH_DATA and leaves the others at defaults.
NOTEBOOK_VARIABLES = ("WARDWATCH_DATA", "WARDWATCH_CONFIG", "WARDWATCH_CHANGE_AT")


def _load_strip_outputs() -> ModuleType:  # notebooks/ is a folder of documents, not a package
    spec = importlib.util.spec_from_file_location("strip_outputs", NOTEBOOK_DIR / "strip_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip_outputs = _load_strip_outputs()


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding nine simulated days of examples/testbed.yaml, as the demo builds it."""
    config = load_config(ROOT / "examples" / "testbed.yaml")
    path = tmp_path_factory.mktemp("notebook-data") / "data"
    summary = simulate_history(config, days=HISTORY_DAYS, end=HISTORY_END, store_path=path)
    assert summary.runs > 0
    return path


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel spec directory whose one kernel runs this interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Wardwatch (test)",
        "language": "python",
    }), encoding="utf-8")
    return root


def execute(notebook: NotebookNode, kernels: Path, env: dict[str, str]) -> NotebookNode:
    """Run every cell in a fresh kernel started in notebooks/; raises on the first cell error."""
    manager = AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    client = NotebookClient(
        notebook, km=manager, timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    # The client shuts down only kernels it started itself unless told to: stop this one too.
    client.execute(env=env, cleanup_kc=True)
    return notebook


def notebook_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOTEBOOK_VARIABLES}
    env["WARDWATCH_DATA"] = str(data)
    return env


def outputs(notebook: NotebookNode, stream: str | None = None) -> str:
    """The text a reader sees: streams (only ``stream`` when given) and plain-text results."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and stream in (None, output.name):
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data") and stream is None:
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def test_the_three_notebooks_are_there() -> None:
    assert [path.stem for path in NOTEBOOKS] == list(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [], f"{path.name} cell {cell.id} has outputs"
        assert cell.execution_count is None, f"{path.name} cell {cell.id} has an execution count"
        assert not cell.metadata, f"{path.name} cell {cell.id} has metadata {dict(cell.metadata)}"
    # The data directory comes from WARDWATCH_DATA in the first code cell, and the reader is told.
    assert 'os.environ.get("WARDWATCH_DATA", "../data/demo")' in code[0].source
    assert notebook.cells[0].cell_type == "markdown" and "WARDWATCH_DATA" in notebook.cells[0].source


def test_strip_outputs_clears_a_run_notebook(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(metadata={"widgets": {}, "kernelspec": {"name": "venv", "display_name": "venv"}})
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3, metadata={"collapsed": True})
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    notebook.cells.append(cell)
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    assert strip_outputs.main([str(path)]) == 0
    assert strip_outputs.strip_file(path) is False  # already stripped: unchanged
    stored = nbformat.read(path, as_version=4)
    assert stored.cells[0].outputs == [] and stored.cells[0].execution_count is None
    assert not stored.cells[0].metadata
    assert set(stored.metadata) == {"kernelspec", "language_info"}
    assert stored.metadata.kernelspec.name == "python3"


def test_kernel_is_this_interpreter(kernels: Path, tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable, sys.prefix)"))
    execute(notebook, kernels, notebook_env(tmp_path))
    assert outputs(notebook).split() == [sys.executable, sys.prefix]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, demo_data: Path, kernels: Path) -> None:
    notebook = execute(nbformat.read(path, as_version=4), kernels, notebook_env(demo_data))
    # No warnings or other noise on stderr: a reader would see it under the cell.
    assert outputs(notebook, stream="stderr") == ""
    text = outputs(notebook)
    assert str(demo_data) in text
    # Stripping the executed notebook gives back the stored file exactly.
    stripped = nbformat.writes(strip_outputs.strip(notebook))
    assert stripped.rstrip("\n") == path.read_text(encoding="utf-8").rstrip("\n")  # it read the store it was given, not the demo's
    if path.stem == "03-change-impact":
        # The testbed's release slowed GET /MedicationRequest: the medications step, at every site.
        for site in ("ward-7", "outpatient-clinic", "community-hospital"):
            assert f"open-patient-record at {site}: the step that moved most is medications" in text
