"""``pflow-trace export``: replay a saved trace to an OTLP backend, or convert it to a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pflow_trace.errors import UsageError
from pflow_trace.observe.export_settings import PROTOCOLS, TRACE_SHAPES
from pflow_trace.replay import FILE_FORMATS
from pflow_trace.text import json_text

if TYPE_CHECKING:
    from pflow_trace.replay.otlp_replay import ReplayResult

#: Seconds one OTLP request may take before the replay gives up.
DEFAULT_TIMEOUT_S = 2.0


@click.command("export")
@click.argument("trace", metavar="TRACE")
@click.option(
    "--to", "target", type=click.Choice(["otlp"]), default=None, help="Replay to a backend."
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FILE_FORMATS),
    default=None,
    help="Convert to a file.",
)
@click.option("-o", "--output", default=None, help="File to write with --format ('-' for stdout).")
@click.option(
    "--endpoint",
    default=None,
    help="OTLP endpoint. Default: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else localhost.",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default=None,
    help="Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Seconds an OTLP request may take (default {DEFAULT_TIMEOUT_S:g}).",
)
@click.option(
    "--service-name",
    default=None,
    help="Service of a pflow trace's synthesized spans (default OTEL_SERVICE_NAME, else "
    "pflow-trace); a pflow-trace file keeps the service it was recorded with.",
)
@click.option(
    "--trace-shape",
    type=click.Choice(TRACE_SHAPES),
    default=None,
    help="With --to otlp: a large batch's items in the run's trace (inline), in linked chunk "
    "traces (linked), or linked past 2,000 items (auto, the default).",
)
def export(
    trace: str,
    target: str | None,
    file_format: str | None,
    output: str | None,
    endpoint: str | None,
    protocol: str | None,
    timeout_s: float | None,
    service_name: str | None,
    trace_shape: str | None,
) -> None:
    """Replay TRACE as OTLP spans (--to otlp) or write it as jaeger-json, otlp-json or chrome.

    TRACE is a pflow-trace file (replayed with its original ids and times) or a pflow trace
    (1.2.0 JSON or JSON lines: a tree is built from its timings, with ids derived from its
    execution id, so exporting it twice does not duplicate it).
    """
    check_export_options(target, file_format, output, endpoint, protocol, timeout_s, trace_shape)
    if output is not None and output != "-":
        check_output_path(output, trace)
    if target is not None:
        result = _replay(trace, endpoint, protocol, timeout_s, service_name, trace_shape)
        from pflow_trace.observe.redaction import redact_message

        click.echo(
            f"exported {result.span_count} spans of trace {result.trace_id} to "
            f"{redact_message(result.endpoint)} ({result.protocol})"
        )
        return
    assert file_format is not None and output is not None  # check_export_options saw to it
    span_count = _convert(trace, file_format, output, service_name)
    where = "stdout" if output == "-" else output
    click.echo(f"wrote {span_count} spans ({file_format}) to {where}", err=output == "-")


def check_output_path(output: str, trace: str) -> None:
    """Refuse ``-o`` that is not a regular file, or that is the trace being read: writing
    there would replace the source trace with its conversion."""
    from pflow_trace.tracefile.writer import check_destination

    check_destination(Path(output), "-o")
    if _same_file(Path(output), Path(trace)):
        raise UsageError(f"-o {output} is the trace being exported; give another file")


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve() or first.samefile(second)
    except (OSError, ValueError, RuntimeError):
        return False


def check_export_options(
    target: str | None,
    file_format: str | None,
    output: str | None,
    endpoint: str | None,
    protocol: str | None,
    timeout_s: float | None,
    trace_shape: str | None = None,
) -> None:
    """Raise :class:`UsageError` for a combination of options that means nothing.

    click checks each option alone; these rules are about options together: exactly one of
    ``--to``/``--format``, ``-o`` only (and always) with ``--format``, and the OTLP options
    only with ``--to otlp``, so a mistyped command fails before any file is read.
    """
    if (target is None) == (file_format is None):
        raise UsageError(
            "export needs exactly one of --to otlp (replay to a backend) or "
            f"--format {{{','.join(FILE_FORMATS)}}} -o FILE"
        )
    if target is not None:
        if output is not None:
            raise UsageError("-o/--output goes with --format; --to otlp sends the spans instead")
        return
    if output is None:
        raise UsageError(f"--format {file_format} needs -o FILE (or -o - for stdout)")
    unused = [
        flag
        for flag, value in (
            ("--endpoint", endpoint),
            ("--protocol", protocol),
            ("--timeout", timeout_s),
            ("--trace-shape", trace_shape),
        )
        if value is not None
    ]
    if unused:
        raise UsageError(f"{', '.join(unused)} goes with --to otlp, not --format")


def _replay(
    trace: str,
    endpoint: str | None,
    protocol: str | None,
    timeout_s: float | None,
    service_name: str | None,
    trace_shape: str | None,
) -> ReplayResult:
    """Send the trace's spans to the OTLP backend the options and environment name."""
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.replay.load import load_replay_trace
    from pflow_trace.replay.otlp_replay import replay_to_otlp

    settings = resolve_export_settings(
        "otlp",
        endpoint,
        protocol,
        service_name,
        timeout_s=timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S,
        trace_shape=trace_shape,
    )
    replay = load_replay_trace(trace, settings.service_name)
    print_warnings(replay.warnings)
    return replay_to_otlp(replay, settings)


def print_warnings(warnings: list[str]) -> None:
    """The reader's warnings about the trace (escaped text, a newer version), on stderr."""
    from pflow_trace.text import terminal_safe

    for warning in warnings:
        click.echo(f"warning: {terminal_safe(warning)}", err=True)


def _convert(trace: str, file_format: str, output: str, service_name: str | None) -> int:
    """Write the trace in ``file_format`` to ``output`` ('-': stdout); returns the span count."""
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.replay import render
    from pflow_trace.replay.load import load_replay_trace

    name = resolve_export_settings("none", service_name=service_name).service_name
    replay = load_replay_trace(trace, name)
    print_warnings(replay.warnings)
    _write_json(render(replay, file_format), output)
    return len(replay.spans)


def _write_json(document: dict[str, Any], output: str) -> None:
    """The document as compact JSON on one line; a file that cannot be written is a UsageError.

    A file is written like a trace file: ``0600``, beside the destination, then renamed over
    it, so a symlink planted at ``output`` is replaced rather than followed.
    """
    # json_text builds the text with the C encoder (json.dump would stream through the
    # pure-Python one, several times slower on a 100,000-item run), and escapes text that is
    # not valid Unicode.
    text = json_text(document, compact=True) + "\n"
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from pflow_trace.tracefile.writer import write_private_file

    try:
        write_private_file(Path(output), [text], "-o")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
