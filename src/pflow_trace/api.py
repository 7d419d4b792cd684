"""The public Python API: load and validate a workflow, run it traced, read and summarise traces.

This is what ``pflow-trace run`` and ``validate`` call, so a library user gets exactly the
command line's behaviour: spans to the chosen exporter, a trace file (for failed and interrupted
runs too), redaction, and the single export warning when the backend was unreachable. Everything
here is re-exported from :mod:`pflow_trace`::

    import pflow_trace

    workflow = pflow_trace.load_workflow("examples/pipeline.json")
    outcome = pflow_trace.run(workflow, {"count": 3}, pflow_trace.TraceOptions(trace_dir="traces"))
    print(outcome.status, outcome.outputs, outcome.trace_path)
    summary = pflow_trace.summarize([pflow_trace.read_trace(outcome.trace_path)])
    print(summary.to_json())

See ``docs/python-api.md`` for every name and option.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Link, SpanContext

from pflow_trace.errors import ResumeError, TraceWriteError, WorkflowValidationError
from pflow_trace.ir.executor_choice import executor_problems, lane_limit_problems
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.validation import validate_workflow as _validate
from pflow_trace.nodes.mcp_config import workflow_secrets as mcp_secrets
from pflow_trace.nodes.registry import NodeRegistry, default_registry
from pflow_trace.observe.conventions import ENV_CAPTURE_MESSAGE_CONTENT
from pflow_trace.observe.export_settings import ExportSettings, resolve_export_settings
from pflow_trace.observe.facts import Observers, RunObserver
from pflow_trace.observe.otel import parent_context_from_env, setup_tracing
from pflow_trace.observe.redaction import key_patterns_from_env
from pflow_trace.observe.sanitize import Sanitizer, SnapshotLimits
from pflow_trace.report.diff import DiffSettings, RunDiff
from pflow_trace.report.diff_build import build_diff
from pflow_trace.report.diff_gate import GateRule, parse_rules
from pflow_trace.report.stats import DEFAULT_TOP, build_summary
from pflow_trace.report.summary import ShowSummary
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.context import DEFAULT_MAX_NODE_VISITS, RunContext
from pflow_trace.runtime.executors.executor_set import ExecutorSet
from pflow_trace.runtime.inputs import resolve_inputs, run_redactor
from pflow_trace.runtime.pilot import PilotPlan, PilotProjection
from pflow_trace.runtime.resume import (
    NOT_STARTED,
    ResumeRequest,
    RunMemory,
    fingerprint,
    plan_resume,
)
from pflow_trace.runtime.workflow_run import RunResult, run_workflow, workflow_name
from pflow_trace.text import hex_trace_id
from pflow_trace.tracefile.builder import TraceDocumentBuilder, plain_document
from pflow_trace.tracefile.checkpoint import (
    DEFAULT_MAX_BYTES,
    Checkpoint,
    CheckpointWriter,
    Unencodable,
    checkpoint_path,
    encoded_data,
    partial_checkpoint_path,
    read_checkpoint,
)
from pflow_trace.tracefile.model import TraceRun
from pflow_trace.tracefile.readers import read_trace as _read_trace
from pflow_trace.tracefile.spantable import SpanRecorder
from pflow_trace.tracefile.spool import Spool
from pflow_trace.tracefile.writer import (
    check_destination,
    ensure_writable_dir,
    resolve_trace_path,
    write_trace,
)

__all__ = [
    "DiffSettings",
    "ExportSettings",
    "PilotPlan",
    "PilotProjection",
    "ResumePoint",
    "ResumeRequest",
    "RunDiff",
    "RunObserver",
    "ShowSummary",
    "SnapshotLimits",
    "TraceOptions",
    "TraceRun",
    "TracedRun",
    "diff",
    "load_workflow",
    "open_resume",
    "read_trace",
    "resume",
    "run",
    "summarize",
    "validate_workflow",
]

PathLike = str | os.PathLike[str]


@dataclass
class TraceOptions:
    """How a traced run records itself; the defaults are what ``pflow-trace run`` does."""

    export: ExportSettings = field(default_factory=resolve_export_settings)
    write_trace_file: bool = True
    trace_file: str | None = None
    trace_dir: str | None = None
    limits: SnapshotLimits = field(default_factory=SnapshotLimits.from_env)
    join_env_trace_context: bool = True
    extra_processors: Sequence[SpanProcessor] = ()
    observers: Sequence[RunObserver] = ()
    #: Node executions one run may make before it fails (an edge loop that never ends).
    max_node_visits: int = DEFAULT_MAX_NODE_VISITS
    #: Extra regexes for key names to hide (``--redact-key``, ``PFLOW_TRACE_REDACT_KEYS``).
    redact_keys: Sequence[str] = field(default_factory=key_patterns_from_env)
    #: False: no item value previews in spans, the trace or the terminal (``--no-previews``).
    previews: bool = True
    #: Record LLM prompts and completions on spans; None follows
    #: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    capture_llm_content: bool | None = None
    #: Where parallel batches that name no ``batch.executor`` run: threads, processes or dask.
    executor: str = "threads"
    #: The Dask scheduler's address (``tcp://host:8786``); None starts an in-process cluster.
    scheduler: str | None = None
    #: False: parallel batches of node types with an async path (``http``) run on thread lanes
    #: too, instead of async lanes (docs/batch.md).
    async_lanes: bool = True
    #: Keep a private checkpoint beside the trace, so the run can be resumed (docs/resume.md).
    checkpoint: bool = True
    #: Past this many bytes the checkpoint keeps no more values (the run says so).
    checkpoint_max_bytes: int = DEFAULT_MAX_BYTES
    #: Resume the run that wrote this trace: reuse what succeeded there (``resume``).
    resume: ResumeRequest | None = None
    #: ``--pilot K``: each batch runs K random items first, projects the rest and asks
    #: (:class:`~pflow_trace.runtime.pilot.PilotPlan`); None runs every batch straight through.
    pilot: PilotPlan | None = None


@dataclass
class TracedRun:
    """A finished run (also a failed or interrupted one) and where its trace went."""

    result: RunResult
    trace_path: Path | None
    trace_id: str | None
    export_warning: str | None
    #: The trace document as the writer takes it (span rows and ``batch_items`` as spooled
    #: JSON text); see ``document``.
    written_document: dict[str, Any] | None
    sanitizer: Sanitizer
    #: How long writing the trace file took; 0.0 when none was written.
    trace_write_seconds: float = 0.0
    #: Why the trace file could not be written (one line naming the path), else None.
    trace_error: str | None = None
    #: The signal (Ctrl-C, SIGTERM, SIGHUP) that stopped the run or arrived while it was being
    #: finished and written; the command line exits 128 + this number.
    signal_number: int | None = None
    #: What the checkpoint could not keep (values it cannot encode, its size limit), one line
    #: each.
    checkpoint_notes: list[str] = field(default_factory=list)
    _document: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def document(self) -> dict[str, Any] | None:
        """The trace document as written (already redacted); None when the run never started.

        Its span rows are plain lists, as in the file; they are decoded on first use.
        """
        if self._document is None and self.written_document is not None:
            self._document = plain_document(self.written_document)
        return self._document

    @property
    def llm_summary(self) -> dict[str, Any] | None:
        """The run's LLM calls added up (the trace's ``llm_summary``), None without any.

        Read from the document's head: unlike ``document``, it decodes no span rows.
        """
        if self.written_document is None:
            return None
        summary: dict[str, Any] | None = self.written_document.get("llm_summary")
        return summary

    @property
    def outputs(self) -> dict[str, Any]:
        """The workflow's declared outputs, redacted like every other output."""
        redacted: dict[str, Any] = self.sanitizer.redactor.value(self.result.outputs)
        return redacted


