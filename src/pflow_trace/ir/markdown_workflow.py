"""A ``.pflow.md`` file as a workflow: the document read, then its entities built into pflow's IR.

The top of the markdown side: :mod:`.markdown` reads the document's structure, and
:mod:`.markdown_entities` (with :mod:`.markdown_routing`) turns its entities into nodes and
edges; this module puts the two together, so neither of them needs the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.markdown import BOM, ParsedMarkdown, line_number, read_document
from pflow_trace.ir.markdown_entities import build_workflow


def read_markdown(text: str, source: Path | str = "workflow.pflow.md") -> ParsedMarkdown:
    """A ``.pflow.md`` document as pflow's IR, with the problems of the markdown itself.

    The IR is built even when there are problems, so validation can report its own as well.
    """
    source = Path(source)
    doc = read_document(text.removeprefix(BOM))
    name = source.name.removesuffix(".md").removesuffix(".pflow") or "workflow"
    parsed = build_workflow(doc, name, source.parent)
    parsed.problems = sorted(doc.problems, key=line_number)
    return parsed


def parse_markdown(text: str, source: Path | str = "workflow.pflow.md") -> ParsedMarkdown:
    """A ``.pflow.md`` document as pflow's IR; raises with every problem, each with its line."""
    parsed = read_markdown(text, source)
    if parsed.problems:
        raise WorkflowValidationError(str(source), parsed.problems)
    return parsed
