"""What a worker process needs to run a batch's items, and the runner that does it there.

A :class:`BatchJob` is made once per batch on the driver and shipped once per worker: the
node's class (by reference: a worker imports it by name), its params with their templates,
only the store entries those templates read, the retry settings, the run's
:class:`~pflow_trace.observe.sanitize.Sanitizer` and the batch span's W3C trace context.

On the worker an :class:`ItemRunner` rebuilds the node's inner chain (Namespaced →
TemplateAware → node) and runs each item through an
:class:`~pflow_trace.runtime.item_life.ItemLife` of its own, so an item there makes exactly
the spans it makes on a thread: the item span as a child of the batch span (with where it ran,
and the attempts earlier workers lost), the layer spans inside it, retry events, previews and
error messages already redacted by the run's sanitizer. Nothing
unredacted leaves the worker except the item's result, which is the run's data (it goes into
the store, as on a thread). The reply is a plain tuple (:data:`ItemReply`).
"""

from __future__ import annotations

import copy
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import NoOpTracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pflow_trace.engine import BaseNode, RetryPolicy
from pflow_trace.ir.templates import iter_references
from pflow_trace.observe.facts import NodeExecution, WorkerPlace
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.observe.worker_spans import SpanRow, worker_tracing
from pflow_trace.runtime.context import RunContext, current_execution
from pflow_trace.runtime.item_life import BatchWork, ItemLife, LostAttempt
from pflow_trace.runtime.layers import describe_error
from pflow_trace.runtime.namespaced import NamespacedNode
from pflow_trace.runtime.template_aware import TemplateAwareNode

_PROPAGATOR = TraceContextTextMapPropagator()

#: (index, status, attempts, start ns, end ns, error, item span id, result, span rows, place,
#: template resolutions or None, the LLM call's usage or None, the time split (ns in attempts,
#: ns between them) or None, the provider's latency in ns or None). Times are the worker's clock.
ItemReply = tuple[
    int, str, int, int, int, str | None, int, Any, list[SpanRow], WorkerPlace, dict | None,
    dict | None, tuple[int, int] | None, int | None,
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
    retry: RetryPolicy
    sanitizer: Sanitizer
    #: The batch span's ``traceparent`` (and ``tracestate``): item spans become its children.
    carrier: dict[str, str]
    recording: bool


def build_job(work: BatchWork) -> BatchJob:
    """The job for ``work``'s items, taken from its chain; call with the batch span current."""
    template = work.chain.inner
    if not isinstance(work.chain, NamespacedNode) or not isinstance(template, TemplateAwareNode):
        raise TypeError("a batch chain must be Namespaced -> TemplateAware -> node")
    life = work.life
    heads = {
        reference.head
        for compiled in template.templated.values()
        for reference in iter_references(compiled)
    }
    shared = work.shared
    store = {head: shared[head] for head in heads if head != life.alias and head in shared}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return BatchJob(
        job_id=uuid.uuid4().hex,
        node_id=template.node_id,
        node_type=template.node_type,
        node_class=type(template.inner),
        params=dict(template.params),
        store=store,
        alias=life.alias,
        retry=life.retry,
        sanitizer=life.run.sanitizer,
        carrier=carrier,
        recording=life.run.recording and bool(carrier),
    )


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
        chain.prepare()  # once per worker, before its first item's clock
        self.chain = chain
        self.life = ItemLife(run, job.node_id, job.node_type, job.alias, job.retry, place)
        self.parent = _PROPAGATOR.extract(job.carrier)

    def describe(self, exc: BaseException) -> str:
        """One redacted line for a failure outside the item's own attempts (a runtime bug)."""
        return self.job.sanitizer.text(f"the worker failed running the item: {describe_error(exc)}")

    def run(
        self,
        index: int,
        item: Any,
        lane: int,
        lost: tuple[LostAttempt, ...],
        first_start_ns: int,
        want_resolutions: bool,
    ) -> ItemReply:
        """Run one item (the attempts ``lost`` with dead workers left to it) for the driver."""
        execution = NodeExecution(self.job.node_id, self.job.node_type)
        execution_token = current_execution.set(execution if want_resolutions else None)
        context_token = otel_context.attach(self.parent)
        collector = self.collector
        if collector is not None:
            collector.begin()
        try:
            outcome, result, _ = self.life.run_item(
                self.chain, self.job.store, index, item, lane, None, False, lost, first_start_ns
            )
        finally:
            otel_context.detach(context_token)
            current_execution.reset(execution_token)
        assert outcome is not None  # no stop takes an item over on a worker
        rows: list[SpanRow] = collector.take() if collector is not None else []
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
            outcome.split_ns,
            outcome.provider_ns,
        )