def load_workflow(path: PathLike, registry: NodeRegistry | None = None) -> dict[str, Any]:
    """Read and validate a workflow file; raises ``UsageError`` / ``WorkflowValidationError``."""
    return load_and_validate(path, registry)


def validate_workflow(
    workflow: Any, source: str = "workflow", registry: NodeRegistry | None = None
) -> dict[str, Any]:
    """Validate a parsed workflow; raises ``WorkflowValidationError`` listing every problem."""
    return _validate(workflow, source, registry)


def read_trace(path: PathLike) -> TraceRun:
    """Read one trace file (ours, pflow's JSON or pflow's JSON lines) into the one model."""
    return _read_trace(path)


def summarize(traces: Sequence[TraceRun | PathLike], top: int = DEFAULT_TOP) -> ShowSummary:
    """The ``show`` summary of one or more runs; paths are read first."""
    runs = [trace if isinstance(trace, TraceRun) else _read_trace(trace) for trace in traces]
    return build_summary(runs, top=top)


def diff(
    base: TraceRun | PathLike | Sequence[TraceRun | PathLike],
    new: TraceRun | PathLike | Sequence[TraceRun | PathLike],
    *,
    fail_on: Sequence[str | GateRule] = (),
    settings: DiffSettings | None = None,
) -> RunDiff:
    """Compare the new run(s) with the base run(s): the model ``pflow-trace diff`` prints.

    Each side is a run, a trace path, or a sequence of them (pooled). ``fail_on`` takes the
    rules of ``--fail-on`` (``"p95:+10%"``, ``"default"``); ``gate_failed`` says whether a
    significant regression crossed one. A malformed rule raises ``UsageError``.
    """
    rules = [rule for rule in fail_on if isinstance(rule, GateRule)]
    rules += parse_rules(rule for rule in fail_on if isinstance(rule, str))
    return build_diff(_runs_of(base), _runs_of(new), settings, rules)


