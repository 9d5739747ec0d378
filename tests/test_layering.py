"""Dependencies point one way: store <- collector, analysis <- dashboard, alerting; wardwatch wires them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"store", "collector", "analysis", "dashboard", "alerting", "testbed", "observatory", "wardwatch"}
ALLOWED = {
    "store": set(),
    "testbed": set(),
    "collector": {"store"},
    "analysis": {"store"},
    "observatory": {"store"},
    "dashboard": {"analysis"},
    "alerting": {"analysis", "store"},
    "wardwatch": OURS - {"wardwatch"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    violations = [
        f"{path.relative_to(ROOT)} imports {other}"
        for path in files
        for other in sorted(imported_packages(path) - {package} - ALLOWED[package])
    ]
    assert violations == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from dashboard.figures import empty_figure\nimport analysis.config\n")
    assert imported_packages(module) == {"dashboard", "analysis"}
