"""The Instrumented layer: the outermost wrapper, where one node execution becomes facts.

It times the node, opens the node's top span, publishes the :class:`NodeExecution` record to
the observer before and after, and turns any failure into a :class:`NodeExecutionError` that
names the node. Everything the trace file and the terminal know about a node comes from here.
"""

from __future__ import annotations

import time
from typing import Any

from pflow_trace.errors import NodeExecutionError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import NodeExecution
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper, describe_error
from pflow_trace.runtime.llm_spans import record_llm_call, usage_of, usage_of_failure


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
            if execution.batch_items is None:  # a node's own LLM call (a batch's are per item)
                self._record_llm_call(span, execution, shared.get(self.node_id), None)
            return action
        except Exception as exc:
            error = exc
            if execution.batch_items is None:
                self._record_llm_call(span, execution, None, exc)
            execution.error = run.sanitizer.text(describe_error(exc))
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
