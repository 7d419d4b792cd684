"""Loading a workflow file of either format: JSON (ours or pflow's IR) or ``.pflow.md``.

The format is chosen by extension, else by content (a markdown heading where JSON would
start). A markdown workflow's validation problems are reported with the markdown line each
comes from, so a user fixing a ``.pflow.md`` file never has to think in JSON paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.markdown import is_markdown, line_number, parse_markdown
from pflow_trace.ir.validation import parse_workflow_json, read_workflow_text, validate_workflow
from pflow_trace.nodes.registry import NodeRegistry


def load_and_validate_any(path: str | Path, registry: NodeRegistry | None = None) -> dict[str, Any]:
    """Read, parse and validate ``path``; every problem is raised together, one line each."""
    source = Path(path)
    text = read_workflow_text(source)
    if not is_markdown(source, text):
        return validate_workflow(parse_workflow_json(text, str(source)), str(source), registry)
    parsed = parse_markdown(text, source)
    try:
        return validate_workflow(parsed.workflow, str(source), registry)
    except WorkflowValidationError as exc:
        located = sorted((parsed.locate(problem) for problem in exc.problems), key=line_number)
        raise WorkflowValidationError(str(source), located) from None
