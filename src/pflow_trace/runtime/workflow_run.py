"""Runs a workflow: inputs, the root span, the flow, the outcome and the declared outputs.

This is the library entry point. It never exits the process and never prints; it returns a
:class:`RunResult` (also for failed and interrupted runs) so every caller, the CLI included,
renders the same facts.
"""

from __future__ import annotations

import difflib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from pflow_trace.errors import NodeExecutionError, RunInterrupted
from pflow_trace.ir.templates import (
    Literal,
    PathPart,
    Reference,
    UnresolvedTemplate,
    lookup,
    parse_string,
    resolve,
)
from pflow_trace.nodes import http_pool
from pflow_trace.nodes.base import reset_cancellation
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import RunRecord
from pflow_trace.runtime.auto_output import auto_output
from pflow_trace.runtime.compiler import compile_workflow
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.executors.executor_set import ExecutorSet
from pflow_trace.runtime.inputs import resolve_inputs


@dataclass(slots=True)
class RunResult:
    """How a run ended and what it produced."""

    record: RunRecord
    outputs: dict[str, Any]
    nodes: dict[str, Any]
    shared: dict[str, Any] = field(repr=False)
    #: The signal that stopped an interrupted run (None for Python's own Ctrl-C handler).
    interrupt_signal: int | None = None
    #: Why a run is degraded: each ``continue`` batch with failed items, each routed failure.
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def duration_ms(self) -> float:
        return self.record.duration_ms

    @property
    def error(self) -> str | None:
        return self.record.error


def workflow_name(workflow: Mapping[str, Any], fallback: str = "workflow") -> str:
    return str(workflow.get("name") or fallback)


def run_warnings(
    workflow: Mapping[str, Any], shared: Mapping[str, Any], run: RunContext
) -> list[str]:
    """What makes a finished run degraded, one line each.

    Batches that kept going past failed items (named, with counts) and failures an ``error``
    edge routed around.
    """
    warnings: list[str] = []
    for node in workflow["nodes"]:
        if "batch" in node:
            output = shared.get(node["id"])
            if isinstance(output, Mapping) and output.get("error_count"):
                warnings.append(
                    f"batch '{node['id']}': {output['error_count']} of {output.get('count')}"
                    " items failed"
                )
    return warnings + list(run.recovered)


def declared_outputs(
    workflow: Mapping[str, Any], shared: Mapping[str, Any], failed: Iterable[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """(the workflow's outputs, one problem per output that cannot be resolved).

    As in pflow-cli 0.16, an output that cannot be resolved fails the run (the problems
    say why, with the close key when there is one), except a ``??`` chain none of whose
    nodes ran (branches that were not taken), which is left out. An output whose value is
    null is left out too: pflow writes nothing for it. ``failed`` names the nodes that failed
    and were routed around: their namespaces are gone, but they did run. A workflow that
    declares no outputs has the one value pflow shows for it (``auto_output``).
    """
    if not workflow.get("outputs"):  # nothing declared: the value pflow shows instead
        return auto_output(shared), []
    outputs: dict[str, Any] = {}
    problems: list[str] = []
    for name, template in (workflow.get("outputs") or {}).items():
        compiled = parse_string(template)
        try:
            value = resolve(compiled, shared)
        except UnresolvedTemplate as miss:
            if not _none_ran(compiled, shared, set(failed)):
                problems.append(missing_output_problem(name, template, miss, shared))
            continue
        if value is not None:
            outputs[name] = value
    return outputs, problems


def _none_ran(compiled: Any, shared: Mapping[str, Any], failed: set[str]) -> bool:
    """A whole-value ``??`` chain whose every operand reads a node that did not run."""
    if not isinstance(compiled, Reference) or not compiled.fallbacks:
        return False
    paths = [compiled.path, *compiled.fallbacks]
    return all(
        not isinstance(path, Literal) and path[0] not in shared and path[0] not in failed
        for path in paths
    )


#: The first characters JSON text can start with; anything else is text without trying.
_JSON_STARTS = frozenset('{["tfn-0123456789')


def output_as_json(value: Any) -> Any:
    """An output as ``--output-format json`` prints it: JSON text parsed, as pflow prints it.

    pflow-cli 0.16 parses every declared output that is a string holding a whole JSON value
    (``"3"`` → ``3``, ``"[1]"`` → ``[1]``, blanks around it allowed) in its JSON result; text
    that is not JSON, or only starts like it (``n=3``, ``3 apples``), stays text.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in _JSON_STARTS:
        return value
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return value


def outputs_as_json(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Every output through :func:`output_as_json`."""
    return {name: output_as_json(value) for name, value in outputs.items()}


def missing_output_problem(
    name: str, template: str, miss: UnresolvedTemplate, shared: Mapping[str, Any]
) -> str:
    """``output 'total': cannot resolve ${b.reslts}: key 'b.reslts' not found (did you mean
    'b.results'?)``; the suggestion only when a key there is close (difflib)."""
    parts = _parts_to_missing(miss, shared)
    head = f"output '{name}': cannot resolve {template}"
    if parts is None:  # the miss was on a ``??`` operand, not on the main path
        return f"{head}: '{miss.missing}' not found"
    text = f"{head}: key '{_path_text(parts)}' not found"
    close = difflib.get_close_matches(str(miss.missing), miss.available, n=1, cutoff=0.6)
    if close:
        key = close[0]
        guess: PathPart = int(key[1:-1]) if key.startswith("[") and key[1:-1].isdigit() else key
        text += f" (did you mean '{_path_text((*parts[:-1], guess))}'?)"
    return text


def _parts_to_missing(
    miss: UnresolvedTemplate, shared: Mapping[str, Any]
) -> tuple[PathPart, ...] | None:
    """The reference's path up to the part that was not found: ``('b', 'reslts')``.

    Found by resolving ever longer prefixes the way the template was resolved, so ``${a.a}``
    names the right ``a``; None when the main path resolves (a ``??`` operand missed last).
    """
    path = miss.reference.path
    for end in range(1, len(path) + 1):
        try:
            lookup(Reference(miss.reference.text, path[:end]), shared)
        except UnresolvedTemplate:
            part = path[end - 1]
            return path[:end] if isinstance(part, (str, int)) and part == miss.missing else None
    return None


def _path_text(parts: tuple[PathPart, ...]) -> str:
    """Path parts written as in a template: ``a.b[0].c``; a computed index as ``[${...}]``."""
    text = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str):
            text += f".{part}" if text else part
        else:
            text += f"[{part.text}]"
    return text


def run_workflow(
    workflow: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    *,
    registry: NodeRegistry | None = None,
    run: RunContext | None = None,
    parent_context: otel_context.Context | None = None,
    execution_id: str | None = None,
    resolved_inputs: dict[str, Any] | None = None,
) -> RunResult:
    """Run a validated workflow; raises only for bad inputs, before anything runs."""
    run = run or RunContext()
    if run.executors is None:  # the batches' own executors (processes, dask) are honoured too
        run.executors = ExecutorSet()
    values = (
        resolved_inputs if resolved_inputs is not None else resolve_inputs(workflow, inputs or {})
    )
    flow = compile_workflow(workflow, registry, run)
    shared: dict[str, Any] = dict(values)
    record, span, token = _begin(run, workflow_name(workflow), execution_id, parent_context)
    interrupt_signal: int | None = None
    warnings: list[str] = []
    outputs: dict[str, Any] | None = None
    try:
        flow._run(shared)
        warnings = run_warnings(workflow, shared, run)
        outputs, problems = declared_outputs(workflow, shared, run.routed_failures)
        # As in pflow, an output that cannot be resolved fails the run.
        record.status = "failed" if problems else "degraded" if warnings else "success"
        record.error, record.warnings = "; ".join(problems) or None, list(warnings)
    except NodeExecutionError as exc:
        record.status, record.error, record.failed_node = "failed", exc.message, exc.node_id
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, RunInterrupted) else RunInterrupted()
        record.status, record.error = "interrupted", stopped.message
        interrupt_signal = stopped.signal_number if isinstance(exc, RunInterrupted) else None
    finally:
        try:
            _finish_run(run, record, span, token, shared)
        finally:
            run.executors.close()  # worker processes and a cluster the run started end with it
            http_pool.close_idle()  # no kept HTTP connection outlives the run idle
    node_ids = [node["id"] for node in workflow["nodes"]]
    return RunResult(
        record=record,
        outputs=declared_outputs(workflow, shared, run.routed_failures)[0]
        if outputs is None
        else outputs,
        nodes={node_id: shared[node_id] for node_id in node_ids if node_id in shared},
        shared=shared,
        interrupt_signal=interrupt_signal,
        warnings=warnings,
    )


