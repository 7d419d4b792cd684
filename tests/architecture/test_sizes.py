"""Functions fit on a screen and modules stay readable, unless they say why they do not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "pflow_trace"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
REASON_MARK = "Long on purpose:"


def _has_reason(node: ast.AST) -> bool:
    docstring = ast.get_docstring(node)  # type: ignore[arg-type]
    return docstring is not None and REASON_MARK in docstring


def oversized(path: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    source = path.read_text("utf-8")
    tree = ast.parse(source, filename=str(path))
    name = path.relative_to(root)
    found: list[str] = []
    line_count = len(source.splitlines())
    if line_count > MAX_MODULE_LINES and not _has_reason(tree):
        found.append(f"{name}: {line_count} lines")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _has_reason(node):
                found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_function_or_module_is_oversized_without_a_reason() -> None:
    found = [problem for path in sorted(PACKAGE_ROOT.rglob("*.py")) for problem in oversized(path)]
    assert not found, "split these or say why at their top:\n" + "\n".join(found)


def test_the_check_catches_a_long_function_and_accepts_a_stated_reason(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    plain = tmp_path / "plain.py"
    plain.write_text(f"def long():\n{body}")
    assert oversized(plain, tmp_path) == ["plain.py:1 long: 61 lines"]
    excused = tmp_path / "excused.py"
    excused.write_text(f'def long():\n    """{REASON_MARK} a table."""\n{body}')
    assert oversized(excused, tmp_path) == []
