"""A node's ``loop`` block: pflow's condition-terminated repetition of one node.

The loop is a do-while. The node runs; then its ``while:`` (go on while truthy) or ``until:``
(go on until truthy) condition, a single ``${...}`` reference, is read from the store, where the
node's namespace now holds this pass's fresh output. A reference that does not resolve is falsy;
one that resolves to a string fails the node (a non-empty ``"false"`` would never stop the
loop). From the second pass on, ``carry:`` replaces the named keys of the node's ``inputs``
param with values read from the previous pass's output; ``${__iteration__}`` (1-based) is in the
store while the loop runs and removed when it ends. ``max_iterations`` (an integer or a template
read once, after the first pass) caps the passes; reaching it is not a failure. Without one,
the cap is pflow's per-node visit guard, ``PFLOW_MAX_NODE_VISITS`` (100). When the loop ends,
the node's output gets ``loop_stopped``: ``"condition"`` or ``"max_iterations"``.

The layer sits inside the Instrumented one, around the node's namespace, templates and work
(and its ``retry``, which then applies to each pass). Each pass is a ``loop.iteration`` span
under the node's instrumented span, and a :class:`~pflow_trace.observe.facts.LoopIteration`
on the node's execution record, so the trace file lists every pass with its timing and outcome.
A pass that makes an LLM call carries it as a batch item does: the ``gen_ai`` attributes on the
pass's span, its ``llm_usage`` on the pass, and the node's usage is the sum over its passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from pflow_trace.errors import TemplateError
from pflow_trace.ir.loop_checks import MAX_VISITS_ENV, max_node_visits
from pflow_trace.ir.templates import UnresolvedTemplate, compile_value, resolve
from pflow_trace.nodes.base import NodeFailure
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import LoopIteration, NodeExecution
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.layers import LayerWrapper, describe_error
from pflow_trace.runtime.llm_spans import record_llm_call, usage_of, usage_of_failure

#: The store key holding the running pass number (1-based) while a loop runs.
ITERATION_KEY = "__iteration__"


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """A validated ``loop`` block, its templates compiled."""

    keyword: str  # "while" or "until"
    condition_source: str
    condition: Any
    carry: dict[str, Any]
    #: An int, a compiled template read after the first pass, or None for the visit guard.
    max_iterations: Any

    @classmethod
    def from_ir(cls, block: dict[str, Any]) -> LoopConfig:
        keyword = "until" if "until" in block else "while"
        cap = block.get("max_iterations")
        return cls(
            keyword=keyword,
            condition_source=block[keyword],
            condition=compile_value(block[keyword]),
            carry={key: compile_value(value) for key, value in (block.get("carry") or {}).items()},
            max_iterations=cap if isinstance(cap, int) or cap is None else compile_value(cap),
        )


def as_literal(value: Any) -> Any:
    """``value`` with every ``${`` escaped, so a carried string is never read as a template."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {key: as_literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_literal(item) for item in value]
    return value


class LoopNode(LayerWrapper):
    """Runs the inner chain once per pass until the condition or the cap ends the loop."""

    layer = conv.LAYER_LOOP_ITERATION

    def __init__(self, *args: Any, config: LoopConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = config

    def _run(self, shared: Any) -> str | None:
        execution = current_execution.get()
        passes: list[LoopIteration] = []
        if execution is not None:
            execution.loop_iterations = passes
            execution.loop_keyword = self.config.keyword
        cap: int | None = None
        number = 0
        stopped = "failed"
        try:
            while True:
                number += 1
                action = self._run_pass(shared, number, passes)
                if not self._goes_on(shared):
                    stopped = "condition"
                    break
                cap = self._cap(shared) if cap is None else cap
                if number >= cap:
                    stopped = "max_iterations"
                    break
        finally:
            shared.pop(ITERATION_KEY, None)
            self._note_end(execution, number, stopped)
        output = shared.get(self.node_id)
        if isinstance(output, dict):
            output["loop_stopped"] = stopped
        return action

    def _run_pass(self, shared: Any, number: int, passes: list[LoopIteration]) -> str | None:
        """One pass in its own span; carried inputs are read before the namespace is reset."""
        if number > 1 and self.config.carry:
            self.inner.set_params(self._carried_params(shared))
        elif number == 1:
            self.inner.set_params(self.params)
        shared[ITERATION_KEY] = number
        attributes = {**self.span_attributes, conv.ATTR_LOOP_ITERATION: number}
        start_ns = time.time_ns()
        span, token = self.start_span(attributes, start_time=start_ns)
        span_id = span.get_span_context().span_id
        try:
            action = self.inner._run(shared)
        except BaseException as exc:
            end_ns = time.time_ns()
            error = self.run_context.sanitizer.text(describe_error(exc))
            usage = self._record_call(span, None, exc)
            passes.append(LoopIteration(number, start_ns, end_ns, "failed", error, span_id, usage))
            self.end_span(span, token, exc, end_time=end_ns)
            raise
        end_ns = time.time_ns()
        usage = self._record_call(span, shared.get(self.node_id), None)
        passes.append(LoopIteration(number, start_ns, end_ns, "success", None, span_id, usage))
        self.end_span(span, token, end_time=end_ns)
        return action

    def _record_call(
        self, span: Any, outputs: Any, failure: BaseException | None
    ) -> dict[str, Any] | None:
        """A pass that made an LLM call: its attributes on the pass's span, its usage kept."""
        usage = usage_of_failure(failure) if failure is not None else usage_of(outputs)
        if usage is not None:
            run = self.run_context
            record_llm_call(span, usage, outputs, run.sanitizer, run.capture_llm_content)
        return usage

    def _carried_params(self, shared: Any) -> dict[str, Any]:
        carried = {
            key: as_literal(self._read(compiled, shared, f"loop.carry.{key}"))
            for key, compiled in self.config.carry.items()
        }
        inputs = self.params.get("inputs")
        base = dict(inputs) if isinstance(inputs, dict) else {}
        return {**self.params, "inputs": {**base, **carried}}

    def _read(self, compiled: Any, shared: Any, field: str) -> Any:
        try:
            return resolve(compiled, shared)
        except UnresolvedTemplate as miss:
            raise TemplateError(f"node '{self.node_id}' {field}: {miss.describe()}") from None

    def _goes_on(self, shared: Any) -> bool:
        """Whether another pass follows, by the condition alone (the cap is checked after)."""
        try:
            value = resolve(self.config.condition, shared)
        except UnresolvedTemplate:
            value = None
        if isinstance(value, str):
            preview = value if len(value) <= 60 else value[:57] + "..."
            raise NodeFailure(
                f"loop {self.config.keyword}: {self.config.condition_source} resolved to a "
                f"string ({preview!r}); reference a boolean, a number or a list",
                retriable=False,
            )
        return not value if self.config.keyword == "until" else bool(value)

    def _cap(self, shared: Any) -> int:
        """The pass cap, read once: the literal, the template's value, or the visit guard."""
        limit = max_node_visits()
        raw = self.config.max_iterations
        if raw is None:
            return limit
        if isinstance(raw, int):
            return raw
        value = self._read(raw, shared, "loop.max_iterations")
        try:
            cap = int(value.strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            cap = 0
        if isinstance(value, (dict, list)) or cap < 1 or cap > limit:
            raise NodeFailure(
                f"loop max_iterations resolved to {value!r}; it must be an integer "
                f"from 1 to {limit} ({MAX_VISITS_ENV})",
                retriable=False,
            )
        return cap

    def _note_end(self, execution: NodeExecution | None, passes: int, stopped: str) -> None:
        if execution is not None:
            execution.loop_stopped = stopped
        span = trace.get_current_span()
        if self.run_context.recording and span.is_recording():
            span.set_attribute(conv.ATTR_LOOP_ITERATIONS, passes)
            span.set_attribute(conv.ATTR_LOOP_STOPPED, stopped)
