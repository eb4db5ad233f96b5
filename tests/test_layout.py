"""The layout: the core imports no plugin, and its modules import each other
without a circle (at module level; imports inside functions and under
TYPE_CHECKING are late by design), with the result types in a leaf module."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "cocomem"


def _module_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif node.module and node.module.startswith("cocomem."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cocomem.")}
    return found


GRAPH = {path.stem: _module_level_imports(path) for path in CORE.glob("*.py")}


def test_core_modules_import_each_other_without_a_circle():
    try:
        order = list(TopologicalSorter(GRAPH).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {exc.args[1]}") from None
    assert "engine" in order


def test_result_types_are_a_leaf():
    assert GRAPH["results"] == set()
    for user in ("checks", "engine", "report", "compare"):
        assert "results" in GRAPH[user], user


def test_the_core_imports_no_plugin():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("cocomem_plugins") for n in names), path.name