def _runs_of(side: TraceRun | PathLike | Sequence[TraceRun | PathLike]) -> list[TraceRun]:
    if isinstance(side, TraceRun | str | os.PathLike):
        side = [side]
    return [trace if isinstance(trace, TraceRun) else _read_trace(trace) for trace in side]


def _trace_path(options: TraceOptions, workflow: dict[str, Any], execution_id: str) -> Path | None:
    if not options.write_trace_file:
        return None
    path = resolve_trace_path(
        options.trace_file, options.trace_dir, workflow_name(workflow), time.time_ns(), execution_id
    )
    ensure_writable_dir(path)
    check_destination(path, "--trace-file")
    return path


def _export_warning(
    warning: str | None, sanitizer: Sanitizer, trace_path: Path | None
) -> str | None:
    """The one export warning, redacted (it quotes the endpoint), naming the saved trace."""
    if warning is None:
        return None
    where = f"; the run's trace is in {trace_path}" if trace_path is not None else ""
    return sanitizer.redactor.text(warning) + where


def _llm_api_keys(workflow: dict[str, Any]) -> list[str]:
    """The API keys an ``llm`` node could send, redacted everywhere the run writes."""
    if not any(node.get("type") == "llm" for node in workflow["nodes"]):
        return []
    from pflow_trace.nodes.llm_calls import known_api_keys

    return known_api_keys()


def _capture_llm_content(option: bool | None) -> bool:
    """The option when given, else OpenTelemetry's GenAI switch (``true`` turns it on)."""
    if option is not None:
        return option
    return os.environ.get(ENV_CAPTURE_MESSAGE_CONTENT, "").strip().lower() == "true"


def _refuse_unshippable(
    workflow: dict[str, Any], executor: str, registry: NodeRegistry | None
) -> None:
    """``run --executor``: nodes that cannot go to another process, or that ask for more than
    100 in flight there, fail before anything runs."""
    if executor != "threads":
        registry = registry or default_registry()
        problems = executor_problems(workflow, registry, executor)
        problems += lane_limit_problems(workflow, registry, executor)
        if problems:
            raise WorkflowValidationError(workflow_name(workflow), problems)


