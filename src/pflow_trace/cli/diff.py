"""``pflow-trace diff``: was the new run worse than the base? Optionally a CI gate.

Thin: read each side's traces (the same rules as ``show``: a file, a directory of runs, or
several), build the model :func:`pflow_trace.diff` returns (from ``report/`` directly, like
``show``, so the command does not load the runtime), print one view of the model, and exit 3
(``RegressionFound``) when a ``--fail-on`` rule was crossed. Bad input is one ``error:`` line
and exit 2, raised for the command group to print.
"""

from __future__ import annotations

from pathlib import Path

import click

from pflow_trace.cli.trace_selection import read_runs
from pflow_trace.errors import RegressionFound, TraceReadError, UsageError
from pflow_trace.report.diff_build import build_diff
from pflow_trace.report.diff_gate import parse_rules
from pflow_trace.report.diff_render import render_diff_markdown, render_diff_text
from pflow_trace.tracefile.model import TraceRun

_PATH = click.Path(path_type=Path)


@click.command("diff")
@click.argument("traces", nargs=-1, type=_PATH, metavar="[BASE NEW]")
@click.option("--base", "base_paths", multiple=True, type=_PATH, help="A base trace (repeatable).")
@click.option("--new", "new_paths", multiple=True, type=_PATH, help="A new trace (repeatable).")
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="RULES",
    help="Exit 3 when a significant regression crosses a rule: p95:+10%, errors:+0, "
    "cost:+5%, node=NAME:p95:+10%, or 'default' (see docs/diff.md).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="How to print the diff.",
)
def diff(
    traces: tuple[Path, ...],
    base_paths: tuple[Path, ...],
    new_paths: tuple[Path, ...],
    fail_on: tuple[str, ...],
    output_format: str,
) -> None:
    """Compare NEW runs with BASE runs, node by node, with significance tests.

    BASE and NEW are each a trace file or a directory of runs; for several files per side,
    give --base and --new once per file instead.
    """
    base_sources, new_sources = _sides(traces, base_paths, new_paths)
    rules = parse_rules(fail_on)
    base_runs = _read_side("base", base_sources)
    new_runs = _read_side("new", new_sources)
    result = build_diff(base_runs, new_runs, rules=rules)
    if output_format == "json":
        click.echo(result.to_json())
    elif output_format == "markdown":
        click.echo(render_diff_markdown(result), nl=False)
    else:
        click.echo(render_diff_text(result), nl=False)
    if result.gate_failed:
        crossed = [f"{f.rule} by {f.node_id}" for f in result.gate if f.crossed]
        raise RegressionFound("regression gate: " + "; ".join(crossed))


def _sides(
    traces: tuple[Path, ...], base_paths: tuple[Path, ...], new_paths: tuple[Path, ...]
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(base sources, new sources) from BASE NEW, or from --base/--new."""
    if base_paths or new_paths:
        if traces:
            raise UsageError("give BASE NEW or --base/--new, not both")
        if not base_paths or not new_paths:
            missing = "--base" if not base_paths else "--new"
            raise UsageError(f"one side is empty: give at least one {missing} trace")
        return base_paths, new_paths
    if len(traces) != 2:
        raise UsageError(
            f"diff takes BASE and NEW (got {len(traces)} path(s)); "
            "for several traces per side use --base and --new"
        )
    return (traces[0],), (traces[1],)


def _read_side(side: str, sources: tuple[Path, ...]) -> list[TraceRun]:
    try:
        return read_runs(sources, None)
    except TraceReadError as exc:
        raise TraceReadError(f"{side}: {exc.message}") from None
