"""References from one workflow file to another (``workflow`` steps), checked before a run.

A ``workflow`` step whose ``workflow`` param is a plain path names its child at authoring time,
so the child is loaded and validated with its caller: a missing file, a child with problems
(each named with the file), a cycle of references, ``inputs`` the child does not declare or
required inputs it is not given, and templates reading an output the child does not have are
all reported by ``validate``, together with the caller's own problems. A path that is a
template (``${item.workflow}``) is resolved when the step runs, and its child is checked then.

Relative paths are resolved against the directory of the file that holds the step, as in pflow.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pflow_trace.errors import PflowTraceError, WorkflowValidationError
from pflow_trace.ir.templates import TemplateSyntaxError, compile_value, iter_references
from pflow_trace.nodes.workflow_call import WORKFLOW_DIR_PARAM

#: How many files deep ``validate`` follows references (a run stops at each step's
#: ``max_depth``, 10 unless raised): deeper is a problem, never a recursion error.
MAX_FILES_DEEP = 50
#: Loads and validates one child file; the tuple is the chain of files calling it (for cycles).
ChildLoader = Callable[[Path, tuple[Path, ...]], dict[str, Any]]


def is_dynamic(reference: str) -> bool:
    """A reference that is a template: its child is known only when the step runs."""
    return "${" in reference


def child_path(reference: str, workflow_dir: str | Path) -> Path:
    """The absolute path a reference names, relative ones taken from ``workflow_dir``."""
    return (Path(workflow_dir) / Path(reference).expanduser()).resolve()


def find_child(reference: str, workflow_dir: str | Path) -> Path | str:
    """The child file a reference names, or why there is none (one line, for a problem)."""
    try:
        path = child_path(reference, workflow_dir)
        if path.is_file():
            return path
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, ~nobody
        return f"sub-workflow file cannot be opened: {reference!r} ({type(exc).__name__})"
    return f"sub-workflow file not found: {reference} ({path})"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as the trace records a referenced file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cycle_text(chain: tuple[Path, ...], again: Path) -> str:
    """``a.pflow.md -> b.pflow.md -> a.pflow.md``: the chain of calls that comes back."""
    return " -> ".join(str(path) for path in (*chain, again))


def mark_workflow_dirs(workflow: dict[str, Any], workflow_dir: Path) -> None:
    """Give every ``workflow`` step the directory its relative reference is resolved in."""
    for node in workflow.get("nodes") or []:
        if isinstance(node, dict) and node.get("type") == "workflow":
            params = node.setdefault("params", {})
            if isinstance(params, dict):
                params.setdefault(WORKFLOW_DIR_PARAM, str(workflow_dir.resolve()))


def reference_problems(
    workflow: Any, source: Path, load_child: ChildLoader, callers: tuple[Path, ...]
) -> list[str]:
    """Every problem of every statically referenced child, each on its step's JSON path.

    ``workflow`` may be one that failed validation (any shape): its children are checked too,
    so ``validate`` reports every problem at once."""
    problems: list[str] = []
    outputs_of: dict[str, frozenset[str]] = {}
    here = source.resolve()
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict) or node.get("type") != "workflow":
            continue
        params = node.get("params")
        if not isinstance(params, dict):
            continue
        reference = params.get("workflow")
        if not isinstance(reference, str) or not reference or is_dynamic(reference):
            continue
        where = f"nodes[{index}].params.workflow"
        path = find_child(reference, source.parent)
        if isinstance(path, str):
            problems.append(f"{where}: {path}")
            continue
        if len(callers) >= MAX_FILES_DEEP:
            problems.append(f"{where}: sub-workflows nested more than {MAX_FILES_DEEP} files deep")
            continue
        if path == here or path in callers:
            chain = (*callers, here)
            problems.append(f"{where}: circular sub-workflow reference: {cycle_text(chain, path)}")
            continue
        try:
            child = load_child(path, (*callers, here))
        except WorkflowValidationError as exc:
            problems += [f"{where}: in {reference}: {problem}" for problem in exc.problems]
            continue
        except PflowTraceError as exc:
            problems.append(f"{where}: in {reference}: {exc}")
            continue
        problems += input_problems(f"nodes[{index}].params.inputs", params.get("inputs"), child)
        if node.get("batch") is None and isinstance(node.get("id"), str):
            outputs_of[node["id"]] = step_outputs(child)
    return problems + read_problems(workflow, outputs_of)


def step_outputs(child: dict[str, Any]) -> frozenset[str]:
    """What a step calling ``child`` writes: its declared outputs, else its node namespaces."""
    declared = child.get("outputs") or {}
    if declared:
        return frozenset(declared)
    return frozenset(node["id"] for node in child.get("nodes") or [])


def read_problems(workflow: Any, outputs_of: dict[str, frozenset[str]]) -> list[str]:
    """``${step.lod}`` where the child of ``step`` has no output ``lod`` (pflow refuses it)."""
    if not outputs_of:
        return []
    sources: list[tuple[str, Any]] = [
        (f"nodes[{index}].params", node.get("params"))
        for index, node in enumerate(workflow.get("nodes") or [])
        if isinstance(node, dict)
    ]
    outputs = workflow.get("outputs")
    sources += [(f"outputs.{name}", value) for name, value in _items(outputs)]
    problems: list[str] = []
    for where, value in sources:
        try:
            references = list(iter_references(compile_value(value)))
        except TemplateSyntaxError:
            continue  # reported by validation where it is
        for reference in references:
            keys = outputs_of.get(str(reference.head))
            key = reference.path[1] if len(reference.path) > 1 else None
            if keys is None or not isinstance(key, str) or key in keys:
                continue
            close = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"it has {', '.join(sorted(keys))}"
            problems.append(
                f"{where}: {reference.text} reads '{key}', which the sub-workflow of step "
                f"'{reference.head}' does not output ({hint})"
            )
    return problems


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def input_problems(where: str, given: Any, child: dict[str, Any]) -> list[str]:
    """``inputs`` keys the child does not declare, and required child inputs not given.

    ``given`` that is a template (a whole ``${item.inputs}``) is checked when the step runs.
    """
    if given is not None and not isinstance(given, dict):
        return [] if isinstance(given, str) else [f"{where}: must be a mapping of child inputs"]
    given = given or {}
    declared: dict[str, Any] = child.get("inputs") or {}
    problems = []
    for name in sorted(set(given) - set(declared)):
        close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        names = ", ".join(sorted(declared)) or "none"
        problems.append(
            f"{where}.{name}: the sub-workflow declares no input '{name}'{hint} (declared: {names})"
        )
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        if name not in given and "default" not in spec and spec.get("required", True):
            problems.append(f"{where}: the sub-workflow's required input '{name}' is not given")
    return problems
