"""``pflow-trace show``: summarise one or more trace files as a table or as JSON.

Thin on purpose: parse the arguments, ask ``traces`` for the files, the runs and the summary,
and print one rendering of it. Errors are raised (``TraceReadError``, exit 2) for the main
command group to print once; warnings go to stderr so ``--json`` output stays clean.
Nothing heavy is imported here: ``rich`` only when drawing for a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from pflow_trace.cli.trace_selection import read_runs, trace_selection
from pflow_trace.report.stats import build_summary
from pflow_trace.report.terminal import render_text
from pflow_trace.report.what_if import parse_what_if, predict_run
from pflow_trace.report.what_if_text import render_prediction
from pflow_trace.text import escape_surrogates, escape_surrogates_in_json


@click.command("show")
@click.argument("traces", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (see docs).")
@click.option("--no-color", is_flag=True, help="No colour, even on a terminal.")
@click.option(
    "--what-if",
    "what_if",
    metavar="SETTINGS",
    help="Predict the batches' and the run's wall time with other lanes: max_concurrent=N "
    "and/or parallel=true|false (comma-separated), replaying the recorded item times.",
)
@trace_selection
def show(
    traces: tuple[Path, ...],
    as_json: bool,
    top: int,
    no_color: bool,
    what_if: str | None,
    trace_dir: Path | None,
) -> None:
    """Summarise trace files: a run's nodes and batches, or an aggregate over several runs.

    TRACE is a trace file (ours, pflow's JSON or pflow's JSON lines) or a directory of them.
    Without TRACE, the newest trace in the trace directory is shown.
    """
    settings = parse_what_if(what_if) if what_if is not None else None  # before reading
    runs = read_runs(traces, trace_dir)
    if settings is not None:
        predictions = [predict_run(run, settings) for run in runs]
        if as_json:
            document = {"what_if": [asdict(prediction) for prediction in predictions]}
            click.echo(utf8_json(json.dumps(document, indent=2, ensure_ascii=False)))
        else:
            text = "".join(map(render_prediction, predictions))
            click.echo(escape_surrogates(text), nl=False)
        return
    summary = build_summary(runs, top=top)
    if as_json:
        click.echo(utf8_json(summary.to_json()))
        return
    terminal = sys.stdout.isatty()
    # https://no-color.org: any non-empty NO_COLOR turns colour off, like --no-color.
    color = terminal and not no_color and not os.environ.get("NO_COLOR")
    text = render_text(summary, terminal=terminal, color=color)
    # ``color=color``: click keeps the escape codes we chose to draw, and strips none else.
    click.echo(escape_surrogates(text), nl=False, color=color)


def utf8_json(text: str) -> str:
    """JSON text a UTF-8 stdout can take: a trace's path that is not UTF-8 (the one value the
    reader keeps as it was, so the file can be opened) is escaped by the rule of every
    writer; other text costs one encode check."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return escape_surrogates_in_json(text)[0]
    return text
