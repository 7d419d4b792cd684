"""What a worker process needs to run a batch's items, and the runner that does it there.

A :class:`BatchJob` is made once per batch on the driver and shipped once per worker: the
node's class (by reference: a worker imports it by name), its params with their templates,
only the store entries those templates read, the retry settings, the run's
:class:`~pflow_trace.observe.sanitize.Sanitizer` and the batch span's W3C trace context.

On the worker an :class:`ItemRunner` rebuilds the node's inner chain (Namespaced →
TemplateAware → node) and runs each item through the batch layer's own
:meth:`~pflow_trace.runtime.batch.BatchNode.run_item`, so an item there makes exactly the spans
it makes on a thread: the item span as a child of the batch span, the layer spans inside it,
retry events, previews and error messages already redacted by the run's sanitizer. Nothing
unredacted leaves the worker except the item's result, which is the run's data (it goes into
the store, as on a thread). The reply is a plain tuple (:data:`ItemReply`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import NoOpTracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pflow_trace.engine import BaseNode
from pflow_trace.ir.templates import iter_references
from pflow_trace.nodes.base import current_attempt
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import NodeExecution, WorkerPlace
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.observe.worker_spans import SpanRow, worker_tracing
from pflow_trace.runtime.batch import BatchConfig, BatchNode
from pflow_trace.runtime.context import RunContext, current_execution
from pflow_trace.runtime.namespaced import NamespacedNode
from pflow_trace.runtime.template_aware import TemplateAwareNode

_PROPAGATOR = TraceContextTextMapPropagator()

#: (index, status, attempts, start ns, end ns, error, item span id, result, span rows, place,
#: template resolutions or None, the LLM call's usage or None). Times are the worker's clock.
ItemReply = tuple[
    int, str, int, int, int, str | None, int, Any, list[SpanRow], WorkerPlace, dict | None,
    dict | None,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One batch node's work order for a worker; identical for every item of the batch."""

    job_id: str
    node_id: str
    node_type: str
    node_class: type
    params: dict[str, Any]
    #: Only the store entries the params' templates read (the alias is set per item).
    store: dict[str, Any]
    alias: str
    max_retries: int
    retry_wait: float
    sanitizer: Sanitizer
    #: The batch span's ``traceparent`` (and ``tracestate``): item spans become its children.
    carrier: dict[str, str]
    recording: bool


def build_job(batch: BatchNode, shared: Any) -> BatchJob:
    """The job for ``batch``'s items, taken from its compiled chain; call with its span current."""
    template = batch.inner.inner
    if not isinstance(batch.inner, NamespacedNode) or not isinstance(template, TemplateAwareNode):
        raise TypeError("a batch chain must be Namespaced -> TemplateAware -> node")
    config = batch.config
    heads = {
        reference.head
        for compiled in template.templated.values()
        for reference in iter_references(compiled)
    }
    store = {head: shared[head] for head in heads if head != config.alias and head in shared}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return BatchJob(
        job_id=uuid.uuid4().hex,
        node_id=batch.node_id,
        node_type=batch.node_type,
        node_class=type(template.inner),
        params=dict(template.params),
        store=store,
        alias=config.alias,
        max_retries=config.max_retries,
        retry_wait=config.retry_wait,
        sanitizer=batch.run_context.sanitizer,
        carrier=carrier,
        recording=batch.run_context.recording and bool(carrier),
    )


class _AttemptOffset(BaseNode):
    """Numbers attempts after those a dead worker used, so ``current_attempt`` stays true."""

    def __init__(self, inner: BaseNode, offset: int) -> None:
        super().__init__()
        self.inner = inner
        self.offset = offset

    def _run(self, shared: Any) -> str | None:
        token = current_attempt.set(current_attempt.get() + self.offset)
        try:
            return self.inner._run(shared)
        finally:
            current_attempt.reset(token)


def this_place(address: str | None = None) -> WorkerPlace:
    return WorkerPlace(socket.gethostname(), os.getpid(), address)


class ItemRunner:
    """Runs items of one job on one worker thread (a chain is not shared between threads)."""

    def __init__(self, job: BatchJob, place: WorkerPlace) -> None:
        self.job = job
        self.place = place
        if job.recording:
            tracer, self.collector = worker_tracing()
        else:
            tracer, self.collector = NoOpTracer(), None
        run = RunContext(tracer=tracer, sanitizer=job.sanitizer)
        node = job.node_class(job.node_id)
        chain: BaseNode = TemplateAwareNode(node, job.node_id, job.node_type, run)
        chain = NamespacedNode(chain, job.node_id, job.node_type, run)
        chain.set_params(copy.deepcopy(job.params))
        self.chain = chain
        config = BatchConfig(
            items=[], alias=job.alias, max_retries=job.max_retries, retry_wait=job.retry_wait
        )
        self.batch = BatchNode(chain, job.node_id, job.node_type, run, config)
        self.parent = _PROPAGATOR.extract(job.carrier)
        self.place_attributes: dict[str, Any] = {
            conv.ATTR_BATCH_HOST: place.host,
            conv.ATTR_BATCH_PID: place.pid,
        }
        if place.address is not None:
            self.place_attributes[conv.ATTR_BATCH_WORKER_ADDRESS] = place.address

    def _with_offset(self, attempt_offset: int) -> tuple[BatchNode, BaseNode]:
        """The batch layer and chain for an item whose first ``attempt_offset`` attempts died."""
        if not attempt_offset:
            return self.batch, self.chain
        batch = copy.copy(self.batch)
        batch.config = dataclasses.replace(
            self.batch.config, max_retries=self.job.max_retries - attempt_offset
        )
        return batch, _AttemptOffset(self.chain, attempt_offset)

    def run(
        self, index: int, item: Any, lane: int, attempt_offset: int, want_resolutions: bool
    ) -> ItemReply:
        """Run one item (all its remaining attempts) and describe it for the driver."""
        batch, chain = self._with_offset(attempt_offset)
        execution = NodeExecution(self.job.node_id, self.job.node_type)
        execution_token = current_execution.set(execution if want_resolutions else None)
        context_token = otel_context.attach(self.parent)
        collector = self.collector
        if collector is not None:
            collector.begin()
        try:
            outcome, result, _ = batch.run_item(chain, self.job.store, index, item, lane, [])
        finally:
            otel_context.detach(context_token)
            current_execution.reset(execution_token)
        rows: list[SpanRow] = collector.take() if collector is not None else []
        if rows and rows[-1][1] == outcome.span_id:  # the item span ends last
            rows[-1][7].update(self.place_attributes)
        resolutions = None
        if want_resolutions and execution.template_resolutions:
            value = self.job.sanitizer.value
            resolutions = {
                param: {"template": value(entry["template"]), "resolved": value(entry["resolved"])}
                for param, entry in execution.template_resolutions.items()
            }
        return (
            index,
            outcome.status,
            outcome.attempts,
            outcome.start_ns,
            outcome.end_ns,
            outcome.error,
            outcome.span_id,
            result,
            rows,
            self.place,
            resolutions,
            outcome.llm_usage,
        )
