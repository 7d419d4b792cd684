"""How ``show`` and ``report`` pick and read traces: the same options, the same rules.

Both take TRACE files or directories, ``--top`` and ``--trace-dir``; both skip a file in a
directory that is not a trace (with a warning) and survive the newest trace vanishing while
it is picked. Keeping that here means the two commands cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pflow_trace.errors import TraceReadError
from pflow_trace.report.batch_stats import DEFAULT_TOP
from pflow_trace.text import terminal_safe
from pflow_trace.tracefile.locate import ENV_TRACE_DIR, resolve_trace_sources
from pflow_trace.tracefile.model import TraceRun
from pflow_trace.tracefile.readers import read_trace


def trace_selection(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--top`` and ``--trace-dir``, as ``show`` and ``report`` both take them."""
    command = click.option(
        "--trace-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help=f"Where to look when no TRACE is given [default: ${ENV_TRACE_DIR} or "
        "~/.pflow-trace/traces/].",
    )(command)
    return click.option(
        "--top",
        type=click.IntRange(min=0),
        default=DEFAULT_TOP,
        show_default=True,
        help="How many of the slowest items to list per batch node.",
    )(command)


#: How often a command with no TRACE looks again when the newest trace vanished under it.
_NEWEST_ATTEMPTS = 3


def read_runs(traces: tuple[Path, ...], trace_dir: Path | None) -> list[TraceRun]:
    """Read every trace the arguments name, printing each run's reader warnings on stderr; a
    file found in a directory that is not a trace is skipped with a warning (a named file that
    is not one is an error).

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
    for run in runs:
        for warning in run.warnings:
            click.echo(f"warning: {terminal_safe(warning)}", err=True)
    return runs