def _run_sanitizer(
    workflow: dict[str, Any], values: dict[str, Any], options: TraceOptions
) -> Sanitizer:
    """The run's one redaction: the trace, spans, exports and printed output all go through it.

    It knows the sensitive inputs, secret-named keys (the user's patterns too), the API keys
    an ``llm`` node could send and the env values and headers of the MCP servers the workflow
    uses before anything runs, and learns the rest as the run goes.
    """
    redactor = run_redactor(workflow, values, options.redact_keys)
    redactor.learn_given(_llm_api_keys(workflow))
    redactor.learn_given(mcp_secrets(node["type"] for node in workflow["nodes"]))
    return Sanitizer(redactor, options.limits, options.previews)


def _trace_builder(
    workflow: dict[str, Any], options: TraceOptions, sanitizer: Sanitizer, trace_path: Path | None
) -> TraceDocumentBuilder:
    """The run's trace-file view, with its span recorder when a trace file is written.

    Long lists (span rows, ``batch_items``) wait for the writer in a spool beside the trace
    (in the temporary directory when no trace file is written: the document is still made).
    """
    spool = Spool(trace_path.parent if trace_path is not None else None)
    return TraceDocumentBuilder(
        sanitizer,
        options.export.service_name,
        SpanRecorder(spool) if options.write_trace_file else None,
        namespaces=frozenset(node["id"] for node in workflow["nodes"]),
        spool=spool,
    )


def run(
    workflow: dict[str, Any] | PathLike,
    inputs: dict[str, Any] | None = None,
    options: TraceOptions | None = None,
    registry: NodeRegistry | None = None,
) -> TracedRun:
    """Run a workflow (a validated dict, or a path to load) with tracing on; never exits.

    Inputs are validated before anything runs (``UsageError``); after that every ending —
    success, a failed node, Ctrl-C — returns a :class:`TracedRun` with its trace written.
    With ``options.resume``, what succeeded in that trace's run is reused (``ResumeError``
    when it cannot be).
    """
    if not isinstance(workflow, dict):
        workflow = load_workflow(workflow, registry)
    options = options or TraceOptions()
    source = _resume_source(options.resume) if options.resume is not None else None
    return _run(workflow, inputs or {}, options, registry, source)


@dataclass
class ResumePoint:
    """A run to resume, read from its trace and checkpoint: its workflow (validated) and
    inputs, ready for :func:`resume`."""

    workflow: dict[str, Any]
    inputs: dict[str, Any]
    _source: _ResumeSource = field(repr=False)


def open_resume(
    trace: PathLike, request: ResumeRequest | None = None, registry: NodeRegistry | None = None
) -> ResumePoint:
    """Read ``trace`` and its checkpoint (``ResumeError``, one line, when they won't do)."""
    source = _resume_source(request or ResumeRequest(str(trace)))
    header = source.checkpoint.header
    if not isinstance(header.get("workflow"), dict):
        raise ResumeError(
            f"{trace}: that run's workflow could not be kept; run the workflow with --resume"
        )
    workflow = validate_workflow(header["workflow"], str(trace), registry)
    inputs = header.get("inputs")
    if not isinstance(inputs, dict):
        raise ResumeError(
            f"{trace}: that run's inputs could not be kept; run the workflow with --resume"
        )
    return ResumePoint(workflow, inputs, source)


def resume(
    trace: PathLike | ResumePoint,
    options: TraceOptions | None = None,
    inputs: dict[str, Any] | None = None,
    registry: NodeRegistry | None = None,
) -> TracedRun:
    """Run again the workflow of the run that wrote ``trace``, with that run's inputs (any in
    ``inputs`` replace them), reusing whatever succeeded there (``docs/resume.md``).
    ``options.resume`` narrows or forces it."""
    options = options or TraceOptions()
    if not isinstance(trace, ResumePoint):
        trace = open_resume(trace, options.resume, registry)
    options.resume = trace._source.request
    merged = {**trace.inputs, **(inputs or {})}
    return _run(trace.workflow, merged, options, registry, trace._source)


