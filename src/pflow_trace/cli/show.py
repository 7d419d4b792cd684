"""``pflow-trace show``: summarise one or more trace files as a table or as JSON.

Thin on purpose: parse the arguments, ask ``traces`` for the files, the runs and the summary,
and print one rendering of it. Errors are raised (``TraceReadError``, exit 2) for the main
command group to print once; warnings go to stderr so ``--json`` output stays clean.
Nothing heavy is imported here: ``rich`` only when drawing for a terminal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pflow_trace.errors import TraceReadError
from pflow_trace.report.batch_stats import DEFAULT_TOP
from pflow_trace.report.stats import build_summary
from pflow_trace.report.terminal import render_text
from pflow_trace.text import terminal_safe
from pflow_trace.tracefile.locate import ENV_TRACE_DIR, resolve_trace_sources
from pflow_trace.tracefile.model import TraceRun
from pflow_trace.tracefile.readers import read_trace


@click.command("show")
@click.argument("traces", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (see docs).")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=DEFAULT_TOP,
    show_default=True,
    help="How many of the slowest items to list per batch node.",
)
@click.option("--no-color", is_flag=True, help="No colour, even on a terminal.")
@click.option(
    "--trace-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Where to look when no TRACE is given [default: ${ENV_TRACE_DIR} or "
    "~/.pflow-trace/traces/].",
)
def show(
    traces: tuple[Path, ...], as_json: bool, top: int, no_color: bool, trace_dir: Path | None
) -> None:
    """Summarise trace files: a run's nodes and batches, or an aggregate over several runs.

    TRACE is a trace file (ours, pflow's JSON or pflow's JSON lines) or a directory of them.
    Without TRACE, the newest trace in the trace directory is shown.
    """
    runs = read_runs(traces, trace_dir)
    for run in runs:
        for warning in run.warnings:
            click.echo(f"warning: {terminal_safe(warning)}", err=True)
    summary = build_summary(runs, top=top)
    if as_json:
        click.echo(summary.to_json())
        return
    terminal = sys.stdout.isatty()
    # https://no-color.org: any non-empty NO_COLOR turns colour off, like --no-color.
    color = terminal and not no_color and not os.environ.get("NO_COLOR")
    text = render_text(summary, terminal=terminal, color=color)
    # ``color=color``: click keeps the escape codes we chose to draw, and strips none else.
    click.echo(text, nl=False, color=color)


#: How often ``show`` with no TRACE looks again when the newest trace vanished under it.
_NEWEST_ATTEMPTS = 3


def read_runs(traces: tuple[Path, ...], trace_dir: Path | None) -> list[TraceRun]:
    """Read every trace the arguments name; a file found in a directory that is not a trace
    is skipped with a warning (a named file that is not one is an error).

    With no TRACE, the newest trace is read; if it is deleted between being picked and being
    read (another run cleaning up), the next newest is picked.
    """
    if not traces:
        for attempt in range(_NEWEST_ATTEMPTS):
            (source,) = resolve_trace_sources(traces, trace_dir)
            try:
                return [read_trace(source.path)]
            except TraceReadError:
                if source.path.exists() or attempt == _NEWEST_ATTEMPTS - 1:
                    raise
    runs: list[TraceRun] = []
    skipped: list[Path] = []
    for source in resolve_trace_sources(traces, trace_dir):
        try:
            runs.append(read_trace(source.path))
        except TraceReadError as exc:
            if source.named:
                raise
            skipped.append(source.path)
            click.echo(f"warning: skipped: {terminal_safe(exc.message)}", err=True)
    if not runs:
        raise TraceReadError(f"no trace could be read ({len(skipped)} file(s) skipped)")
    return runs
