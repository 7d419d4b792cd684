"""``pflow-trace run``: validate, run with tracing on, write the trace, report the outcome."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from typing import Any

import click

from pflow_trace.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WORKFLOW_FAILED,
    PflowTraceError,
    UsageError,
)
from pflow_trace.observe.export_settings import (
    DEFAULT_TRACE_SHAPE,
    EXPORTERS,
    PROTOCOLS,
    TRACE_SHAPES,
)
from pflow_trace.runtime.workflow_run import outputs_as_json
from pflow_trace.text import cap_depth, format_duration_ms, json_text, terminal_safe

EXIT_BY_STATUS = {
    "success": EXIT_OK,
    "degraded": EXIT_OK,
    "failed": EXIT_WORKFLOW_FAILED,
    "interrupted": EXIT_INTERRUPTED,
}


#: The options ``run`` and ``resume`` share, in the order ``--help`` lists them.
_RUN_OPTIONS = [
    click.option(
        "--output-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text: a line per node, then outputs; json: one object on stdout.",
    ),
    click.option(
        "--quiet", "-q", is_flag=True, help="Text mode: print only the final status line."
    ),
    click.option("--no-color", is_flag=True, help="No colour, even on a terminal (as NO_COLOR)."),
    click.option(
        "--exporter",
        type=click.Choice(EXPORTERS),
        default=None,
        help="Where spans go. Default: otlp when an OTEL_EXPORTER_OTLP_*ENDPOINT is set, "
        "else none.",
    ),
    click.option(
        "--otlp-endpoint", default=None, help="OTLP endpoint, e.g. http://localhost:4318."
    ),
    click.option(
        "--otlp-protocol",
        type=click.Choice(PROTOCOLS),
        default=None,
        help="Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.",
    ),
    click.option(
        "--service-name", default=None, help="Default: OTEL_SERVICE_NAME, else pflow-trace."
    ),
    click.option(
        "--trace-shape",
        type=click.Choice(TRACE_SHAPES),
        default=DEFAULT_TRACE_SHAPE,
        show_default=True,
        help="Exported spans of a large batch: all in the run's trace (inline), its items in "
        "linked chunk traces (linked), or linked past 2,000 items (auto).",
    ),
    click.option(
        "--trace-file",
        default=None,
        help="Write the trace here (a regular file, or a new path; created 0600).",
    ),
    click.option(
        "--trace-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Directory for trace files. Default: PFLOW_TRACE_DIR, else ~/.pflow-trace/traces.",
    ),
    click.option("--no-trace-file", is_flag=True, help="Write no trace file."),
    click.option(
        "--no-checkpoint",
        is_flag=True,
        help="Keep no checkpoint beside the trace (the run cannot be resumed).",
    ),
    click.option(
        "--checkpoint-max-mb",
        type=click.IntRange(min=1),
        default=None,
        help="Largest checkpoint in MB; later values are not kept (default 1024).",
    ),
    click.option(
        "--max-string",
        type=click.IntRange(min=16),
        default=None,
        help="Longest string kept in the trace (env PFLOW_TRACE_MAX_STRING, default 2000).",
    ),
    click.option(
        "--max-node-visits",
        type=click.IntRange(min=1),
        default=None,
        help="Node executions a run may make before it fails, so an edge loop cannot run forever "
        "(default 10000).",
    ),
    click.option(
        "--max-list",
        type=click.IntRange(min=1),
        default=None,
        help="Most list elements kept in the trace (env PFLOW_TRACE_MAX_LIST, default 10000).",
    ),
    click.option(
        "--redact-key",
        "redact_keys",
        multiple=True,
        metavar="REGEX",
        help="Also hide values under keys matching REGEX (repeatable; adds to "
        "PFLOW_TRACE_REDACT_KEYS, comma-separated).",
    ),
    click.option(
        "--no-previews",
        is_flag=True,
        help="No item value previews in spans, the trace file or the terminal.",
    ),
    click.option(
        "--prices",
        type=click.Path(dir_okay=False),
        default=None,
        help="JSON price file laid over the built-in LLM price table (env PFLOW_TRACE_PRICES).",
    ),
    click.option(
        "--capture-llm-content",
        is_flag=True,
        help="Record LLM prompts and completions on spans, redacted "
        "(env OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true).",
    ),
    click.option(
        "--executor",
        type=click.Choice(["threads", "processes", "dask"]),
        default=None,
        help="Where parallel batches without batch.executor run (default threads; dask with "
        "--scheduler).",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://host:8786. Without it, dask starts a local cluster.",
    ),
]
#: The choices that narrow or force a resume (``run --resume`` and ``resume``).
_RESUME_OPTIONS = [
    click.option(
        "--force",
        is_flag=True,
        help="Resume although the workflow or inputs changed (changed nodes run again).",
    ),
    click.option(
        "--rerun",
        multiple=True,
        metavar="NODE",
        help="Run NODE again whatever was recorded (repeatable).",
    ),
    click.option(
        "--items",
        "item_list",
        default=None,
        metavar="I,J,...",
        help="Run again only these batch item indices (among those that need it).",
    ),
    click.option("--failed-only", is_flag=True, help="Run again only the items that failed."),
    click.option(
        "--interrupted-only",
        is_flag=True,
        help="Run again only the items a stop interrupted or never started.",
    ),
]


def _options(decorators: list[Any]) -> Any:
    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


run_options = _options(_RUN_OPTIONS)
resume_options = _options(_RESUME_OPTIONS)


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@run_options
@click.option(
    "--resume",
    "resume_trace",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="TRACE",
    help="Reuse what succeeded in the run that wrote TRACE; run only the rest (docs/resume.md).",
)
@resume_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing: forecast items, time and LLM cost per node, from past runs or prompt "
    "sizes (docs/run.md).",
)
@click.option(
    "--pilot",
    default=None,
    metavar="K",
    help="Each batch runs K random items first, projects the rest and asks before going on.",
)
@click.option(
    "--pilot-seed",
    default=None,
    help="Seed (an integer) choosing --pilot's items (default: drawn).",
)
@click.option("--yes", "-y", is_flag=True, help="--pilot: print each projection, do not ask.")
def run(workflow: str, assignments: tuple[str, ...], **flags: Any) -> None:
    """Run WORKFLOW with inputs given as NAME=VALUE (JSON when it parses, else text)."""
    from pflow_trace.cli.forecast import check_forecast_flags, dry_run, pilot_plan

    trace = flags.pop("resume_trace")
    check_forecast_flags(flags, resuming=trace is not None)
    request = resume_request(trace, flags) if trace is not None else None
    if request is None and _resume_choices(flags):
        raise UsageError(f"{_resume_choices(flags)[0]} is for resuming: add --resume TRACE")
    if flags.pop("dry_run"):
        with _invalid_as_json(enabled=flags["output_format"] == "json"):
            if flags["prices"] is not None:
                use_price_file(flags["prices"])
            dry_run(workflow, assignments, flags)
        return
    pilot, seed, yes = flags.pop("pilot"), flags.pop("pilot_seed"), flags.pop("yes")
    flags["pilot_plan"] = pilot_plan(pilot, seed, yes) if pilot is not None else None
    run_and_report(flags, assignments, workflow, request)


def _resume_choices(flags: dict[str, Any]) -> list[str]:
    """The resume flags given (``--force`` ...), as the user spelled them."""
    names = ("force", "rerun", "item_list", "failed_only", "interrupted_only")
    return [
        "--items" if name == "item_list" else "--" + name.replace("_", "-")
        for name in names
        if flags.get(name)
    ]


def resume_request(trace: str, flags: dict[str, Any]) -> Any:
    """The resume flags as the API's :class:`~pflow_trace.runtime.resume.ResumeRequest`."""
    from pflow_trace.runtime.resume import ResumeRequest

    items = None
    if flags["item_list"] is not None:
        try:
            items = tuple(int(part) for part in flags["item_list"].split(",") if part.strip())
        except ValueError:
            raise UsageError(
                f"--items: expected indices like 3,7,12, got {flags['item_list']!r}"
            ) from None
        if not items or min(items) < 0:
            raise UsageError(f"--items: expected indices >= 0, got {flags['item_list']!r}")
    return ResumeRequest(
        trace,
        force=flags["force"],
        rerun=tuple(flags["rerun"]),
        items=items,
        failed_only=flags["failed_only"],
        interrupted_only=flags["interrupted_only"],
    )


