"""The package's floors hold: imports only point down, no two modules import each other, and no
source file reaches 300 lines.

Floors, bottom up: ``lavis.common`` (registry, typed config, errors, helpers); ``datasets``,
``models`` and ``runners`` (siblings that never import one another: the runner reaches models
and tasks by duck typing); ``tasks`` (metrics, evaluation: may read datasets' records);
``inference`` (predicting on a user's video); the entry points (``lavis/*.py``). Every import
counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lavis"
FLOOR = {"common": 0, "datasets": 1, "models": 1, "runners": 1, "tasks": 2, "inference": 3}
ENTRY = 4  # lavis/<module>.py
SIBLINGS = {"datasets", "models", "runners"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``lavis.*`` module ``path`` imports (``from a.b import c`` counts ``a.b.c`` when that
    is a module, else ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lavis"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lavis"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {name: {m for m in _imports(path) if m != name} for name, path in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOOR) else "<entry>"


def _floor(module: str) -> int:
    return FLOOR.get(_package(module), ENTRY if module != "lavis" else ENTRY + 1)


def test_the_graph_sees_the_package():
    assert "lavis.models.blip2_mr.model" in GRAPH and "lavis.common.registry" in GRAPH
    assert "lavis.models.blip2_mr.config" in GRAPH["lavis.models.blip2_mr.model"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    wrong = []
    for target in GRAPH[module]:
        if target not in MODULES:
            continue
        same = _package(target) == _package(module)
        up = _floor(target) > _floor(module)
        sideways = _package(module) in SIBLINGS and _package(target) in SIBLINGS and not same
        if (up or sideways) and not same:
            wrong.append(target)
    assert not wrong, f"{module} imports {sorted(wrong)} (a floor above or a sibling)"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


MAX_LINES = 300  # a file a newcomer reads in one sitting; past it, a concept wants its own module


def test_every_source_file_stays_short():
    sources = [*ROOT.rglob("*.py"), *ROOT.parent.joinpath("mr_data").rglob("*.py")]
    sources += ROOT.parent.joinpath("benchmarks").rglob("*.py")
    long = {str(p.relative_to(ROOT.parent)): n for p in sources if (n := len(p.read_text().splitlines())) >= MAX_LINES}
    assert len(sources) > 100 and not long, f"files of {MAX_LINES} lines or more (split them): {long}"
