"""What the wrapper layers share during a run: tracer, observer, sanitizer and executors.

With no observer and the OpenTelemetry API's no-op tracer (the defaults), the wrappers do only
the work the run itself needs; turning tracing on swaps these objects, not the code path.
"""

from __future__ import annotations

import contextvars
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace

from pflow_trace.nodes.base import current_attempt
from pflow_trace.observe.facts import NodeExecution, RunObserver
from pflow_trace.observe.redaction import Redactor
from pflow_trace.observe.sanitize import Sanitizer

#: A run stops with an error after this many node executions: an edge loop that never ends
#: would otherwise run (and grow the trace) until memory runs out.
DEFAULT_MAX_NODE_VISITS = 10_000
#: How many of the latest node ids a run keeps, to name the loop when it hits the limit.
RECENT_NODES_KEPT = 64

__all__ = [
    "DEFAULT_MAX_NODE_VISITS",
    "RunContext",
    "current_attempt",
    "current_execution",
]

#: The execution of the node whose chain is running on this thread (set by Instrumented).
current_execution: contextvars.ContextVar[NodeExecution | None] = contextvars.ContextVar(
    "pflow_trace_current_execution", default=None
)


class Memory(Protocol):
    """A run's checkpoint and what it reuses (:class:`~pflow_trace.runtime.resume.RunMemory`)."""

    def begin(self, node_id: str, templates: Any, shared: Any, batch: bool) -> Any: ...


class Executors(Protocol):
    """The run's executors by name (:mod:`pflow_trace.runtime.executors.executor_set`)."""

    default: str

    def get(self, name: str) -> Any: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class RunContext:
    """Tracing collaborators handed to every wrapper at compile time."""

    tracer: trace.Tracer = field(default_factory=lambda: trace.NoOpTracer())
    observer: RunObserver | None = None
    sanitizer: Sanitizer = field(default_factory=lambda: Sanitizer(Redactor()))
    #: Node executions one run may make; the Instrumented layer enforces it.
    max_node_visits: int = DEFAULT_MAX_NODE_VISITS
    #: How many node executions this run has made so far, and the latest ones, in order.
    node_visits: int = 0
    recent_nodes: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_NODES_KEPT))
    #: Failures the run routed around (an ``error`` edge), one line each, for its warnings.
    recovered: list[str] = field(default_factory=list)
    #: The ids of those nodes: a declared output reading one fails the run, as in pflow.
    routed_failures: set[str] = field(default_factory=set)
    #: Record LLM prompts and completions on spans (opt-in; see ``docs/llm.md``).
    capture_llm_content: bool = False
    #: Where batch items run; ``run_workflow`` fills it in when None (a context made by hand),
    #: and a batch layer run outside a workflow uses the run's own threads.
    executors: Executors | None = None
    #: The run's checkpoint and what it reuses from an earlier run (``runtime/resume.py``);
    #: None: nothing is checkpointed or reused.
    memory: Memory | None = None
    #: Links for the root span: the root of the run this one resumes.
    root_links: tuple[Any, ...] = ()
    #: ``--pilot K``: each batch runs K random items first and asks before the rest
    #: (:class:`~pflow_trace.runtime.pilot.PilotPlan`); None: batches run straight through.
    pilot: Any = None

    @property
    def recording(self) -> bool:
        """Whether spans are real (an SDK tracer); the batch layer skips previews otherwise."""
        return not isinstance(self.tracer, trace.NoOpTracer)
