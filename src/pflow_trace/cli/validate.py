"""``pflow-trace validate``: every problem of a workflow file, without running anything."""

from __future__ import annotations

import click

from pflow_trace.errors import EXIT_USAGE, WorkflowValidationError


@click.command("validate")
@click.argument("workflow", type=click.Path(dir_okay=False))
def validate(workflow: str) -> None:
    """Check WORKFLOW against the schema and the semantic rules; exit 2 on any problem.

    Risky but valid constructs (a node's output pasted unquoted into a shell command) are
    printed as warnings on stderr and do not change the exit code.
    """
    try:
        from pflow_trace.api import load_workflow

        loaded = load_workflow(workflow)
    except WorkflowValidationError as exc:
        noun = "problem" if len(exc.problems) == 1 else "problems"
        click.echo(f"{workflow}: {len(exc.problems)} {noun}", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    from pflow_trace.ir.validation import workflow_warnings

    batches = sum(1 for node in loaded["nodes"] if "batch" in node)
    click.echo(f"{workflow}: valid ({len(loaded['nodes'])} nodes, {batches} batch)")
    for warning in workflow_warnings(loaded):  # on stderr; a warning does not fail validation
        click.echo(f"warning: {warning}", err=True)
