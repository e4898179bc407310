"""The import graph of ``prefexp/``: no cycle, and the lower layers never reach up.

Every ``import`` / ``from ... import`` statement counts, including those inside functions (a lazy
import is still a dependency). Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so a
module depends on each package above its target, except its own ancestors (Python has already
started those when the module runs).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "prefexp"
# data, difficulty and losses come before the engine in the data flow (docs/architecture.md)
LOWER_LAYERS = ("prefexp.data", "prefexp.difficulty", "prefexp.losses")
UPPER_LAYERS = ("prefexp.engine", "prefexp.pipeline", "prefexp.train", "prefexp.launch", "prefexp.evaluation",
                "prefexp.reporting", "prefexp.reward", "prefexp.tracking", "prefexp.setup")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The prefexp modules ``name`` imports (the most specific module that exists)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            candidates = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            if not candidate.startswith("prefexp"):
                continue
            while candidate not in modules and "." in candidate:
                candidate = candidate.rsplit(".", 1)[0]
            targets.add(candidate)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    deps = set()
    for target in targets:
        parts = target.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - ancestors
    deps.discard(name)
    return {d for d in deps if d in modules}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walk_sees_known_edges():
    """The walker itself: relative, absolute and lazy imports all become edges."""
    graph = import_graph()
    assert len(graph) > 100
    assert "prefexp.engine.logps" in graph["prefexp.engine.token_masks"]  # from .logps import ...
    assert "prefexp.pipeline.job" in graph["prefexp.pipeline"]  # package __init__
    assert "prefexp.pipeline" in graph["prefexp.train"]  # lazy import inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_lower_layers_never_import_upper_ones(layer):
    bad = {(src, dst) for src, deps in import_graph().items() if src == layer or src.startswith(layer + ".")
           for dst in deps if dst.startswith(UPPER_LAYERS)}
    assert not bad, sorted(bad)


def test_config_is_the_bottom_layer():
    """prefexp.config (schemas, resolvers, run naming, the Settings type) imports no other prefexp
    module: validation, which needs routers, data checks and the benchmark list, is prefexp.setup."""
    bad = {(src, dst) for src, deps in import_graph().items() if src == "prefexp.config" or src.startswith("prefexp.config.")
           for dst in deps if dst != "prefexp" and not (dst == "prefexp.config" or dst.startswith("prefexp.config."))}
    assert not bad, sorted(bad)
    assert "prefexp.config.settings" in import_graph()["prefexp.pipeline.job"]  # the walk sees the stages' import
