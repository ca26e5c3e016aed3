"""The package's import graph: no module imports a higher layer, and no two modules import each
other (directly or round a cycle), counting imports inside functions too (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ftctl"

# (rank, group, module prefixes), lowest first. A module may import any module of a lower rank
# and the modules of its own group; nothing of a higher rank, nor another group of its rank.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "base", ("ftctl", "ftctl.errors", "ftctl.layout")),
    (1, "events", ("ftctl.events",)),
    (2, "scenario", ("ftctl.scenario",)),
    (2, "results", ("ftctl.results",)),
    (2, "kserve", ("ftctl.kserve",)),  # the KServe gRPC wire: the client and platform probe
    (3, "platforms", ("ftctl.platforms",)),
    (3, "clients", ("ftctl.clients",)),
    (3, "checks", ("ftctl.checks", "ftctl.checks_server")),
    (3, "reports", ("ftctl.reports",)),
    (4, "runner", ("ftctl.runner", "ftctl.observe")),
    (5, "commands", ("ftctl.commands",)),
    (6, "cli", ("ftctl.cli", "ftctl.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> tuple[int, str]:
    """The (rank, group) of the longest matching prefix."""
    best: tuple[int, int, str] | None = None
    for rank, group, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), rank, group)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best[1], best[2]


def imports_of(module: str) -> set[str]:
    """The ftctl modules ``module`` imports, at the top or inside functions."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ftctl")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "ftctl":
                continue
            for alias in node.names:  # `from ftctl import events` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def upward_imports() -> list[str]:
    bad = []
    for module, targets in sorted(GRAPH.items()):
        rank, group = layer_of(module)
        for target in sorted(targets):
            t_rank, t_group = layer_of(target)
            if t_rank > rank or (t_rank == rank and t_group != group):
                bad.append(f"{module} ({group}) imports {target} ({t_group})")
    return bad


def cycles() -> list[list[str]]:
    """Import cycles, one per strongly connected component (a package and its own
    submodules excepted: ``ftctl.results`` re-exporting ``ftctl.results.parse`` is no cycle)."""

    def edges(module: str) -> list[str]:
        return [
            t
            for t in GRAPH[module]
            if not module.startswith(t + ".") and not t.startswith(module + ".")
        ]

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_higher_layer_or_a_sibling_group():
    assert upward_imports() == []


def test_no_import_cycles():
    assert cycles() == []


@pytest.mark.parametrize("module", ["ftctl.scenario", "ftctl.results", "ftctl.runner"])
def test_the_core_never_imports_typer(module):
    for name, path in MODULES.items():
        if name == module or name.startswith(module + "."):
            assert "typer" not in path.read_text(encoding="utf-8"), name
