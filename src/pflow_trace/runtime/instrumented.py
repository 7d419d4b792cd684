"""The Instrumented layer: the outermost wrapper, where one node execution becomes facts.

It times the node, opens the node's top span, publishes the :class:`NodeExecution` record to
the observer before and after, and turns any failure into a :class:`NodeExecutionError` that
names the node. Everything the trace file and the terminal know about a node comes from here.

A node with an ``error`` successor (pflow's ``on-error``) does not fail the run: its failure is
recorded the same way, its namespace is dropped (a failed node's outputs are not readable, as
in pflow, so ``??`` falls through), and the node returns the ``error`` action instead.
"""

from __future__ import annotations

import time
from typing import Any

from pflow_trace.errors import NodeExecutionError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import NodeExecution
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper, describe_error

#: The action a failed node returns when an edge routes its failure (pflow's ``on-error``).
ERROR_ACTION = "error"


class InstrumentedNode(LayerWrapper):
    layer = conv.LAYER_INSTRUMENTED

    def __init__(self, *args: Any, reads: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = reads

    def _run(self, shared: Any) -> str | None:
        run = self.run_context
        observer = run.observer
        execution = NodeExecution(self.node_id, self.node_type, self.reads)
        if observer is not None:
            observer.node_started(execution, shared)
        execution_token = current_execution.set(execution)
        execution.start_ns = time.time_ns()
        span, token = self.start_span(start_time=execution.start_ns)
        execution.span_id = span.get_span_context().span_id
        error: BaseException | None = None
        try:
            action = self.inner._run(shared)
            execution.success = True
            return action
        except Exception as exc:
            error = exc
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

    def _route_failure(self, shared: Any, handler: Any) -> str:
        """Hand the failure to the ``error`` successor: drop the namespace, note it, route."""
        shared.pop(self.node_id, None)
        target = getattr(handler, "node_id", "?")
        self.run_context.recovered.append(
            f"node '{self.node_id}' failed; on-error routed to '{target}'"
        )
        return ERROR_ACTION
