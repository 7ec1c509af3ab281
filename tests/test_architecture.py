"""The shape of the house: the direction of imports between the parts, and no import circles.

Every ``import`` statement counts, at module level or deferred inside a function (a deferred
import is still an import); only the ones under ``if TYPE_CHECKING:`` are left out, since they
never run. Implicit imports of a parent package are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("analytics", "cluster", "finbatch")


def _modules() -> dict[str, Path]:
    found = {"entrypoint": ROOT / "entrypoint.py"}
    for part in PARTS:
        for path in (ROOT / part).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports(child, module, is_package))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base
        yield from _imports(node, module, is_package)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for target in _imports(tree, name, path.name == "__init__.py"):
            # the longest known module the imported name is, or lies in
            parts = target.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


GRAPH = _graph()


def _part(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_graph_sees_deferred_imports() -> None:
    # finbatch.cli imports finbatch.batch.cli inside a function only: still an edge.
    assert "finbatch.batch.cli" in GRAPH["finbatch.cli"]
    assert "analytics.jobs.contract" in GRAPH["analytics.jobs"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) == "analytics"))
def test_analytics_imports_neither_cluster_nor_the_face(module: str) -> None:
    wrong = sorted(t for t in GRAPH[module] if _part(t) in ("cluster", "finbatch", "entrypoint"))
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) == "cluster"))
def test_cluster_reads_jobs_only_through_the_registry(module: str) -> None:
    wrong = sorted(
        t
        for t in GRAPH[module]
        if _part(t) in ("finbatch", "entrypoint")
        or (t.startswith("analytics.jobs.") and t != "analytics.jobs.contract")
    )
    assert not wrong, f"{module} imports {wrong}"


def test_no_import_circles() -> None:
    # Tarjan's strongly connected components: a component of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_entrypoint_is_a_shim() -> None:
    assert GRAPH["entrypoint"] == {"finbatch.cli"}
