"""DESIGN.md import direction: knowledge -> nothing of ours; fhir_mapping -> knowledge only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"knowledge", "fhir_mapping", "cds_hooks", "tests"}
FORBIDDEN = {
    "knowledge": OURS - {"knowledge"} | {"flask", "requests", "fhir", "sqlalchemy", "werkzeug"},
    "fhir_mapping": {"cds_hooks", "tests", "flask", "werkzeug", "sqlalchemy"},
}


def imports(path: Path) -> set[str]:
    """Top-level package of every import in a module (relative imports stay in the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    assert modules(package), f"{package} has no modules"
    offences = {
        str(path.relative_to(ROOT)): sorted(imports(path) & FORBIDDEN[package])
        for path in modules(package)
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_the_walker_sees_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import flask.json\nfrom cds_hooks.app import x\nfrom . import y\n")
    assert imports(module) == {"flask", "cds_hooks"}
