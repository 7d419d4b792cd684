"""The Instrumented layer: the outermost wrapper, where one node execution becomes facts.

It times the node, opens the node's top span, publishes the :class:`NodeExecution` record to
the observer before and after, and turns any failure into a :class:`NodeExecutionError` that
names the node. Everything the trace file and the terminal know about a node comes from here.

Being the one place every node execution passes, it also keeps a run honest about where it
goes: it counts executions against the run's limit (an edge loop that never ends fails with the
loop named instead of growing until memory runs out), and when the workflow routes by action,
a node that returns an action none of its edges follows fails instead of silently ending the
run as a success.

A node with an ``error`` successor (pflow's ``on-error``) does not fail the run: its failure is
recorded the same way, its namespace is dropped (a failed node's outputs are not readable, as
in pflow, so ``??`` falls through), and the node returns the ``error`` action instead.
"""

from __future__ import annotations

import time
from typing import Any

from pflow_trace.engine.core import DEFAULT_ACTION
from pflow_trace.errors import NodeExecutionError, NodeVisitLimitError
from pflow_trace.ir.file_refs import span_values
from pflow_trace.ir.templates import compile_value
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import NodeExecution
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.context import current_caller, current_execution
from pflow_trace.runtime.layers import LayerWrapper, describe_error
from pflow_trace.runtime.llm_spans import record_llm_call, usage_of, usage_of_failure
from pflow_trace.runtime.resume import NodeVisit, current_visit, read_templates

#: The action a failed node returns when an edge routes its failure (pflow's ``on-error``).
ERROR_ACTION = "error"