def run_and_report(
    flags: dict[str, Any],
    assignments: tuple[str, ...],
    workflow: str | None,
    request: Any = None,
) -> None:
    """Run WORKFLOW (or, with none, the workflow of the run ``request`` resumes), report the
    outcome and exit with its code."""
    from pflow_trace import api
    from pflow_trace.cli.display import RunTally
    from pflow_trace.ir.validation import workflow_warnings
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.runtime.inputs import parse_assignments, stdin_input, with_piped_text

    text_mode = flags["output_format"] == "text"
    point = None
    with _invalid_as_json(enabled=not text_mode):
        if flags["scheduler"] and flags["executor"] not in (None, "dask"):
            raise UsageError(f"--scheduler is for --executor dask, not {flags['executor']}")
        if workflow is not None:
            loaded = api.load_workflow(workflow)
        else:
            point = api.open_resume(request.trace, request)
            loaded = point.workflow
        inputs = parse_assignments(assignments)
        if stdin_input(loaded) is not None:
            inputs = with_piped_text(loaded, inputs, _piped_stdin())
        settings = resolve_export_settings(
            flags["exporter"],
            flags["otlp_endpoint"],
            flags["otlp_protocol"],
            flags["service_name"],
            trace_shape=flags["trace_shape"],
        )
        if flags["prices"] is not None:
            use_price_file(flags["prices"])
    for warning in workflow_warnings(loaded):
        click.echo(f"warning: {terminal_safe(warning)}", err=True)
    tally = RunTally()
    observers: list[Any] = [tally]
    if text_mode and not flags["quiet"]:
        observers.append(_status_display(loaded, flags["no_color"]))
        if flags.get("pilot_plan") is not None:
            from pflow_trace.cli.forecast import pause_display_while_asking

            pause_display_while_asking(flags["pilot_plan"], observers[-1])
    options = _trace_options(flags, settings, observers)
    options.resume = request
    options.pilot = flags.get("pilot_plan")
    # Inputs are checked as the run starts: a refused one is still an "invalid" JSON answer.
    with _invalid_as_json(enabled=not text_mode), _stdout_to_stderr(enabled=not text_mode):
        if point is not None:
            outcome = api.resume(point, options, inputs)
        else:
            outcome = api.run(loaded, inputs, options)
    report_outcome(outcome, tally, settings.exporter, text_mode, flags["quiet"])
    raise SystemExit(exit_code(outcome))


