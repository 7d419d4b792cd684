"""Functions fit on a screen; modules are one idea each, however long, and say which.

A module is not split to get under a line count: a split follows a seam, and a long module that
is one idea reads better whole than as halves that call back into each other. So the checks
here are the ones a reader benefits from: every module opens with a docstring that says what it
owns; a function longer than a screen says why; and no class is a fragment of another, reaching
back into a host it never names (a mixin with ``Any``-typed attributes it only calls).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "pflow_trace"
MAX_FUNCTION_LINES = 60
REASON_MARK = "Long on purpose:"


def _has_reason(node: ast.AST) -> bool:
    docstring = ast.get_docstring(node)  # type: ignore[arg-type]
    return docstring is not None and REASON_MARK in docstring


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text("utf-8"), filename=str(path))


def oversized(path: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    """Functions longer than a screen that do not say why."""
    name = path.relative_to(root)
    found: list[str] = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _has_reason(node):
                found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def host_callbacks(path: Path) -> list[str]:
    """Classes that call ``self.x(...)`` where ``x`` is only declared, as ``Any``, at class
    level and never defined or assigned in the class: a fragment calling into its host."""
    found: list[str] = []
    for cls in (node for node in ast.walk(_parse(path)) if isinstance(node, ast.ClassDef)):
        declared = {
            stmt.target.id
            for stmt in cls.body
            if isinstance(stmt, ast.AnnAssign)
            and stmt.value is None
            and isinstance(stmt.target, ast.Name)
            and ast.unparse(stmt.annotation) == "Any"
        }
        defined = {
            stmt.name
            for stmt in cls.body
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assigned = {
            target.attr
            for node in ast.walk(cls)
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Attribute)
        }
        called = {
            node.func.attr
            for node in ast.walk(cls)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        }
        for name in sorted((declared & called) - defined - assigned):
            found.append(f"{path.name}: {cls.name} calls its host's {name} through Any")
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def test_no_function_is_longer_than_a_screen_without_a_reason() -> None:
    found = [problem for path in _modules() for problem in oversized(path)]
    assert not found, "split these or say why at their top:\n" + "\n".join(found)


def test_every_module_says_what_it_owns() -> None:
    silent = [
        str(path.relative_to(PACKAGE_ROOT))
        for path in _modules()
        if path.stat().st_size and not ast.get_docstring(_parse(path))
    ]
    assert not silent, "give these a docstring saying what they own and why:\n" + "\n".join(silent)


def test_no_class_calls_back_into_a_host_through_any() -> None:
    found = [problem for path in _modules() for problem in host_callbacks(path)]
    assert not found, "\n".join(found)


def test_the_check_catches_a_long_function_and_accepts_a_stated_reason(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    plain = tmp_path / "plain.py"
    plain.write_text(f"def long():\n{body}")
    assert oversized(plain, tmp_path) == ["plain.py:1 long: 61 lines"]
    excused = tmp_path / "excused.py"
    excused.write_text(f'def long():\n    """{REASON_MARK} a table."""\n{body}')
    assert oversized(excused, tmp_path) == []


def test_the_check_catches_a_mixin_calling_its_host(tmp_path: Path) -> None:
    mixin = tmp_path / "mixin.py"
    mixin.write_text(
        "from typing import Any\n"
        "class Half:\n"
        "    run_item: Any\n"
        "    config: Any\n"
        "    def go(self):\n"
        "        return self.run_item(self.config)\n"
        "class Whole:\n"
        "    config: Any\n"
        "    def __init__(self, config):\n"
        "        self.config = config\n"
        "    def run_item(self):\n"
        "        return self.config\n"
    )
    assert host_callbacks(mixin) == ["mixin.py: Half calls its host's run_item through Any"]
