"""The linked export shape, on synthetic span sequences ended in a live run's order."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.trace_shape import (
    ShapePolicy,
    ShapingExporter,
    TraceShaper,
    percentile,
    post_order,
)

TRACE = 0xABC
RESOURCE = Resource({"service.name": "shape-test"})
SCOPE = InstrumentationScope(conv.INSTRUMENTATION_NAME)
WORKFLOW_ID, NODE_ID, BATCH_ID = 1, 2, 3


def _span(
    span_id: int,
    parent: int | None,
    layer: str,
    start: int,
    end: int,
    status: Status | None = None,
    **attributes: Any,
) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED)
    return ReadableSpan(
        name=f"n {layer}",
        context=SpanContext(TRACE, span_id, False, flags),
        parent=None if parent is None else SpanContext(TRACE, parent, False, flags),
        resource=RESOURCE,
        attributes={conv.ATTR_LAYER: layer, conv.ATTR_NODE_ID: "n", **attributes},
        events=[Event(conv.EVENT_RETRY, {}, start)] if attributes.get("retried") else [],
        status=status or Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


def _item_spans(index: int, duration: int, status: Status | None, attempts: int) -> list[Any]:
    """One item's spans, children first: node, template, namespaced, then the item."""
    base = 1000 + index * 10
    start = index * 1_000
    inner = [
        _span(base + 3, base + 2, conv.LAYER_NODE, start, start + duration),
        _span(base + 2, base + 1, conv.LAYER_TEMPLATE, start, start + duration),
        _span(base + 1, base, conv.LAYER_NAMESPACED, start, start + duration),
    ]
    item = _span(
        base,
        BATCH_ID,
        conv.LAYER_BATCH_ITEM,
        start,
        start + duration,
        status,
        **{
            conv.ATTR_BATCH_INDEX: index,
            conv.ATTR_BATCH_ATTEMPTS: attempts,
            conv.GEN_AI_USAGE_INPUT_TOKENS: 2,
            conv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
            conv.ATTR_LLM_COST_USD: 0.25,
        },
    )
    return [*inner, item]


FAILED = {7: Status(StatusCode.ERROR, "boom"), 8: Status(StatusCode.ERROR, "interrupted")}
RETRIED = {9}


def run_spans(items: int) -> list[Any]:
    """A workflow with one batch node of ``items`` items, in the order a run ends them.

    Item ``i`` takes ``100 + i % 50`` ns, so the slowest are the ones with ``i % 50 == 49``.
    """
    spans: list[Any] = []
    for index in range(items):
        attempts = 2 if index in RETRIED else 1
        spans += _item_spans(index, 100 + index % 50, FAILED.get(index), attempts)
    end = items * 1_000 + 10
    spans.append(_span(BATCH_ID, NODE_ID, conv.LAYER_BATCH, 0, end))
    spans.append(_span(NODE_ID, WORKFLOW_ID, conv.LAYER_INSTRUMENTED, 0, end))
    spans.append(_span(WORKFLOW_ID, None, conv.LAYER_WORKFLOW, 0, end))
    return spans


