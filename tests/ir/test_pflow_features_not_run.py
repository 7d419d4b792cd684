"""pflow features pflow-trace does not run yet are refused with a line saying so, never run
half-way or dropped: a ``loop`` block. (A ``workflow`` step runs: see
tests/runtime/test_sub_workflows.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.loading import load_and_validate

SUB_WORKFLOW = """# Caller

Calls a child workflow.

## Steps

### call

Runs the child.

- type: workflow
- workflow: ./child.pflow.md
- inputs:
    text: hi
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "wf.pflow.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    return info.value.problems


def test_a_workflow_step_naming_a_missing_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, SUB_WORKFLOW)
    assert problem.startswith(
        "line 12: nodes[0].params.workflow: sub-workflow file not found: ./child.pflow.md"
    )


def test_a_loop_block_without_a_condition_is_refused_in_one_line(tmp_path: Path) -> None:
    """Loops run now (tests/runtime/test_loop.py); a block pflow refuses is refused here too."""
    text = SUB_WORKFLOW.replace("- type: workflow", "- type: echo").replace(
        "- workflow: ./child.pflow.md\n", "- loop:\n    max_iterations: 3\n"
    )
    (problem,) = problems_of(tmp_path, text)
    assert problem.endswith("nodes[0].loop: declare exactly one of while or until")
