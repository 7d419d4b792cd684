"""The TemplateAware layer: resolves ``${...}`` params, then runs the node in its own span.

Params are parsed once in ``set_params``; a node whose params hold no template skips
resolution entirely. This layer's span is not made current (only the runtime's own code runs
in it before the node's span starts); it is the node span's parent, handed over directly.
A node's ``inputs`` param is its own scope, on every node type as in
pflow-cli 0.16: ``inputs`` resolves first against the store, then the other params resolve
against its keys laid over the store (``${who}`` reads ``inputs.who``; a key shadows a store
name). A loop's ``carry`` reaches a ``shell`` or ``llm`` body this way, since it replaces
``inputs`` from the second pass on. The resolved params are handed to the inner node right
before it runs; parallel batches give every worker thread its own copy of the chain, so this
never races.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from pflow_trace.ir.templates import compile_value, has_templates, resolve_param, scope_value
from pflow_trace.nodes.base import CallTracing, current_call_tracing
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper

#: What :meth:`TemplateAwareNode._open` hands :meth:`~TemplateAwareNode._close`: this layer's
#: span, the node's span and its context token, and the call-tracing token.
_Opened = tuple[Span, Span, object, Token[Any]]

#: The param every node type may have: named values its other params read as ``${key}``.
INPUTS_PARAM = "inputs"


class TemplateAwareNode(LayerWrapper):
    layer = conv.LAYER_TEMPLATE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templated: dict[str, Any] = {}
        self.node_span_name = conv.span_name(conv.LAYER_NODE, self.node_id)
        self.node_span_attributes = {**self.span_attributes, conv.ATTR_LAYER: conv.LAYER_NODE}
        self.call_tracing = CallTracing(self.run_context.tracer, self.run_context.sanitizer)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        compiled = {key: compile_value(value) for key, value in params.items()}
        # A param changed by compiling holds a template or an escaped ``$${`` that must become
        # a literal ``${``; either way the node must get the resolved value, not the source.
        self.templated = {
            key: value
            for key, value in compiled.items()
            if has_templates(value) or value != params[key]
        }
        self.inner.set_params(params)

    def resolve(self, store: Any) -> dict[str, Any]:
        resolved = dict(self.params)
        if INPUTS_PARAM in self.templated:
            compiled_inputs = self.templated[INPUTS_PARAM]
            resolved[INPUTS_PARAM] = resolve_param(
                self.node_id, INPUTS_PARAM, compiled_inputs, store
            )
        scope = self.scope(resolved.get(INPUTS_PARAM), store)
        for param, compiled in self.templated.items():
            if param != INPUTS_PARAM:
                resolved[param] = resolve_param(self.node_id, param, compiled, scope)
        execution = current_execution.get()
        if execution is not None and not execution.template_resolutions:
            execution.template_resolutions = {
                param: {"template": self.params[param], "resolved": resolved[param]}
                for param in self.templated
            }
        return resolved

    def scope(self, inputs: Any, store: Any) -> Mapping[str, Any]:
        """What the params other than ``inputs`` read: the node's inputs over the store.

        A whole-value input holding JSON text reads as the parsed object or array there, as in
        pflow; the ``inputs`` param the node itself gets keeps the value as it resolved (the
        code node checks it against its annotations)."""
        if not isinstance(inputs, dict) or not inputs:
            return store
        compiled = self.templated.get(INPUTS_PARAM)
        names = compiled if isinstance(compiled, dict) else {}
        view = {key: scope_value(names.get(key), value) for key, value in inputs.items()}
        return ChainMap(view, store)

    def _run(self, shared: Any) -> str | None:
        opened = self._open(shared)
        try:
            action = self.inner._run(shared)
        except BaseException as exc:
            self._close(opened, exc)
            raise
        self._close(opened, None)
        return action

    async def _run_async(self, shared: Any) -> str | None:
        """:meth:`_run` for an item on async lanes: the same spans, resolution and failures,
        awaiting the node's async path. Each lane has its own copy of the chain, so the
        resolved params set here stay this item's while it awaits."""
        opened = self._open(shared)
        try:
            action = await self.inner._run_async(shared)
        except BaseException as exc:
            self._close(opened, exc)
            raise
        self._close(opened, None)
        return action

    def _open(self, shared: Any) -> _Opened:
        """This layer's span, the params resolved in it (a failure there is this span's), then
        the node's span, made current, and the node's call tracing set."""
        span, _ = self.start_span(parent=self.parent_context, current=False)
        try:
            if self.templated:
                self.inner.set_params(self.resolve(shared))
        except BaseException as exc:  # resolution failed: this span is the failing one
            self.end_span(span, None, exc, record_exception=True)
            raise
        node_span, node_token = self.start_span(
            self.node_span_attributes,
            name=self.node_span_name,
            parent=trace.set_span_in_context(span),
        )
        return span, node_span, node_token, current_call_tracing.set(self.call_tracing)

    def _close(self, opened: _Opened, error: BaseException | None) -> None:
        """The node ran: its span ends (with the exception event when it failed), then this
        layer's (ERROR too, without a second event)."""
        span, node_span, node_token, tracing = opened
        current_call_tracing.reset(tracing)
        self.end_span(node_span, node_token, error, record_exception=error is not None)
        self.end_span(span, None, error)