def shape(spans: list[Any], policy: ShapePolicy, batch_size: int = 7) -> list[ReadableSpan]:
    """The spans exported, fed in the given order, a few at a time, as the export queue does."""
    memory = InMemorySpanExporter()
    exporter = ShapingExporter(memory, policy, RESOURCE, SCOPE)
    for start in range(0, len(spans), batch_size):
        assert exporter.export(spans[start : start + batch_size]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    return list(memory.get_finished_spans())


def by_trace(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        traces.setdefault(span.context.trace_id, []).append(span)
    return traces


SMALL = ShapePolicy("linked", chunk_items=10, slowest_kept=3, kept_items=100)


def test_inline_shape_below_the_auto_threshold_exports_every_span_unchanged() -> None:
    spans = run_spans(30)
    exported = shape(spans, ShapePolicy("auto", threshold=30))
    assert sorted(s.context.span_id for s in exported) == sorted(s.context.span_id for s in spans)
    assert {s.context.trace_id for s in exported} == {TRACE}
    assert all(not s.links for s in exported)


def test_auto_sends_the_first_items_at_once_and_links_the_rest_past_the_threshold() -> None:
    policy = ShapePolicy("auto", threshold=30, chunk_items=10, slowest_kept=3)
    shaper = TraceShaper(policy, RESOURCE, SCOPE)
    spans = run_spans(60)
    first_items = shaper.take(spans[: 4 * 30])  # the first 30 items, before the batch ends
    assert len(first_items) == 4 * 30
    exported = first_items + shaper.take(spans[4 * 30 :]) + shaper.finish()
    run_items = sorted(
        s.attributes[conv.ATTR_BATCH_INDEX]
        for s in by_trace(exported)[TRACE]
        if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM
    )
    assert run_items == [*range(30), 47, 48, 49]  # then the 3 slowest of the rest
    [batch] = [s for s in exported if s.context.span_id == BATCH_ID]
    assert batch.attributes[conv.ATTR_SHAPE_ITEMS_SUCCESS] == 58  # every item counted
    assert batch.attributes[conv.ATTR_SHAPE_ITEMS_LINKED] == 27
    assert len(batch.links) == 3


def test_linked_shape_keeps_every_span_and_moves_whole_items_to_chunk_traces() -> None:
    spans = run_spans(95)
    exported = shape(spans, SMALL)
    original = {s.context.span_id for s in spans}
    exported_ids = Counter(s.context.span_id for s in exported)
    chunk_roots = [s for s in exported if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_CHUNK]
    assert set(exported_ids) == original | {s.context.span_id for s in chunk_roots}
    assert max(exported_ids.values()) == 1  # nothing sent twice
    traces = by_trace(exported)
    # kept: failed 7, interrupted 8, retried 9, and the 3 slowest: 47, 48 and 49 (147-149 ns;
    # 97-99, as slow, do not exist in 95 items)
    run_items = sorted(
        s.attributes[conv.ATTR_BATCH_INDEX]
        for s in traces[TRACE]
        if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM
    )
    assert run_items == [7, 8, 9, 47, 48, 49]
    # 95 items - 6 kept = 89 moved: 9 chunks (8 of 10, one of 9), each its own trace
    assert len(chunk_roots) == 9
    for root in chunk_roots:
        members = traces[root.context.trace_id]
        items = [s for s in members if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM]
        assert len(members) == 1 + 4 * len(items)  # each item keeps its three layer spans
        assert all(item.parent.span_id == root.context.span_id for item in items)
        ids = {s.context.span_id for s in members}
        assert all(s.parent is None or s.parent.span_id in ids for s in members)
        [link] = root.links
        assert (link.context.trace_id, link.context.span_id) == (TRACE, BATCH_ID)


def test_the_batch_span_links_every_chunk_and_carries_exact_aggregates() -> None:
    exported = shape(run_spans(95), SMALL)
    [batch] = [s for s in exported if s.context.span_id == BATCH_ID]
    roots = {
        (s.context.trace_id, s.context.span_id)
        for s in exported
        if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_CHUNK
    }
    assert {(link.context.trace_id, link.context.span_id) for link in batch.links} == roots
    attributes = batch.attributes
    assert attributes[conv.ATTR_SHAPE] == "linked"
    assert attributes[conv.ATTR_SHAPE_CHUNKS] == 9
    assert attributes[conv.ATTR_SHAPE_ITEMS_LINKED] == 89
    assert attributes[conv.ATTR_SHAPE_ITEMS_SUCCESS] == 93
    assert attributes[conv.ATTR_SHAPE_ITEMS_FAILED] == 1
    assert attributes[conv.ATTR_SHAPE_ITEMS_INTERRUPTED] == 1
    assert attributes[conv.ATTR_SHAPE_RETRIES] == 1
    assert attributes[conv.ATTR_SHAPE_INPUT_TOKENS] == 2 * 95
    assert attributes[conv.ATTR_SHAPE_OUTPUT_TOKENS] == 3 * 95
    assert attributes[conv.ATTR_SHAPE_COST_USD] == pytest.approx(0.25 * 95)
    durations = sorted(100 + i % 50 for i in range(95))
    assert attributes[conv.ATTR_SHAPE_DURATION_MAX_MS] == 149 / 1e6
    assert attributes[conv.ATTR_SHAPE_DURATION_P50_MS] == durations[47] / 1e6
    assert attributes[conv.ATTR_SHAPE_DURATION_P99_MS] == durations[94] / 1e6


def test_chunk_ids_are_deterministic() -> None:
    first = shape(run_spans(40), SMALL)
    second = shape(run_spans(40), SMALL, batch_size=1)
    key = sorted((s.context.trace_id, s.context.span_id) for s in first)
    assert key == sorted((s.context.trace_id, s.context.span_id) for s in second)


def test_failures_past_the_kept_limit_go_to_chunks_one_hop_away() -> None:
    FAILED.update({i: Status(StatusCode.ERROR, "x") for i in range(20, 30)})
    try:
        policy = ShapePolicy("linked", chunk_items=10, slowest_kept=0, kept_items=4)
        exported = shape(run_spans(40), policy)
    finally:
        for index in range(20, 30):
            del FAILED[index]
    run_trace = by_trace(exported)[TRACE]
    kept = [s for s in run_trace if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM]
    assert len(kept) == 4
    failed = [
        s
        for s in exported
        if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM
        and s.status.status_code is StatusCode.ERROR
    ]
    assert len(failed) == 12  # 7, 8 and 20..29: every one exported


def test_a_large_batch_keeps_the_run_trace_small() -> None:
    exported = shape(run_spans(5_000), ShapePolicy("auto"), batch_size=4096)
    run_trace = by_trace(exported)[TRACE]
    assert len(run_trace) < 10_000
    # 2,000 items inline, then the 100 slowest kept and 2,900 items in three chunks
    assert len(exported) == 5_000 * 4 + 3 + 3


def test_spans_whose_parent_never_ends_are_still_exported() -> None:
    orphans = _item_spans(0, 5, None, 1)[:3]  # an item's layers, without the item
    assert len(shape(orphans, SMALL)) == 3


def test_a_batch_that_never_ends_still_gets_its_open_chunk_root() -> None:
    items = run_spans(25)[: 4 * 25]  # the items alone: the batch span never ends
    exported = shape(items, SMALL)
    roots = [s for s in exported if s.attributes[conv.ATTR_LAYER] == conv.LAYER_BATCH_CHUNK]
    assert [root.attributes[conv.ATTR_SHAPE_CHUNK_ITEMS] for root in roots] == [10, 9]
    assert len(exported) == 4 * 25 + 2  # the 3 slowest and the kept 7, 8 and 9 too


def test_post_order_puts_children_before_parents() -> None:
    spans = run_spans(3)
    ordered = post_order(list(reversed(spans)))
    position = {s.context.span_id: i for i, s in enumerate(ordered)}
    for span in ordered:
        if span.parent is not None:
            assert position[span.context.span_id] < position[span.parent.span_id]


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.01, 1)]
)
def test_percentile_is_the_nearest_rank(fraction: float, expected: int) -> None:
    assert percentile(list(range(1, 101)), fraction) == expected


def test_the_shaper_holds_nothing_for_spans_outside_batches() -> None:
    shaper = TraceShaper(SMALL, RESOURCE, SCOPE)
    node = _span(5, WORKFLOW_ID, conv.LAYER_INSTRUMENTED, 0, 1)
    assert shaper.take([node]) == [node]
    assert shaper.finish() == []