def _piped_stdin() -> str | None:
    """What was piped in (``cat data.json | pflow-trace run ...``), or None when stdin is not a
    pipe.

    Only a pipe is read, as pflow does: a terminal, ``/dev/null``, a file redirect or a socket
    that never ends (some tools' stdin) is left alone, so a run never waits on input nobody
    sends.
    """
    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            return None
        data = sys.stdin.buffer.read()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("piped stdin is not UTF-8 text") from None


def _trace_options(flags: dict[str, Any], settings: Any, observers: list[Any]) -> Any:
    """The command's flags as the API's :class:`~pflow_trace.api.TraceOptions`."""
    from pflow_trace.api import TraceOptions
    from pflow_trace.observe.redaction import key_patterns_from_env
    from pflow_trace.observe.sanitize import SnapshotLimits
    from pflow_trace.runtime.context import DEFAULT_MAX_NODE_VISITS

    limits = SnapshotLimits.from_env(
        max_string_chars=flags["max_string"], max_list_items=flags["max_list"]
    )
    return TraceOptions(
        export=settings,
        write_trace_file=not flags["no_trace_file"],
        trace_file=flags["trace_file"],
        trace_dir=flags["trace_dir"],
        limits=limits,
        observers=observers,
        max_node_visits=flags["max_node_visits"] or DEFAULT_MAX_NODE_VISITS,
        redact_keys=(*key_patterns_from_env(), *flags["redact_keys"]),
        previews=not flags["no_previews"],
        capture_llm_content=True if flags["capture_llm_content"] else None,
        executor=flags["executor"] or ("dask" if flags["scheduler"] else "threads"),
        scheduler=flags["scheduler"],
        checkpoint=not flags["no_checkpoint"],
        checkpoint_max_bytes=(flags["checkpoint_max_mb"] or 1024) * 1024 * 1024,
    )


