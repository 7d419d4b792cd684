"""The shape of an export: every span in the run's trace (``inline``), or a large batch's items
spread over linked chunk traces (``linked``), so every trace a backend holds stays openable.

Jaeger's UI slows past about 2,000 spans in one trace and fails near 40,000; a 100,000-item
batch makes about 500,000. In the linked shape the run's trace keeps the workflow, node and
batch spans, every failed, interrupted and retried item (up to :data:`KEPT_ITEMS` per batch),
and the :data:`SLOWEST_KEPT` slowest other items. Every other item, with its layer spans, goes
to a chunk trace of at most :data:`CHUNK_ITEMS` items, rooted at a ``batch.chunk`` span that
links back to the batch span. The batch span, exported after its items end, carries a link to
every chunk root and the batch's exact aggregates (counts by status, item duration percentiles,
retries, tokens, cost), so any item is at most one hop from the run's trace. Links are added
to the exported copy of the batch span, which this module writes when the span has ended:
no span has to take a link after it started.

Ids are stable: moved spans keep their span ids (only the trace id and, for an item, its
parent change), and a chunk's trace and root span ids are hashes of the batch span and the
chunk's number. So an item is exported to its chunk's trace as soon as it ends; only the chunk's
root waits until the chunk is full (or the batch ends), to carry the chunk's times and size.
The trace file is not shaped: its span table keeps every span as made.

:class:`ShapingExporter` sits in front of the exporter and sees spans as they end, children
before their parent. Spans below a node (item, namespaced, template, node layers) wait for
their parent. In ``auto`` a batch's first :data:`AUTO_THRESHOLD` items go to the run's trace
as they end (nothing waits for the batch to end); from the next one on the batch is linked.
So the run's trace of an ``auto`` batch holds at most 2,000 + 300 + 100 items, about 9,600
spans, and every item among the first 2,000 or the 100 slowest after them: the slowest 100
overall among them. The aggregates count every item.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import DEFAULT_TRACE_SHAPE
from pflow_trace.observe.lean_export import as_readable
from pflow_trace.observe.lean_tracer import LeanSpan, moved_copy

#: ``auto`` links a batch past this many items: about 8,000 spans, which Jaeger returns in
#: about a second (benchmarks/README.md has the measurements).
AUTO_THRESHOLD = 2_000
#: Items per chunk trace: about 4,000 spans, a trace Jaeger returns in about half a second.
CHUNK_ITEMS = 1_000
#: The slowest items of a linked batch that stay in the run's trace.
SLOWEST_KEPT = 100
#: Failed, interrupted and retried items kept in the run's trace; past it they go to chunks.
KEPT_ITEMS = 300
#: The status an interrupted item's span carries (``runtime/item_life.py``).
INTERRUPTED = "interrupted"
#: Spans per export call, however many one call to the shaper gives back.
SPANS_PER_EXPORT = 2_048
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_TREE_LAYERS = (conv.LAYER_WORKFLOW, conv.LAYER_INSTRUMENTED)


@dataclass(frozen=True)
class ShapePolicy:
    """Which shape, and its sizes; ``linked_after`` is the item count past which a batch links."""

    shape: str = DEFAULT_TRACE_SHAPE
    threshold: int = AUTO_THRESHOLD
    chunk_items: int = CHUNK_ITEMS
    slowest_kept: int = SLOWEST_KEPT
    kept_items: int = KEPT_ITEMS

    @property
    def linked_after(self) -> int | None:
        if self.shape == "inline":
            return None
        return 0 if self.shape == "linked" else self.threshold


def _ctx(span: Any) -> SpanContext:
    return span.get_span_context()


def _times(span: Any) -> tuple[int, int]:
    if isinstance(span, ReadableSpan):
        return span.start_time or 0, span.end_time or 0
    return span.start_ns or 0, span.end_ns or 0


def item_status(span: Any) -> str:
    """``success``, ``failed`` or ``interrupted``, from the item span's status."""
    if isinstance(span, ReadableSpan):
        code, description = span.status.status_code.value, span.status.description
    else:
        code, description = span._code, span.status_description
    if code != StatusCode.ERROR.value:
        return "success"
    return INTERRUPTED if description == INTERRUPTED else "failed"


