"""What every wrapper layer has in common: it wraps one inner node and is one span.

A layer forwards ``set_params`` down the chain, opens its span as the current span (so anything
started inside, on this thread or a worker that copies the context, is its child), marks the
span ERROR when the inner chain raises, and shares the run's tracer, observer and sanitizer
with its deep copies instead of copying them.

Two layers need not make their span current: between the Namespaced and the TemplateAware
spans and the node's span only the runtime's own code runs (a fresh namespace, template
resolution), never a node's. Those hand their span to the layer below as its parent
(:attr:`LayerWrapper.parent_context`) instead of attaching and detaching a context per item;
the node's span is current as always, so whatever a node starts is its child.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from pflow_trace.engine import BaseNode
from pflow_trace.errors import PflowTraceError
from pflow_trace.nodes.base import NodeFailure
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.context import RunContext

_ERROR = StatusCode.ERROR


def describe_error(exc: BaseException) -> str:
    """The one-line message a person reads for a failure, without the exception's plumbing."""
    if isinstance(exc, NodeFailure):
        return exc.message
    if isinstance(exc, PflowTraceError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def innermost(chain: BaseNode) -> BaseNode:
    """The node type's own instance at the bottom of a wrapper chain."""
    while isinstance(chain, LayerWrapper):
        chain = chain.inner
    return chain


class LayerWrapper(BaseNode):
    """Base for the runtime's wrappers; subclasses set ``layer`` and implement ``_run``."""

    layer: ClassVar[str] = ""
    #: The context holding this layer's parent span, when the layer above handed it down
    #: instead of making its own span current; None: the current context's span is the parent.
    #: Each lane runs its own copy of the chain, so this is never shared between items.
    parent_context: Context | None = None

    def __init__(self, inner: BaseNode, node_id: str, node_type: str, run: RunContext) -> None:
        super().__init__()
        self.inner = inner
        self.node_id = node_id
        self.node_type = node_type
        self.run_context = run
        self.span_name = conv.span_name(self.layer, node_id)
        self.span_attributes: dict[str, Any] = {
            conv.ATTR_LAYER: self.layer,
            conv.ATTR_NODE_ID: node_id,
            conv.ATTR_NODE_TYPE: node_type,
        }

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        self.inner.set_params(params)

    def prepare(self) -> None:
        self.inner.prepare()

    def __deepcopy__(self, memo: dict[int, Any]) -> LayerWrapper:
        """Copy the chain for a worker thread, but share the run's collaborators."""
        memo.setdefault(id(self.run_context), self.run_context)
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone.inner = copy.deepcopy(self.inner, memo)
        clone.params = copy.deepcopy(self.params, memo)
        clone.successors = {}
        clone.parent_context = None  # the original's last item's, not the clone's
        return clone

    def start_span(
        self,
        attributes: dict[str, Any] | None = None,
        start_time: int | None = None,
        name: str | None = None,
        parent: Context | None = None,
        current: bool = True,
    ) -> tuple[Span, object | None]:
        """Start this layer's span, under ``parent`` (None: the current span), as the current
        one unless ``current`` is false; returns it with the token to detach (None if not)."""
        span = self.run_context.tracer.start_span(
            name or self.span_name,
            context=parent,
            attributes=attributes if attributes is not None else self.span_attributes,
            start_time=start_time,
            record_exception=False,
            set_status_on_exception=False,
        )
        if not current:
            return span, None
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end_span(
        self,
        span: Span,
        token: object | None,
        error: BaseException | None = None,
        end_time: int | None = None,
        record_exception: bool = False,
    ) -> None:
        if error is not None and span.is_recording():
            message = self.run_context.sanitizer.text(describe_error(error))
            span.set_status(Status(_ERROR, message))
            if record_exception:
                span.add_event(
                    "exception",
                    {
                        "exception.type": type(error).__name__,
                        "exception.message": message,
                    },
                )
        if token is not None:
            otel_context.detach(token)
        span.end(end_time=end_time)

    def run_inner_in_span(self, shared: Any, record_exception: bool = False) -> str | None:
        """The common case: this layer's span around the inner chain, handed to the inner
        layer as its parent rather than made current (see the module docstring)."""
        span = self._start_parent_span()
        try:
            action = self.inner._run(shared)
        except BaseException as exc:
            self.end_span(span, None, exc, record_exception=record_exception)
            raise
        self.end_span(span, None)
        return action

    def _start_parent_span(self) -> Span:
        """This layer's span, not made current: the inner layer gets it as its parent."""
        span, _ = self.start_span(parent=self.parent_context, current=False)
        self.inner.parent_context = trace.set_span_in_context(span)  # type: ignore[attr-defined]
        return span

    async def _run_async(self, shared: Any) -> str | None:
        """:meth:`_run` as a task on async lanes; a layer that does more than open its span
        around the inner chain overrides both."""
        return await self.run_inner_in_span_async(shared)

    async def run_inner_in_span_async(
        self, shared: Any, record_exception: bool = False
    ) -> str | None:
        """:meth:`run_inner_in_span` awaiting the inner chain's async path (each task has its
        own copy of the chain, so the span handed down is this item's alone)."""
        span = self._start_parent_span()
        try:
            action = await self.inner._run_async(shared)
        except BaseException as exc:
            self.end_span(span, None, exc, record_exception=record_exception)
            raise
        self.end_span(span, None)
        return action
