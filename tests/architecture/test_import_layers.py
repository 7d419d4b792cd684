"""The package's import graph points down: no cycles between packages, and the bottom stays clean.

The rule from docs/architecture.md, checked by parsing every module under ``src/pflow_trace``
with :mod:`ast` (imports inside functions count too: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "pflow_trace"

#: Bottom to top. A package may import only packages listed before it (and itself). ``ir`` sits
#: above ``nodes`` because validating a workflow asks the node registry which types exist.
LAYERS = (
    "version",
    "text",
    "errors",
    "engine",
    "observe",
    "nodes",
    "ir",
    "runtime",
    "tracefile",
    "report",
    "replay",
    "api",
    "cli",
)
#: What the issue that shaped the layout pins down by name.
FORBIDDEN_FROM_BOTTOM = {
    "engine": {"runtime", "tracefile", "report", "replay", "cli", "api"},
    "ir": {"runtime", "tracefile", "report", "replay", "cli", "api"},
    "observe": {"runtime", "tracefile", "report", "replay", "cli", "api"},
}


def unit_of(module_path: Path) -> str:
    """``src/pflow_trace/runtime/batch.py`` -> ``runtime``; ``errors.py`` -> ``errors``."""
    relative = module_path.relative_to(PACKAGE_ROOT)
    return relative.parts[0].removesuffix(".py")


def imported_units(module_path: Path) -> set[str]:
    tree = ast.parse(module_path.read_text("utf-8"), filename=str(module_path))
    units: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "pflow_trace":
                names = [f"pflow_trace.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pflow_trace" and len(parts) > 1:
                units.add(parts[1])
    return units


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module_path in PACKAGE_ROOT.rglob("*.py"):
        unit = unit_of(module_path)
        if unit in ("__init__", "__main__"):
            continue
        for target in imported_units(module_path) - {unit}:
            graph[unit].add(target)
    return graph


def test_every_unit_is_placed_in_a_layer() -> None:
    units = {unit_of(path) for path in PACKAGE_ROOT.rglob("*.py")} - {"__init__", "__main__"}
    assert units <= set(LAYERS), f"place these in LAYERS: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("unit", LAYERS)
def test_imports_point_down(unit: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(unit)])
    upward = package_graph().get(unit, set()) - allowed
    assert not upward, f"{unit} imports from above it: {sorted(upward)}"


@pytest.mark.parametrize("unit", sorted(FORBIDDEN_FROM_BOTTOM))
def test_bottom_packages_stay_free_of_upper_ones(unit: str) -> None:
    assert not package_graph().get(unit, set()) & FORBIDDEN_FROM_BOTTOM[unit]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in ``graph`` (its nodes, the first repeated at the end), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> list[str] | None:
        if unit in visiting:
            return [*visiting[visiting.index(unit) :], unit]
        if unit in done:
            return None
        visiting.append(unit)
        for target in sorted(graph.get(unit, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(unit)
        return None

    for unit in sorted(graph):
        cycle = visit(unit)
        if cycle is not None:
            return cycle
    return None


def module_name(module_path: Path) -> str:
    """``src/pflow_trace/runtime/batch.py`` -> ``pflow_trace.runtime.batch``; a package's
    ``__init__.py`` is the package itself."""
    parts = module_path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph() -> dict[str, set[str]]:
    """File-level imports: module -> the modules of this package it imports (lazy ones too).

    ``from pflow_trace.runtime import interrupts`` is an edge to the module ``interrupts``
    when that is a module, else to the package ``runtime``.
    """
    paths = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in paths}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in paths:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in paths else node.module)
        graph[name] = targets - {name}
    return graph


def test_no_cycle_between_files() -> None:
    """Not even through a lazy import: a loop between two files means neither is the lower."""
    cycle = find_cycle(module_graph())
    assert cycle is None, "module cycle: " + " -> ".join(cycle or [])


def test_the_file_cycle_checker_finds_a_planted_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "pflow_trace.runtime.item_life" in module_graph()["pflow_trace.runtime.batch"]


def test_no_cycle_between_packages() -> None:
    graph = package_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        if unit in visiting:
            cycle = [*visiting[visiting.index(unit) :], unit]
            pytest.fail("package cycle: " + " -> ".join(cycle))
        if unit in done:
            return
        visiting.append(unit)
        for target in sorted(graph.get(unit, ())):
            visit(target)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)


def test_only_the_entry_points_import_cli() -> None:
    importers = {unit for unit, targets in package_graph().items() if "cli" in targets}
    assert importers <= {"cli"}


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The parser must catch both import forms, or every test above passes vacuously."""
    module = tmp_path / "planted.py"
    module.write_text(
        "from pflow_trace.runtime.batch import BatchNode\n"
        "def later():\n    import pflow_trace.cli.main\n"
        "from pflow_trace import api\n"
    )
    assert imported_units(module) == {"runtime", "cli", "api"}