def _stable_id(size: int, *parts: int) -> int:
    digest = hashlib.blake2b(b"".join(p.to_bytes(16, "big") for p in parts), digest_size=size)
    return int.from_bytes(digest.digest(), "big") or 1


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """The nearest-rank percentile: the smallest value with ``fraction`` of values at or below."""
    rank = max(1, -(-len(sorted_values) * round(fraction * 100) // 100))
    return sorted_values[rank - 1]


@dataclass
class BatchTotals:
    """A linked batch's exact aggregates, added up item by item as items end."""

    statuses: dict[str, int] = field(default_factory=dict)
    durations_ns: list[int] = field(default_factory=list)
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, span: Any) -> None:
        status = item_status(span)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        start, end = _times(span)
        self.durations_ns.append(end - start)
        attributes = span.attributes or {}
        self.retries += max(0, int(attributes.get(conv.ATTR_BATCH_ATTEMPTS, 1)) - 1)
        self.input_tokens += int(attributes.get(conv.GEN_AI_USAGE_INPUT_TOKENS, 0))
        self.output_tokens += int(attributes.get(conv.GEN_AI_USAGE_OUTPUT_TOKENS, 0))
        self.cost_usd += float(attributes.get(conv.ATTR_LLM_COST_USD, 0.0))

    def attributes(self) -> dict[str, Any]:
        durations = sorted(self.durations_ns)
        out: dict[str, Any] = {
            conv.ATTR_SHAPE_ITEMS_SUCCESS: self.statuses.get("success", 0),
            conv.ATTR_SHAPE_ITEMS_FAILED: self.statuses.get("failed", 0),
            conv.ATTR_SHAPE_ITEMS_INTERRUPTED: self.statuses.get(INTERRUPTED, 0),
            conv.ATTR_SHAPE_RETRIES: self.retries,
            conv.ATTR_SHAPE_INPUT_TOKENS: self.input_tokens,
            conv.ATTR_SHAPE_OUTPUT_TOKENS: self.output_tokens,
            conv.ATTR_SHAPE_COST_USD: round(self.cost_usd, 9),
        }
        if durations:
            out[conv.ATTR_SHAPE_DURATION_P50_MS] = percentile(durations, 0.50) / 1e6
            out[conv.ATTR_SHAPE_DURATION_P95_MS] = percentile(durations, 0.95) / 1e6
            out[conv.ATTR_SHAPE_DURATION_P99_MS] = percentile(durations, 0.99) / 1e6
            out[conv.ATTR_SHAPE_DURATION_MAX_MS] = durations[-1] / 1e6
        return out


@dataclass
class _Item:
    """One ended item: its span first, then its layer spans."""

    span: Any
    subtree: list[Any]

    @property
    def index(self) -> int:
        return int((self.span.attributes or {}).get(conv.ATTR_BATCH_INDEX, 0))

    @property
    def duration_ns(self) -> int:
        start, end = _times(self.span)
        return end - start


@dataclass
class _Chunk:
    """The open chunk of a batch: its ids, known from its number, and what its root will say."""

    number: int
    root: SpanContext
    node_id: str = ""
    items: int = 0
    start_ns: int | None = None
    end_ns: int = 0
    first_index: int | None = None
    last_index: int = 0

    def add(self, item: _Item) -> None:
        start, end = _times(item.span)
        index = item.index
        self.node_id = str((item.span.attributes or {}).get(conv.ATTR_NODE_ID, ""))
        self.items += 1
        self.start_ns = start if self.start_ns is None else min(self.start_ns, start)
        self.end_ns = max(self.end_ns, end)
        self.first_index = index if self.first_index is None else min(self.first_index, index)
        self.last_index = max(self.last_index, index)


@dataclass
class _Batch:
    """The items of one batch span seen so far, and where its linked items went."""

    context: SpanContext
    linked: bool = False
    totals: BatchTotals = field(default_factory=BatchTotals)
    kept: int = 0
    slowest: list[tuple[int, int, int, _Item]] = field(default_factory=list)  # a min-heap
    chunk: _Chunk | None = None
    chunk_roots: list[SpanContext] = field(default_factory=list)
    moved: int = 0


class TraceShaper:
    """Turns spans, as they end, into the spans to export in the chosen shape.

    ``take`` returns what can be exported now; ``finish`` returns what is still held.
    """

    def __init__(
        self, policy: ShapePolicy, resource: Resource | None, scope: InstrumentationScope | None
    ) -> None:
        self.policy = policy
        self.resource = resource or Resource({})
        self.scope = scope
        self._held: dict[int, list[Any]] = {}  # ended spans by the id of their unended parent
        self._batches: dict[int, _Batch] = {}
        self._seq = 0

    def take(self, spans: Iterable[Any]) -> list[Any]:
        out: list[Any] = []
        for span in spans:
            self._take_one(span, out)
        return out

    def finish(self) -> list[Any]:
        """Everything still held (spans whose parent never ended here), exported as made, and
        the root of any open chunk (its batch span did not end), so its items have one."""
        out = [span for spans in self._held.values() for span in spans]
        self._held.clear()
        for batch in self._batches.values():
            for item in [entry[3] for entry in batch.slowest]:
                out.extend(item.subtree)
            if batch.chunk is not None:
                out.append(self._close_chunk(batch.context, batch))
        self._batches.clear()
        return out

    def _take_one(self, span: Any, out: list[Any]) -> None:
        context = _ctx(span)
        layer = (span.attributes or {}).get(conv.ATTR_LAYER)
        below = self._held.pop(context.span_id, [])
        if layer == conv.LAYER_BATCH_ITEM and span.parent is not None:
            self._item_ended(span.parent, _Item(span, [span, *below]), out)
        elif layer == conv.LAYER_BATCH:
            out.extend(below)
            out.append(self._batch_ended(span, out))
        elif layer in _TREE_LAYERS or span.parent is None:
            out.extend(below)
            out.append(span)
        else:
            self._held.setdefault(span.parent.span_id, []).extend([span, *below])

    def _item_ended(self, batch_context: SpanContext, item: _Item, out: list[Any]) -> None:
        """Count the item; export it in the run's trace until its batch has passed the
        threshold, and place it (:meth:`_place`) from then on."""
        batch = self._batches.get(batch_context.span_id)
        if batch is None:
            batch = self._batches[batch_context.span_id] = _Batch(batch_context)
        batch.totals.add(item.span)
        linked_after = self.policy.linked_after
        if not batch.linked and linked_after is not None:
            batch.linked = len(batch.totals.durations_ns) > linked_after
        if batch.linked:
            self._place(batch_context, batch, item, out)
        else:
            out.extend(item.subtree)

    def _place(
        self, batch_context: SpanContext, batch: _Batch, item: _Item, out: list[Any]
    ) -> None:
        """Keep the item in the run's trace, among the slowest for now, or in a chunk."""
        attributes = item.span.attributes or {}
        notable = (
            item_status(item.span) != "success"
            or int(attributes.get(conv.ATTR_BATCH_ATTEMPTS, 1)) > 1
        )
        if notable and batch.kept < self.policy.kept_items:
            batch.kept += 1
            out.extend(item.subtree)
            return
        if not notable and self.policy.slowest_kept > 0:
            self._seq += 1
            entry = (item.duration_ns, -item.index, self._seq, item)
            if len(batch.slowest) < self.policy.slowest_kept:
                heapq.heappush(batch.slowest, entry)
                return
            item = heapq.heappushpop(batch.slowest, entry)[3]
        out.extend(self._into_chunk(batch_context, batch, item))

    def _into_chunk(self, batch_context: SpanContext, batch: _Batch, item: _Item) -> list[Any]:
        """The item's spans moved to the open chunk's trace (the chunk's ids are known from its
        number, so they go at once); its root span too when this item fills the chunk."""
        if batch.chunk is None:
            number = len(batch.chunk_roots)
            trace_id = _stable_id(16, batch_context.trace_id, batch_context.span_id, number)
            root_id = _stable_id(8, trace_id, batch_context.span_id, number)
            root = SpanContext(trace_id, root_id, is_remote=False, trace_flags=_SAMPLED)
            batch.chunk = _Chunk(number, root)
            batch.chunk_roots.append(root)
        chunk = batch.chunk
        chunk.add(item)
        batch.moved += 1
        trace_id = chunk.root.trace_id
        out = [
            self._moved(span, trace_id, chunk.root if span is item.span else None)
            for span in item.subtree
        ]
        if chunk.items >= self.policy.chunk_items:
            out.append(self._close_chunk(batch_context, batch))
        return out

    def _close_chunk(self, batch_context: SpanContext, batch: _Batch) -> ReadableSpan:
        """The open chunk's root span, linked to the batch span."""
        chunk, batch.chunk = batch.chunk, None
        assert chunk is not None  # only called with a chunk open
        link = Link(batch_context, {conv.ATTR_SHAPE_LINK: conv.LINK_BATCH})
        return ReadableSpan(
            name=conv.span_name(conv.LAYER_BATCH_CHUNK, chunk.node_id or None),
            context=chunk.root,
            parent=None,
            resource=self.resource,
            attributes={
                conv.ATTR_LAYER: conv.LAYER_BATCH_CHUNK,
                conv.ATTR_NODE_ID: chunk.node_id,
                conv.ATTR_SHAPE_CHUNK_NUMBER: chunk.number,
                conv.ATTR_SHAPE_CHUNK_ITEMS: chunk.items,
                conv.ATTR_SHAPE_CHUNK_FIRST_INDEX: chunk.first_index or 0,
                conv.ATTR_SHAPE_CHUNK_LAST_INDEX: chunk.last_index,
                conv.ATTR_SHAPE_BATCH_TRACE_ID: f"{batch_context.trace_id:032x}",
            },
            links=[link],
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.UNSET),
            start_time=chunk.start_ns,
            end_time=chunk.end_ns,
            instrumentation_scope=self.scope,
        )

    def _moved(self, span: Any, trace_id: int, parent: SpanContext | None) -> Any:
        """A copy of ``span`` in trace ``trace_id``; ``parent`` replaces its parent if given."""
        if isinstance(span, LeanSpan):
            return moved_copy(span, trace_id, parent)
        readable = as_readable(span, self.resource, self.scope)
        old = _ctx(readable)
        context = SpanContext(trace_id, old.span_id, False, old.trace_flags, old.trace_state)
        if parent is None and readable.parent is not None:
            parent = SpanContext(trace_id, readable.parent.span_id, False, _SAMPLED)
        return _copy(readable, context=context, parent=parent)

    def _batch_ended(self, span: Any, out: list[Any]) -> Any:
        """The batch span to export: as made, or (linked) with aggregates and chunk links."""
        context = _ctx(span)
        batch = self._batches.pop(context.span_id, None)
        if batch is None:
            return span
        if not batch.linked:
            return span
        for entry in sorted(batch.slowest, reverse=True):
            out.extend(entry[3].subtree)
        if batch.chunk is not None:
            out.append(self._close_chunk(context, batch))
        readable = as_readable(span, self.resource, self.scope)
        attributes = {
            **(readable.attributes or {}),
            **batch.totals.attributes(),
            conv.ATTR_SHAPE: "linked",
            conv.ATTR_SHAPE_CHUNKS: len(batch.chunk_roots),
            conv.ATTR_SHAPE_ITEMS_LINKED: batch.moved,
        }
        links = list(readable.links or ())
        links += [Link(root, {conv.ATTR_SHAPE_LINK: conv.LINK_CHUNK}) for root in batch.chunk_roots]
        return _copy(readable, attributes=attributes, links=links)


