"""``pflow-trace report``: write one self-contained HTML page of one or more runs.

Thin like ``show``: the same files are found and read the same way, and the page is rendered
by :mod:`pflow_trace.report.html` from the same summary. Problems are raised as
:class:`~pflow_trace.errors.PflowTraceError` subclasses for the command group to print as one
line with exit code 2.
"""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from urllib.parse import urlsplit

import click

from pflow_trace.cli.trace_selection import read_runs, trace_selection
from pflow_trace.errors import UsageError
from pflow_trace.report.html import render_report
from pflow_trace.text import escape_surrogates, terminal_safe
from pflow_trace.tracefile.writer import check_destination, write_private_file

#: Where the page goes without ``-o``: the current directory, where a person looks first.
DEFAULT_OUTPUT = Path("pflow-trace-report.html")


@click.command("report")
@click.argument("traces", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="The HTML file to write (replaced if it exists); '-' for stdout.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--jaeger-url",
    metavar="URL",
    default=None,
    help="Link each span to this Jaeger UI, e.g. http://localhost:16686.",
)
@trace_selection
def report(
    traces: tuple[Path, ...],
    output: Path,
    open_page: bool,
    jaeger_url: str | None,
    top: int,
    trace_dir: Path | None,
) -> None:
    """Write an HTML report: header, waterfall of nodes and items, node table, comparison.

    TRACE is a trace file (ours, pflow's JSON or pflow's JSON lines) or a directory of them;
    without TRACE, the newest trace in the trace directory. Several runs of one workflow are
    compared node by node. The page needs no network and no server.
    """
    if jaeger_url is not None:
        _check_jaeger_url(jaeger_url)
    to_stdout = str(output) == "-"  # as ``export -o -``
    if to_stdout and open_page:
        raise UsageError("--open needs a file: -o - writes the page to stdout")
    if not to_stdout:
        check_destination(output, "-o")  # a FIFO, device or directory: refused before any work
    runs = read_runs(traces, trace_dir)
    for run in runs:  # a path that is not UTF-8: the one text the reader keeps as it was
        run.source = escape_surrogates(run.source)
    html = render_report(runs, jaeger_url=jaeger_url, top=top)
    if to_stdout:
        sys.stdout.write(escape_surrogates(html))
        sys.stdout.flush()
        return
    try:
        write_private_file(output, [html], "-o", json_chunks=False)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"report: {terminal_safe(output)}")
    if open_page:
        webbrowser.open(output.resolve().as_uri())


def _check_jaeger_url(url: str) -> None:
    """Only an http(s) address becomes a link: anything else could run script on a click."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise UsageError(f"--jaeger-url {terminal_safe(url)!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--jaeger-url {url!r}: expected an http:// or https:// address")
