"""Strip notebooks for committing: no outputs, no execution counts, no cell or editor metadata.

    .venv/bin/python notebooks/strip_outputs.py notebooks/*.ipynb

The notebooks are stored this way (``tests/notebooks`` checks it), so a diff shows only what a
person changed and no demo data is committed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = ["KEPT_METADATA", "strip", "strip_file"]

KEPT_METADATA = ("kernelspec", "language_info")


def strip(notebook: NotebookNode) -> NotebookNode:
    """``notebook`` without outputs, execution counts and metadata other than :data:`KEPT_METADATA`.

    The kernel spec becomes the generic ``python3`` and the language info its name only, so a
    notebook saved from any editor or virtual environment strips to the same file.
    """
    notebook.metadata = {
        key: value for key, value in notebook.metadata.items() if key in KEPT_METADATA
    }
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def strip_file(path: Path) -> bool:
    """Strip the notebook at ``path`` in place; whether the file changed."""
    before = path.read_text(encoding="utf-8")
    notebook = strip(nbformat.reads(before, as_version=4))
    nbformat.validate(notebook)
    after = nbformat.writes(notebook)
    after += "" if after.endswith("\n") else "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def main(argv: Sequence[str] | None = None) -> int:
    """Strip each notebook named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args(argv).notebooks:
        if strip_file(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
