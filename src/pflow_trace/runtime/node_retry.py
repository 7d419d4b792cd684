"""A node's own attempts: pflow's ``retry`` block (``max``, ``wait``, ``backoff``) on a node.

This wrapper sits just inside the Instrumented layer, around the node's namespace, templates
and work, and opens no span of its own: each failed attempt that another follows is an event
(``pflow.node.retry``) on the node's instrumented span, which is the current span here, and the
span's ``pflow.node.attempts`` says how many attempts were made. Whether another attempt follows
and how long to wait first is asked of :class:`~pflow_trace.engine.retry.RetryPolicy`, the same
rule batch items follow; the wait is inside the Instrumented layer's interruptible region, so
Ctrl-C stops it.

As in pflow, only a failure to complete the work is retried (an exception, a timeout, a
refused connection). A completed call whose result is the failure (a non-zero exit, an HTTP
error status: ``NodeFailure.retriable`` is False), a template that does not resolve, and the
runtime's own stops are not: another attempt would meet them again. A node that succeeds on a
later attempt is a clean success. The attempts and each failed one's error go into the node's
:class:`~pflow_trace.observe.facts.NodeExecution` (``attempts``, ``retries``), so the trace
file has them too.

pflow applies ``retry`` per batch item inside a batch; here a batch keeps its own
``max_retries``, and validation refuses ``retry`` beside ``batch`` rather than ignoring it.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

from pflow_trace.engine.retry import RetryPolicy
from pflow_trace.errors import PflowTraceError
from pflow_trace.nodes.base import NodeFailure, current_attempt
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import NodeExecution
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper, describe_error

#: pflow's cap on an exponential wait between a node's attempts.
MAX_BACKOFF_WAIT_S = 60.0
#: What ``backoff`` multiplies the wait by after each failed attempt.
BACKOFF_FACTORS = {"fixed": 1.0, "exponential": 2.0}


def retry_policy(block: dict[str, Any]) -> RetryPolicy:
    """The policy of a validated ``retry`` block; a missing field takes pflow's default."""
    return RetryPolicy(
        max_attempts=int(block.get("max", 1)),
        wait_s=float(block.get("wait", 0.0)),
        backoff=BACKOFF_FACTORS[block.get("backoff", "fixed")],
        max_wait_s=MAX_BACKOFF_WAIT_S,
    )


def is_retriable(exc: Exception) -> bool:
    """Whether another attempt could fix this failure (see the module docstring)."""
    if isinstance(exc, NodeFailure):
        return exc.retriable
    return not isinstance(exc, PflowTraceError)


class NodeRetry(LayerWrapper):
    """Runs the inner chain until it succeeds or its policy allows no further attempt."""

    layer = conv.LAYER_INSTRUMENTED  # no span of its own: it annotates the instrumented one

    def __init__(self, *args: Any, policy: RetryPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def _run(self, shared: Any) -> str | None:
        run = self.run_context
        span = trace.get_current_span()
        execution = current_execution.get()
        attempt = 1
        while True:
            token = current_attempt.set(attempt)
            try:
                action = self.inner._run(shared)
            except Exception as exc:
                pause_s = self.policy.pause_s(attempt) if is_retriable(exc) else None
                if pause_s is None:
                    _note_attempts(span, execution, attempt)
                    raise
                error = run.sanitizer.text(describe_error(exc))
                if execution is not None:
                    execution.retries.append({"attempt": attempt, "error": error})
                if run.recording:
                    span.add_event(
                        conv.EVENT_NODE_RETRY,
                        {conv.ATTR_RETRY_ATTEMPT: attempt, conv.ATTR_RETRY_ERROR: error},
                    )
                if pause_s > 0:
                    time.sleep(pause_s)
                attempt += 1
            else:
                _note_attempts(span, execution, attempt)
                return action
            finally:
                current_attempt.reset(token)


def _note_attempts(span: trace.Span, execution: NodeExecution | None, attempts: int) -> None:
    if execution is not None:
        execution.attempts = attempts
    if span.is_recording():
        span.set_attribute(conv.ATTR_NODE_ATTEMPTS, attempts)