def _begin(
    run: RunContext,
    name: str,
    execution_id: str | None,
    parent_context: otel_context.Context | None,
) -> tuple[RunRecord, Span, object]:
    """The run's record and root span, current from here on; the run's counters reset."""
    record = RunRecord(execution_id or str(uuid.uuid4()), name, start_ns=time.time_ns())
    span = _start_workflow_span(run, record, parent_context)
    if run.observer is not None:
        run.observer.run_started(record)
    token = otel_context.attach(trace.set_span_in_context(span, parent_context))
    run.node_visits = 0
    run.recent_nodes.clear()
    reset_cancellation()
    http_pool.close_idle()  # proxy settings are read afresh for this run
    return record, span, token


def _start_workflow_span(
    run: RunContext, record: RunRecord, parent_context: otel_context.Context | None
) -> Span:
    """Start the root span and copy its ids (and the caller's span, if any) into ``record``."""
    span = run.tracer.start_span(
        conv.span_name(conv.LAYER_WORKFLOW, record.workflow_name),
        context=parent_context,
        attributes={
            conv.ATTR_LAYER: conv.LAYER_WORKFLOW,
            conv.ATTR_WORKFLOW_NAME: record.workflow_name,
            conv.ATTR_EXECUTION_ID: record.execution_id,
        },
        start_time=record.start_ns,
        links=list(run.root_links) or None,
    )
    span_context = span.get_span_context()
    record.trace_id, record.span_id = span_context.trace_id, span_context.span_id
    parent_span = (
        trace.get_current_span(parent_context).get_span_context() if parent_context else None
    )
    if parent_span is not None and parent_span.is_valid:
        record.parent_span_id = parent_span.span_id
    return span


def _finish_run(
    run: RunContext, record: RunRecord, span: Span, token: object, shared: dict[str, Any]
) -> None:
    """Close the run however it ended: end time, final status, span status, observers.

    A status still ``running`` here means an exception nobody expected (a bug); the run is
    recorded as failed rather than lost, and the exception keeps propagating.
    """
    record.end_ns = time.time_ns()
    if record.status == "running":
        record.status, record.error = "failed", "internal error"
    if span.is_recording():
        span.set_attribute(conv.ATTR_FINAL_STATUS, record.status)
        if record.status in ("failed", "interrupted"):
            span.set_status(Status(StatusCode.ERROR, run.sanitizer.text(record.error or "")))
    otel_context.detach(token)
    span.end(end_time=record.end_ns)
    if run.observer is not None:
        run.observer.run_finished(record, shared)
