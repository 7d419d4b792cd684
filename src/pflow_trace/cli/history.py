"""``pflow-trace history``: the runs of one workflow in the trace directory, as trends.

Thin: read every trace in the directory (a file that is not a trace is skipped with a
warning, as ``show`` does for a directory), keep one workflow's runs, build the
:class:`~pflow_trace.report.history.History` and print one view of it.
"""

from __future__ import annotations

from pathlib import Path

import click

from pflow_trace.cli.trace_selection import read_runs
from pflow_trace.errors import UsageError
from pflow_trace.report.history import build_history, pick_workflow, render_history_text
from pflow_trace.tracefile.locate import ENV_TRACE_DIR, default_trace_dir


@click.command("history")
@click.argument("workflow", required=False)
@click.option(
    "--trace-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Where the runs are [default: ${ENV_TRACE_DIR} or ~/.pflow-trace/traces/].",
)
@click.option(
    "--last",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="How many of the workflow's newest runs to follow.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
def history(workflow: str | None, trace_dir: Path | None, last: int, output_format: str) -> None:
    """Trends of WORKFLOW's runs (default: the workflow of the newest run): per node, item
    p95 (or wall time), errors and cost, and the run where a change started."""
    directory = default_trace_dir(trace_dir)
    runs = pick_workflow(read_runs((directory,), None), workflow)[-last:]
    if len(runs) < 2:
        raise UsageError(
            f"history: only one run of {runs[0].workflow_name!r} in {directory}; "
            "a trend needs two or more"
        )
    result = build_history(runs)
    if output_format == "json":
        click.echo(result.to_json())
    else:
        click.echo(render_history_text(result), nl=False)
