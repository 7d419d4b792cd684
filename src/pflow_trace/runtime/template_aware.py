"""The TemplateAware layer: resolves ``${...}`` params, then runs the node in its own span.

Params are parsed once in ``set_params``; a node whose params hold no template skips
resolution entirely. The resolved params are handed to the inner node right before it runs;
parallel batches give every worker thread its own copy of the chain, so this never races.
"""

from __future__ import annotations

from typing import Any

from pflow_trace.ir.templates import compile_value, has_templates, resolve_param
from pflow_trace.nodes.base import CallTracing, current_call_tracing
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper


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
        for param, compiled in self.templated.items():
            resolved[param] = resolve_param(self.node_id, param, compiled, store)
        execution = current_execution.get()
        if execution is not None and not execution.template_resolutions:
            execution.template_resolutions = {
                param: {"template": self.params[param], "resolved": resolved[param]}
                for param in self.templated
            }
        return resolved

    def _run(self, shared: Any) -> str | None:
        span, token = self.start_span()
        try:
            if self.templated:
                self.inner.set_params(self.resolve(shared))
        except BaseException as exc:  # resolution failed: this span is the failing one
            self.end_span(span, token, exc, record_exception=True)
            raise
        try:
            node_span, node_token = self.start_span(
                self.node_span_attributes, name=self.node_span_name
            )
            tracing = current_call_tracing.set(self.call_tracing)
            try:
                action = self.inner._run(shared)
            except BaseException as exc:
                self.end_span(node_span, node_token, exc, record_exception=True)
                raise
            finally:
                current_call_tracing.reset(tracing)
            self.end_span(node_span, node_token)
        except BaseException as exc:
            self.end_span(span, token, exc)
            raise
        self.end_span(span, token)
        return action

    async def _run_async(self, shared: Any) -> str | None:
        """:meth:`_run` for an item on async lanes: the same spans, resolution and failures,
        awaiting the node's async path. Each lane has its own copy of the chain, so the
        resolved params set here stay this item's while it awaits."""
        span, token = self.start_span()
        try:
            if self.templated:
                self.inner.set_params(self.resolve(shared))
        except BaseException as exc:
            self.end_span(span, token, exc, record_exception=True)
            raise
        try:
            node_span, node_token = self.start_span(
                self.node_span_attributes, name=self.node_span_name
            )
            tracing = current_call_tracing.set(self.call_tracing)
            try:
                action = await self.inner._run_async(shared)
            except BaseException as exc:
                self.end_span(node_span, node_token, exc, record_exception=True)
                raise
            finally:
                current_call_tracing.reset(tracing)
            self.end_span(node_span, node_token)
        except BaseException as exc:
            self.end_span(span, token, exc)
            raise
        self.end_span(span, token)
        return action
