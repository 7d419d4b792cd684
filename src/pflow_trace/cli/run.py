"""``pflow-trace run``: validate, run with tracing on, write the trace, report the outcome."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pflow_trace.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_WORKFLOW_FAILED
from pflow_trace.observe.export_settings import EXPORTERS, PROTOCOLS

EXIT_BY_STATUS = {
    "success": EXIT_OK,
    "degraded": EXIT_OK,
    "failed": EXIT_WORKFLOW_FAILED,
    "interrupted": EXIT_INTERRUPTED,
}


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option(
    "--output-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a line per node, then outputs; json: one object on stdout.",
)
@click.option("--quiet", "-q", is_flag=True, help="Text mode: print only the final status.")
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default=None,
    help="Where spans go. Default: otlp when an OTEL_EXPORTER_OTLP_*ENDPOINT is set, else none.",
)
@click.option("--otlp-endpoint", default=None, help="OTLP endpoint, e.g. http://localhost:4318.")
@click.option(
    "--otlp-protocol",
    type=click.Choice(PROTOCOLS),
    default=None,
    help="Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.",
)
@click.option("--service-name", default=None, help="Default: OTEL_SERVICE_NAME, else pflow-trace.")
@click.option(
    "--trace-file", type=click.Path(dir_okay=False), default=None, help="Write the trace here."
)
@click.option(
    "--trace-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for trace files. Default: PFLOW_TRACE_DIR, else ~/.pflow-trace/traces.",
)
@click.option("--no-trace-file", is_flag=True, help="Write no trace file.")
@click.option(
    "--max-string",
    type=click.IntRange(min=16),
    default=None,
    help="Longest string kept in the trace (env PFLOW_TRACE_MAX_STRING, default 2000).",
)
@click.option(
    "--max-list",
    type=click.IntRange(min=1),
    default=None,
    help="Most list elements kept in the trace (env PFLOW_TRACE_MAX_LIST, default 10000).",
)
@click.option(
    "--executor",
    type=click.Choice(["threads", "processes", "dask"]),
    default=None,
    help="Where parallel batches without batch.executor run (default threads; dask with "
    "--scheduler).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler, e.g. tcp://host:8786. Without it, dask starts a local cluster.",
)
def run(
    workflow: str,
    assignments: tuple[str, ...],
    output_format: str,
    quiet: bool,
    exporter: str | None,
    otlp_endpoint: str | None,
    otlp_protocol: str | None,
    service_name: str | None,
    trace_file: str | None,
    trace_dir: str | None,
    no_trace_file: bool,
    max_string: int | None,
    max_list: int | None,
    executor: str | None,
    scheduler: str | None,
) -> None:
    """Run WORKFLOW with inputs given as NAME=VALUE (JSON when it parses, else text)."""
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.cli.display import NodeStatusDisplay, silence_stdout
    from pflow_trace.errors import UsageError
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.observe.sanitize import SnapshotLimits
    from pflow_trace.runtime.inputs import parse_assignments

    if scheduler and executor not in (None, "dask"):
        raise UsageError(f"--scheduler is for --executor dask, not {executor}")
    loaded = api.load_workflow(workflow)
    inputs = parse_assignments(assignments)
    settings = resolve_export_settings(exporter, otlp_endpoint, otlp_protocol, service_name)
    text_mode = output_format == "text"
    display = None
    if text_mode and not quiet:
        display = NodeStatusDisplay(sys.stdout, sys.stdout.isatty())
        display.set_width([node["id"] for node in loaded["nodes"]])
    options = TraceOptions(
        export=settings,
        write_trace_file=not no_trace_file,
        trace_file=trace_file,
        trace_dir=trace_dir,
        limits=SnapshotLimits.from_env(max_string_chars=max_string, max_list_items=max_list),
        observers=[display] if display is not None else [],
        executor=executor or ("dask" if scheduler else "threads"),
        scheduler=scheduler,
    )
    outcome = api.run(loaded, inputs, options)
    try:
        print_outcome(outcome, settings.exporter, text_mode)
    except BrokenPipeError:
        silence_stdout()
    if outcome.export_warning is not None:
        click.echo(f"warning: {outcome.export_warning}", err=True)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    raise SystemExit(EXIT_BY_STATUS.get(outcome.result.status, EXIT_WORKFLOW_FAILED))


def print_outcome(outcome: Any, exporter: str, text_mode: bool) -> None:
    """The run's result on stdout: status, error, outputs and trace path, or one JSON object."""
    from pflow_trace.text import format_duration_ms

    result = outcome.result
    redact = outcome.sanitizer.redactor.value
    if text_mode:
        record = result.record
        click.echo("")
        took = format_duration_ms(record.duration_ms)
        click.echo(f"status: {record.status}  ({len(result.nodes)} nodes, {took})")
        if record.error and record.status in ("failed", "interrupted"):
            click.echo(f"error: {record.error}")
        if result.outputs and record.status in ("success", "degraded"):
            click.echo("outputs:")
            for name, value in redact(result.outputs).items():
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                click.echo(f"  {name}: {shown}")
        if outcome.trace_path is not None:
            click.echo(f"trace: {outcome.trace_path}")
        if outcome.trace_id and exporter == "otlp" and outcome.export_warning is None:
            click.echo(f"trace id: {outcome.trace_id}")
    else:
        payload: dict[str, Any] = {
            "status": result.status,
            "outputs": redact(result.outputs),
            "nodes": redact(result.nodes),
            "duration_ms": round(result.duration_ms, 3),
            "error": result.error,
            "trace_file": str(outcome.trace_path) if outcome.trace_path else None,
            "trace_id": outcome.trace_id,
        }
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