def _copy(span: ReadableSpan, **changes: Any) -> ReadableSpan:
    fields: dict[str, Any] = {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "resource": span.resource,
        "attributes": span.attributes,
        "events": span.events,
        "links": span.links,
        "kind": span.kind,
        "status": span.status,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "instrumentation_scope": span.instrumentation_scope,
    }
    fields.update(changes)
    return ReadableSpan(**fields)


def post_order(spans: Sequence[Any]) -> list[Any]:
    """``spans`` with every span after its children, the order a live run ends them in."""
    children: dict[int | None, list[Any]] = {}
    ids = {_ctx(span).span_id for span in spans}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)
    out: list[Any] = []
    stack: list[tuple[Any, bool]] = [(span, False) for span in reversed(children.get(None, []))]
    while stack:
        span, expanded = stack.pop()
        if expanded:
            out.append(span)
            continue
        stack.append((span, True))
        below = children.get(_ctx(span).span_id, [])
        stack.extend((child, False) for child in reversed(below))
    return out


class ShapingExporter(SpanExporter):
    """Shapes ended spans (:class:`TraceShaper`) before ``inner`` exports them; ``shutdown``
    exports what is still held first."""

    def __init__(
        self,
        inner: SpanExporter,
        policy: ShapePolicy,
        resource: Resource | None = None,
        scope: InstrumentationScope | None = None,
    ) -> None:
        self.inner = inner
        self.shaper = TraceShaper(policy, resource, scope)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return self._send(self.shaper.take(spans))

    def shutdown(self) -> None:
        self._send(self.shaper.finish())
        self.inner.shutdown()

    def _send(self, spans: list[Any]) -> SpanExportResult:
        """``spans`` in requests of at most :data:`SPANS_PER_EXPORT`; the first failure stops."""
        result = SpanExportResult.SUCCESS
        for start in range(0, len(spans), SPANS_PER_EXPORT):
            result = self.inner.export(spans[start : start + SPANS_PER_EXPORT])
            if result is not SpanExportResult.SUCCESS:
                break
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def shaped(
    exporter: SpanExporter,
    shape: str,
    resource: Resource | None = None,
    scope: InstrumentationScope | None = None,
) -> SpanExporter:
    """``exporter`` behind a :class:`ShapingExporter`, unless every span goes ``inline``."""
    if shape == "inline":
        return exporter
    return ShapingExporter(exporter, ShapePolicy(shape), resource, scope)
