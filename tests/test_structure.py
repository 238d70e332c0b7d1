"""The package's structure: no import circles between its modules, counting imports inside functions."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "intjax"


def module_imports() -> dict[str, set[str]]:
    """Module -> the intjax modules it imports anywhere in its text (packages' __init__ left out)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        text = path.read_text()
        modules[name] = set(re.findall(r"^\s*from (intjax[\w.]*) import", text, re.M))
        modules[name] |= set(re.findall(r"^\s*import (intjax[\w.]*)", text, re.M))
    return {m: deps & set(modules) for m, deps in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph`, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circles():
    graph = module_imports()
    # the evaluator reads problems through a protocol; the problem module calls the evaluator
    assert "intjax.patching.evaluate" in graph["intjax.patching.problem"]
    assert "intjax.patching.problem" not in graph["intjax.patching.evaluate"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
