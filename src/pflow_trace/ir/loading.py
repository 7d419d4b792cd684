"""Loading a workflow file of either format: JSON (ours or pflow's IR) or ``.pflow.md``.

The format is chosen by extension, else by content (a markdown heading where JSON would
start). A markdown workflow's validation problems are reported with the markdown line each
comes from, so a user fixing a ``.pflow.md`` file never has to think in JSON paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.markdown import ParsedMarkdown, is_markdown, line_number
from pflow_trace.ir.markdown_entities import read_file_params
from pflow_trace.ir.markdown_workflow import read_markdown
from pflow_trace.ir.reading import parse_workflow_json, read_workflow_text
from pflow_trace.ir.sub_workflows import mark_workflow_dirs, reference_problems
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.registry import NodeRegistry


def load_and_validate(
    path: str | Path, registry: NodeRegistry | None = None, callers: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """Read, parse and validate ``path``; every problem is raised together, one line each.

    The files its ``workflow`` steps name are loaded and validated too (``callers``: the files
    calling this one, to refuse a cycle), and each such step learns its file's directory.
    """
    source = Path(path)
    text = read_workflow_text(source)
    if not is_markdown(source, text):
        workflow = parse_workflow_json(text, str(source))
        unreadable = read_file_params(workflow, source.parent)
        if unreadable:
            raise WorkflowValidationError(str(source), unreadable)
        try:
            validated = validate_workflow(workflow, str(source), registry)
        except WorkflowValidationError as exc:
            children = _child_problems(workflow, source, registry, callers)
            raise WorkflowValidationError(str(source), [*exc.problems, *children]) from None
        return _with_children(validated, source, registry, callers, lambda problem: problem)
    parsed = read_markdown(text, source)
    try:
        workflow = validate_workflow(parsed.workflow, str(source), registry)
    except WorkflowValidationError as exc:
        children = _child_problems(parsed.workflow, source, registry, callers)
        problems = _all_problems(parsed, [*exc.problems, *children])
        raise WorkflowValidationError(str(source), problems) from None
    if parsed.problems:
        children = _child_problems(parsed.workflow, source, registry, callers)
        raise WorkflowValidationError(str(source), _all_problems(parsed, children))
    return _with_children(workflow, source, registry, callers, parsed.locate)


def _child_problems(
    workflow: Any, source: Path, registry: NodeRegistry | None, callers: tuple[Path, ...]
) -> list[str]:
    """The problems of the sub-workflows ``workflow`` names by path (loaded and validated)."""

    def load_child(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
        return load_and_validate(path, registry, chain)

    return reference_problems(workflow, source, load_child, callers)


def _with_children(
    workflow: dict[str, Any],
    source: Path,
    registry: NodeRegistry | None,
    callers: tuple[Path, ...],
    locate: Callable[[str], str],
) -> dict[str, Any]:
    """The valid ``workflow``, once its sub-workflows are too (their problems raised, located
    in ``source``); each ``workflow`` step learns the directory its references start from."""
    problems = _child_problems(workflow, source, registry, callers)
    if problems:
        raise WorkflowValidationError(str(source), [locate(problem) for problem in problems])
    mark_workflow_dirs(workflow, source.parent)
    return workflow


def _all_problems(parsed: ParsedMarkdown, validation: list[str]) -> list[str]:
    """The markdown's problems and validation's, each on its markdown line, top to bottom.

    A validation problem on a line the markdown already has a problem on is left out: it is
    that problem seen again (a step with no ``- type:`` has no type to validate either).
    """
    flagged = {line_number(problem) for problem in parsed.problems}
    located = [parsed.locate(problem) for problem in validation]
    kept = [problem for problem in located if line_number(problem) not in flagged]
    return sorted([*parsed.problems, *kept], key=line_number)
