"""What the wrapper layers share during a run: tracer, observer, sanitizer and executors.

With no observer and the OpenTelemetry API's no-op tracer (the defaults), the wrappers do only
the work the run itself needs; turning tracing on swaps these objects, not the code path.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from opentelemetry import trace

from pflow_trace.nodes.base import current_attempt
from pflow_trace.observe.facts import NodeExecution, RunObserver
from pflow_trace.observe.redaction import NO_REDACTION
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.runtime.executors import ExecutorSet

#: The execution of the node whose chain is running on this thread (set by Instrumented).
__all__ = ["RunContext", "current_attempt", "current_execution"]

current_execution: contextvars.ContextVar[NodeExecution | None] = contextvars.ContextVar(
    "pflow_trace_current_execution", default=None
)


@dataclass(slots=True)
class RunContext:
    """Tracing collaborators handed to every wrapper at compile time."""

    tracer: trace.Tracer = field(default_factory=lambda: trace.NoOpTracer())
    observer: RunObserver | None = None
    sanitizer: Sanitizer = field(default_factory=lambda: Sanitizer(NO_REDACTION))
    #: Where batch items run (threads unless a node or the run names another executor).
    executors: ExecutorSet = field(default_factory=ExecutorSet)

    @property
    def recording(self) -> bool:
        """Whether spans are real (an SDK tracer); the batch layer skips previews otherwise."""
        return not isinstance(self.tracer, trace.NoOpTracer)