def _run(
    workflow: dict[str, Any],
    inputs: dict[str, Any],
    options: TraceOptions,
    registry: NodeRegistry | None,
    source: _ResumeSource | None,
) -> TracedRun:
    _refuse_unshippable(workflow, options.executor, registry)
    values = resolve_inputs(workflow, inputs)
    plan = None
    if source is not None:
        plan = plan_resume(source.request, source.checkpoint, source.statuses, workflow, values)
    sanitizer = _run_sanitizer(workflow, values, options)
    execution_id = str(uuid.uuid4())
    trace_path = _trace_path(options, workflow, execution_id)
    builder = _trace_builder(workflow, options, sanitizer, trace_path)
    notes: list[str] = []
    writer = _checkpoint_writer(options, trace_path, workflow, values, execution_id, notes)
    if writer is not None:
        builder.checkpoint = writer.close
    if source is not None:
        builder.resumed_from = source.resumed_from
    tracing = setup_tracing(options.export, options.extra_processors, span_sink=builder.spans)
    observer = Observers([*([writer] if writer else []), builder, *options.observers])
    context = RunContext(
        tracer=tracing.tracer,
        observer=observer,
        sanitizer=sanitizer,
        max_node_visits=options.max_node_visits,
        capture_llm_content=_capture_llm_content(options.capture_llm_content),
        executors=ExecutorSet(options.executor, options.scheduler, async_lanes=options.async_lanes),
        memory=RunMemory(writer, plan) if writer is not None or plan is not None else None,
        root_links=source.links if source is not None else (),
        pilot=options.pilot,
    )
    parent = parent_context_from_env() if options.join_env_trace_context else None
    with interrupts.signals_handled():
        result, document, recorded = _run_and_record(
            workflow, registry, context, parent, execution_id, values, builder, tracing, trace_path
        )
        if writer is not None and trace_path is not None:  # beside the trace, or gone
            writer.settle(checkpoint_path(trace_path), keep=recorded[1] is None)
        late_signal = interrupts.take_pending()
    write_seconds, trace_error, warning = recorded
    if trace_error is not None:
        trace_path = None
    warning = _export_warning(warning, sanitizer, trace_path)
    return TracedRun(
        result=result,
        trace_path=trace_path,
        trace_id=hex_trace_id(result.record.trace_id),
        export_warning=warning,
        written_document=document,
        sanitizer=sanitizer,
        trace_write_seconds=write_seconds,
        trace_error=trace_error,
        signal_number=result.interrupt_signal or late_signal,
        checkpoint_notes=notes + (writer.notes.lines(writer.max_bytes) if writer else []),
    )


# -- resuming -------------------------------------------------------------------------------------


@dataclass
class _ResumeSource:
    """What a resume takes from the earlier run: its checkpoint and its trace's facts."""

    request: ResumeRequest
    checkpoint: Checkpoint
    #: (node id, visit) -> index -> status, for the items that did not succeed there.
    statuses: dict[tuple[str, int], dict[int, str]]
    resumed_from: dict[str, Any]
    links: tuple[Link, ...]


def _resume_source(request: ResumeRequest) -> _ResumeSource:
    """Read the trace ``request`` names and its checkpoint; one line when either won't do."""
    path = Path(request.trace)
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResumeError(f"{path}: no such trace file") from None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{path}: not a pflow-trace trace file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("otel"), dict):
        raise ResumeError(f"{path}: not a pflow-trace trace file")
    recorded = document.get("checkpoint")
    if not isinstance(recorded, dict):
        raise ResumeError(
            f"{path}: that run kept no checkpoint (--no-checkpoint, or no trace file); "
            "nothing to resume from"
        )
    checkpoint = read_checkpoint(checkpoint_path(path), recorded)
    otel = document["otel"]
    return _ResumeSource(
        request=request,
        checkpoint=checkpoint,
        statuses=_item_statuses(document.get("nodes") or []),
        resumed_from={
            "execution_id": str(document.get("execution_id")),
            "trace_id": otel.get("trace_id"),
            "span_id": otel.get("span_id"),
            "file": path.name,
        },
        links=_root_link(otel.get("trace_id"), otel.get("span_id")),
    )