def report_outcome(outcome: Any, tally: Any, exporter: str, text_mode: bool, quiet: bool) -> None:
    """Print the result, then any export warning and trace error; a closed stdout is no error."""
    from pflow_trace.cli.display import silence_stdout

    try:
        if quiet and text_mode:
            click.echo(status_line(outcome, tally))
        else:
            print_outcome(outcome, exporter, text_mode, tally)
    except BrokenPipeError:
        silence_stdout()
    for note in outcome.checkpoint_notes:
        click.echo(f"warning: {terminal_safe(note)}", err=True)
    if outcome.export_warning is not None:
        click.echo(f"warning: {terminal_safe(outcome.export_warning)}", err=True)
    for warning in trace_warnings(outcome):
        click.echo(f"warning: {terminal_safe(warning)}", err=True)
    if outcome.trace_error is not None:
        click.echo(f"error: {terminal_safe(outcome.trace_error)}", err=True)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def trace_warnings(outcome: Any) -> list[str]:
    """What the trace writer changed (values it escaped), as written in the trace itself."""
    if outcome.trace_path is None or outcome.trace_error is not None:
        return []
    document = outcome.written_document or {}
    return [text for text in document.get("warnings") or () if isinstance(text, str)]


def exit_code(outcome: Any) -> int:
    """128 + the signal that stopped the run (or came while it was written), else by status;
    a trace that could not be written fails an otherwise successful run."""
    if outcome.signal_number is not None:
        return 128 + outcome.signal_number
    code = EXIT_BY_STATUS.get(outcome.result.status, EXIT_WORKFLOW_FAILED)
    if code == EXIT_OK and outcome.trace_error is not None:
        return EXIT_WORKFLOW_FAILED
    return code


def _status_display(workflow: dict[str, Any], no_color: bool) -> Any:
    """The per-node status lines on stdout; colour only on a terminal and when not turned off."""
    from pflow_trace.cli.display import NodeStatusDisplay

    terminal = sys.stdout.isatty()
    # https://no-color.org: any non-empty NO_COLOR turns colour off, like --no-color.
    color = terminal and not no_color and not os.environ.get("NO_COLOR")
    display = NodeStatusDisplay(sys.stdout, terminal, color=color)
    display.set_nodes(workflow["nodes"])
    return display


