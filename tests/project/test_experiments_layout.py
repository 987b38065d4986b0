"""The layout of ``metarim_sb3.experiments`` (issue 27): every module is at most 600 lines, and no module imports
another that imports it back, directly or through others, counting every import statement (at module level,
under ``TYPE_CHECKING`` and inside functions). Read from the sources (AST): nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from repo_paths import ROOT

PACKAGE = ROOT / "metarim_sb3" / "experiments"
PREFIX = "metarim_sb3.experiments"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, the deprecated shims of the old paths left out."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "from metarim_sb3._deprecated import" in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports anywhere (``from X import name`` counts X, or X.name if that is
    a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in modules}
            found.add(node.module)
    return {name for name in found if name in modules and name != PREFIX}


def test_every_module_is_at_most_600_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert graph[f"{PREFIX}.reporting.report"], "the graph is empty: the test reads nothing"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(m.removeprefix(PREFIX + ".") for m in circle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