class InstrumentedNode(LayerWrapper):
    layer = conv.LAYER_INSTRUMENTED

    def __init__(
        self,
        *args: Any,
        reads: frozenset[str] = frozenset(),
        routes_by_action: bool = False,
        files: tuple[dict[str, Any], ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reads = reads
        #: The params this node's workflow read from files (:mod:`pflow_trace.ir.file_refs`).
        self.files = files
        if files:
            self.span_attributes[conv.ATTR_NODE_FILES] = span_values(files)
        #: The workflow has edges: the action this node returns picks its successor.
        self.routes_by_action = routes_by_action
        #: A batch marks its own interruptible regions (each item's work, the wait for lanes).
        self.inner_handles_interrupts = bool(getattr(self.inner, "handles_interrupts", False))
        self.is_batch = getattr(self.inner, "layer", None) == conv.LAYER_BATCH
        self._templates: tuple[Any, ...] | None = None

    def _read_templates(self) -> tuple[Any, ...]:
        """The templates this node resolves (params, ``batch.items``): what it depends on."""
        if self._templates is None:
            items = getattr(self.inner, "compiled_items", None)
            params = compile_value(self.params)
            self._templates = read_templates(params, *([items] if items is not None else []))
        return self._templates

    def _count_visit(self) -> None:
        """Count this execution; past the run's limit, fail naming the loop that got here."""
        run = self.run_context
        run.node_visits += 1
        run.recent_nodes.append(self.node_id)
        if run.node_visits > run.max_node_visits:
            raise NodeVisitLimitError(self.node_id, run.max_node_visits, _loop(run.recent_nodes))

    def _check_action(self, action: str | None) -> None:
        """An action with no edge to follow would end the run silently: that is a failure."""
        successors = self.successors
        if not self.routes_by_action or not successors or action in (None, DEFAULT_ACTION):
            return  # no edges out, or the default: the run ends here as written
        if action in successors:
            return
        followed = ", ".join(repr(name) for name in successors)
        raise NodeExecutionError(
            self.node_id,
            f"returned action {action!r}, but no edge from '{self.node_id}' has that action "
            f"(its edges: {followed})",
        )

    def _run_or_reuse(self, shared: Any, span: Any, visit: NodeVisit | None) -> str | None:
        """Run the node, or, resuming, take what the earlier run left (its span says so)."""
        reused = visit.reused_node() if visit is not None else None
        if visit is None or reused is None:
            visit_token = current_visit.set(visit)
            try:
                action = self._run_inner(shared)
            finally:
                current_visit.reset(visit_token)
            if visit is not None:
                visit.node_done(action, shared.get(self.node_id))
            return action
        action, shared[self.node_id] = reused
        visit.node_done(action, reused[1])  # kept again: a resumed run can be resumed too
        if span.is_recording():
            span.set_attribute(conv.ATTR_REUSED, True)
        return action

    def _run_inner(self, shared: Any) -> str | None:
        if self.inner_handles_interrupts or not interrupts.on_handler_thread():
            return self.inner._run(shared)
        interrupts.enter_interruptible()
        try:
            return self.inner._run(shared)
        finally:
            interrupts.leave_interruptible()

    def _run(self, shared: Any) -> str | None:
        self._count_visit()
        run = self.run_context
        observer = run.observer
        execution = NodeExecution(self.node_id, self.node_type, self.reads)
        execution.files = self.files
        caller = current_caller.get()
        if caller is not None:  # a node of a sub-workflow: its record names its caller
            execution.call_path, execution.caller_span_id = caller.path, caller.span_id
        if observer is not None:
            observer.node_started(execution, shared)
        execution_token = current_execution.set(execution)
        execution.start_ns = time.time_ns()
        span, token = self.start_span(start_time=execution.start_ns)
        execution.span_id = span.get_span_context().span_id
        # A sub-workflow's nodes are not checkpointed on their own (their ids need not be unique
        # across files): a resumed run reuses or re-runs the calling step as a whole.
        memory = run.memory if caller is None else None
        visit: NodeVisit | None = None
        error: BaseException | None = None
        try:
            if memory is not None:
                visit = memory.begin(self.node_id, self._read_templates(), shared, self.is_batch)
            action = self._run_or_reuse(shared, span, visit)
            self._check_action(action)
            execution.success = True
            self._forget_routed_failure()
            # A node's own LLM call (a batch's are per item, a loop's per pass); a reused one
            # cost nothing now.
            if not execution.makes_many_calls and (visit is None or visit.reused_node() is None):
                self._record_llm_call(span, execution, shared.get(self.node_id), None)
            return action
        except Exception as exc:
            error = exc
            if not execution.makes_many_calls:
                self._record_llm_call(span, execution, None, exc)
            execution.error = run.sanitizer.text(describe_error(exc))
            handler = self.successors.get(ERROR_ACTION)
            if handler is not None:
                return self._route_failure(shared, handler)
            if isinstance(exc, NodeExecutionError):
                raise
            raise NodeExecutionError(self.node_id, execution.error) from exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: record, never wrap
            error = exc
            execution.error = describe_error(exc)
            raise
        finally:
            execution.end_ns = time.time_ns()
            self.end_span(span, token, error, end_time=execution.end_ns)
            current_execution.reset(execution_token)
            if observer is not None:
                observer.node_finished(execution, shared)

    def _record_llm_call(
        self, span: Any, execution: NodeExecution, outputs: Any, failure: Exception | None
    ) -> None:
        """A node that made an LLM call: its usage into the facts, its attributes on the span."""
        usage = usage_of_failure(failure) if failure is not None else usage_of(outputs)
        if usage is None:
            return
        execution.llm_usage = usage
        run = self.run_context
        record_llm_call(span, usage, outputs, run.sanitizer, run.capture_llm_content)

    def _forget_routed_failure(self) -> None:
        """A node that failed, was routed around and then ran again with success (a graph
        loop back to it): as in pflow, that failure no longer counts, so neither its warning
        nor a declared output reading the node fails or degrades the run."""
        run = self.run_context
        if self.node_id not in run.routed_failures:
            return
        run.routed_failures.discard(self.node_id)
        said = self._routed_warning_start()
        run.recovered[:] = [line for line in run.recovered if not line.startswith(said)]

    def _routed_warning_start(self) -> str:
        return f"node '{self.node_id}' failed; on-error routed to "

    def _route_failure(self, shared: Any, handler: Any) -> str:
        """Hand the failure to the ``error`` successor: drop the namespace, note it, route."""
        shared.pop(self.node_id, None)
        self.run_context.routed_failures.add(self.node_id)
        target = getattr(handler, "node_id", "?")
        self.run_context.recovered.append(f"{self._routed_warning_start()}'{target}'")
        return ERROR_ACTION


def _loop(recent: Any) -> list[str]:
    """The cycle the latest node ids end in, starting at the last node: ``[a, b]`` for
    ``… a b a``."""
    nodes = list(recent)
    if not nodes:
        return []
    last = nodes[-1]
    for position in range(len(nodes) - 2, -1, -1):
        if nodes[position] == last:
            return nodes[position:-1]
    return [last]