@contextlib.contextmanager
def _invalid_as_json(enabled: bool) -> Iterator[None]:
    """With ``--output-format json``, a workflow or input that is refused before the run still
    leaves one JSON object on stdout, ``{"status": "invalid", "errors": [...]}``; the error
    line goes to stderr as always (the command group prints it) and the exit code is 2."""
    try:
        yield
    except PflowTraceError as exc:
        if enabled:
            problems = getattr(exc, "problems", None) or [exc.message]
            click.echo(json_text({"status": "invalid", "errors": problems}))
        raise


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While the run runs, send whatever writes to stdout to stderr instead.

    With ``--output-format json`` stdout is one JSON object for a program to parse; a
    ``print`` or an ``os.system`` in a ``code`` node, or a library writing to file descriptor
    1, must not land in front of it. Both the Python stream and the descriptor are redirected,
    and restored before the object is printed.
    """
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)


def status_line(outcome: Any, tally: Any) -> str:
    """``status: success  (7 nodes run, 1.24 s)``; the count is of executions, as in ``show``."""
    record = outcome.result.record
    took = format_duration_ms(record.duration_ms)
    noun = "node" if tally.executions == 1 else "nodes"
    return f"status: {record.status}  ({tally.executions} {noun} run, {took})"


def use_price_file(path: str) -> None:
    """Check the price file now (a bad one is a one-line error before anything runs), then
    hand it to the ``llm`` nodes the way a user would: through ``PFLOW_TRACE_PRICES``."""
    import os

    from pflow_trace.nodes.llm_pricing import PRICES_ENV, read_user_prices

    read_user_prices(path)
    os.environ[PRICES_ENV] = os.path.abspath(path)


def llm_status_line(llm_summary: dict[str, Any]) -> str:
    """``llm: 5 calls, 305 tokens (130 in, 175 out), price unknown for echo``."""
    from pflow_trace.cli.display import llm_text

    calls = llm_summary.get("calls", 0)
    text = f"llm: {calls} call{'s' if calls != 1 else ''}, {llm_text(llm_summary)}"
    tokens_in, tokens_out = llm_summary.get("input_tokens", 0), llm_summary.get("output_tokens", 0)
    text += f" ({tokens_in:,} in, {tokens_out:,} out)"
    unpriced = llm_summary.get("unpriced_models") or []
    if unpriced:
        text += f"; no price for {', '.join(unpriced)}"
    return text


def print_outcome(outcome: Any, exporter: str, text_mode: bool, tally: Any) -> None:
    """The run's result on stdout: status, error, outputs and trace path, or one JSON object."""
    result = outcome.result
    redact = outcome.sanitizer.redactor.value
    error = redact(result.error)  # a secret learned after the error was recorded
    if text_mode:
        record = result.record
        click.echo("")
        click.echo(status_line(outcome, tally))
        if error and record.status in ("failed", "interrupted"):
            click.echo(f"error: {terminal_safe(error)}")
        for warning in redact(result.warnings):
            click.echo(f"warning: {terminal_safe(warning)}")
        if result.outputs and record.status in ("success", "degraded"):
            click.echo("outputs:")
            for name, value in redact(cap_depth(result.outputs)).items():
                shown = value if isinstance(value, str) else _strict_json(value)
                click.echo(f"  {terminal_safe(name)}: {terminal_safe(shown)}")
        llm_summary = outcome.llm_summary
        if llm_summary:
            click.echo(llm_status_line(llm_summary))
        if outcome.trace_path is not None:
            click.echo(f"trace: {terminal_safe(outcome.trace_path)}")
        if outcome.trace_id and exporter == "otlp" and outcome.export_warning is None:
            click.echo(f"trace id: {outcome.trace_id}")
    else:
        payload: dict[str, Any] = {
            "status": result.status,
            "outputs": redact(cap_depth(outputs_as_json(result.outputs))),
            "nodes": redact(cap_depth(result.nodes)),
            "duration_ms": round(result.duration_ms, 3),
            "error": error,
            "warnings": redact(result.warnings),
            "trace_file": str(outcome.trace_path) if outcome.trace_path else None,
            "trace_id": outcome.trace_id,
            "llm": outcome.llm_summary,
        }
        click.echo(_strict_json(payload))


def _strict_json(value: Any) -> str:
    """One line of strict JSON whatever ``value`` holds (:func:`~pflow_trace.text.json_text`):
    NaN, unprintable ints, keys JSON cannot hold, a broken ``repr`` and lone surrogates never
    reach stdout bare."""
    return json_text(value)