def _item_statuses(events: list[Any]) -> dict[tuple[str, int], dict[int, str]]:
    """(node id, visit) -> index -> status of each item that did not succeed (the n-th event
    of a node is its n-th visit)."""
    visits: dict[str, int] = {}
    statuses: dict[tuple[str, int], dict[int, str]] = {}
    for event in events:
        node_id = event.get("node_id") if isinstance(event, dict) else None
        if not isinstance(node_id, str):
            continue
        visit = visits[node_id] = visits.get(node_id, 0) + 1
        statuses[(node_id, visit)] = {
            item["index"]: item.get("status", NOT_STARTED)
            for item in event.get("batch_items") or []
            if isinstance(item, dict) and isinstance(item.get("index"), int)
        }
    return statuses


def _root_link(trace_id: Any, span_id: Any) -> tuple[Link, ...]:
    """A link from the new root span to the old one, when the old trace has its ids."""
    try:
        context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True)
    except (TypeError, ValueError):
        return ()
    return (Link(context),) if context.is_valid else ()


def _encoded_or_none(value: Any) -> Any:
    try:
        return encoded_data(value)
    except Unencodable:
        return None


def _checkpoint_writer(
    options: TraceOptions,
    trace_path: Path | None,
    workflow: dict[str, Any],
    values: dict[str, Any],
    execution_id: str,
    notes: list[str],
) -> CheckpointWriter | None:
    """The run's checkpoint, beside its trace file (none without one, or when turned off;
    one that cannot be created is a line in ``notes``)."""
    if not options.checkpoint or trace_path is None:
        return None
    header = {
        "execution_id": execution_id,
        # Tagged like any checkpointed value (a YAML date stays a date); one that cannot be
        # encoded is left out: ``run --resume`` still works, ``resume TRACE`` says why it cannot.
        "workflow": _encoded_or_none(workflow),
        "workflow_sha256": fingerprint(workflow),
        "inputs": _encoded_or_none(values),
        "inputs_sha256": fingerprint(values),
    }
    try:
        return CheckpointWriter(
            partial_checkpoint_path(trace_path), header, options.checkpoint_max_bytes
        )
    except OSError as exc:  # a name too long, a full disk: the run goes on without one
        notes.append(f"checkpoint: cannot be written ({exc.strerror or exc}); this run cannot "
                     "be resumed")  # fmt: skip
        return None


def _run_and_record(
    workflow: dict[str, Any],
    registry: NodeRegistry | None,
    context: RunContext,
    parent: Any,
    execution_id: str,
    values: dict[str, Any],
    builder: TraceDocumentBuilder,
    tracing: Any,
    trace_path: Path | None,
) -> tuple[RunResult, dict[str, Any] | None, tuple[float, str | None, str | None]]:
    """Run, then write the trace and flush the spans however the run ended.

    Only the nodes' work is interruptible; finishing the run, writing its trace and flushing
    its spans never are: a signal there is kept and reported (see ``runtime/interrupts.py``).
    Returns the result, the document, and (write seconds, write error, export warning).
    """
    write_seconds = 0.0
    trace_error: str | None = None
    try:
        result = run_workflow(
            workflow,
            registry=registry,
            run=context,
            parent_context=parent,
            execution_id=execution_id,
            resolved_inputs=values,
        )
    finally:
        document = builder.finished_document()
        if trace_path is not None and document is not None:
            started = time.perf_counter()
            trace_error = _write_or_explain(trace_path, document)
            write_seconds = time.perf_counter() - started
        warning = tracing.shutdown()
    return result, document, (write_seconds, trace_error, warning)


def _write_or_explain(path: Path, document: dict[str, Any]) -> str | None:
    """Write the trace; when the disk says no, return the one line saying so, never raise.

    The run itself is over by now: its summary and spans must still reach the user.
    """
    try:
        write_trace(path, document)
    except TraceWriteError as exc:
        return exc.message
    return None
