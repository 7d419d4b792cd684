"""A run with everything on: spans to the chosen exporter, a trace file, redaction.

This is what ``pflow-trace run`` calls, and what a library user calls to get the same
behaviour. It wires one :class:`~pflow_trace.runtime.context.RunContext` (tracer, observers,
sanitizer), runs the workflow, writes the trace file (for failed and interrupted runs too),
flushes the spans, and reports the single export warning if the backend was unreachable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.observe.export_settings import ExportSettings, resolve_export_settings
from pflow_trace.observe.facts import Observers, RunObserver
from pflow_trace.observe.otel import parent_context_from_env, setup_tracing
from pflow_trace.observe.redaction import Redactor
from pflow_trace.observe.sanitize import Sanitizer, SnapshotLimits
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.executor import RunResult, run_workflow, workflow_name
from pflow_trace.runtime.inputs import resolve_inputs, sensitive_values
from pflow_trace.tracefile.builder import TraceDocumentBuilder, hex_trace_id
from pflow_trace.tracefile.spantable import SpanRecorder
from pflow_trace.tracefile.writer import ensure_writable_dir, resolve_trace_path, write_trace


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


@dataclass
class TracedRun:
    result: RunResult
    trace_path: Path | None
    trace_id: str | None
    export_warning: str | None
    document: dict[str, Any] | None
    sanitizer: Sanitizer


def traced_run(
    workflow: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    options: TraceOptions | None = None,
    registry: NodeRegistry | None = None,
) -> TracedRun:
    options = options or TraceOptions()
    values = resolve_inputs(workflow, inputs or {})
    sanitizer = Sanitizer(Redactor(sensitive_values(workflow, values)), options.limits)
    execution_id = str(uuid.uuid4())
    trace_path: Path | None = None
    if options.write_trace_file:
        trace_path = resolve_trace_path(
            options.trace_file,
            options.trace_dir,
            workflow_name(workflow),
            time.time_ns(),
            execution_id,
        )
        ensure_writable_dir(trace_path)
    recorder = SpanRecorder() if options.write_trace_file else None
    builder = TraceDocumentBuilder(
        sanitizer,
        options.export.service_name,
        recorder,
        namespaces=frozenset(node["id"] for node in workflow["nodes"]),
    )
    processors = [*options.extra_processors, *([recorder] if recorder is not None else [])]
    tracing = setup_tracing(options.export, processors)
    observers: list[RunObserver] = [builder, *options.observers]
    run = RunContext(tracer=tracing.tracer, observer=Observers(observers), sanitizer=sanitizer)
    parent = parent_context_from_env() if options.join_env_trace_context else None
    try:
        result = run_workflow(
            workflow,
            registry=registry,
            run=run,
            parent_context=parent,
            execution_id=execution_id,
            resolved_inputs=values,
        )
    finally:
        document = (
            builder.document
            if builder.document is not None
            else (builder.build() if builder.run is not None else None)
        )
        if trace_path is not None and document is not None:
            write_trace(trace_path, document)
        warning = tracing.shutdown()
    if warning is not None and trace_path is not None:
        warning = f"{warning}; the run's trace is in {trace_path}"
    return TracedRun(
        result=result,
        trace_path=trace_path,
        trace_id=hex_trace_id(result.record.trace_id),
        export_warning=warning,
        document=document,
        sanitizer=sanitizer,
    )
