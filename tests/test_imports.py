"""Import rules of docs/ARCHITECTURE.md, read from the source (AST), imports inside functions
included:

- direction: knowledge imports nothing of ours; fhir_mapping only knowledge; cds_hooks no tests;
- no import circle among the project's modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"knowledge", "fhir_mapping", "cds_hooks", "tests", "bench"}
FORBIDDEN = {
    "knowledge": OURS - {"knowledge"} | {"flask", "requests", "fhir", "sqlalchemy", "werkzeug"},
    "fhir_mapping": {"cds_hooks", "tests", "bench", "flask", "werkzeug", "sqlalchemy"},
    "cds_hooks": {"tests", "bench"},
}
PROJECT = ("knowledge", "fhir_mapping", "cds_hooks", "tests", "bench")


def imports(path: Path) -> set[str]:
    """Top-level package of every import in a module (relative imports stay in the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, wherever in the module the import is."""
    paths = {module_name(p, root): p for package in packages for p in modules(package, root)}

    def known(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (known(alias.name) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    target = f"{base}.{alias.name}"  # `from pkg import module`
                    targets.add(target if target in paths else known(base) or "")
        graph[name] = targets - {"", name}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        pending = [iter(sorted(graph[start]))]
        state[start] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(step) == 1:
                return path[path.index(step) :] + [step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                pending.append(iter(sorted(graph.get(step, ()))))
    return None


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    assert modules(package), f"{package} has no modules"
    offences = {
        str(path.relative_to(ROOT)): sorted(imports(path) & FORBIDDEN[package])
        for path in modules(package)
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_no_import_circle_among_the_project_modules():
    graph = module_graph(ROOT, PROJECT)
    assert "cds_hooks.app" in graph and "cds_hooks.runtime" in graph["cds_hooks.app"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_walker_sees_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import flask.json\nfrom cds_hooks.app import x\nfrom . import y\n")
    assert imports(module) == {"flask", "cds_hooks"}


def test_a_circle_through_an_import_inside_a_function_is_found_and_named(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg import a\n")  # leads into the circle, not part of it
    graph = module_graph(tmp_path, ["pkg"])
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("import json\n")
    assert find_cycle(module_graph(tmp_path, ["pkg"])) is None
