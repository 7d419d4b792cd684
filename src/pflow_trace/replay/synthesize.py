"""A span tree built from a pflow trace's timings, for traces that recorded no spans.

pflow's traces (1.2.0 JSON and JSON lines) keep node records, not spans, so exporting one means
inventing the tree the runtime would have emitted: workflow → node (``instrumented``) →
``batch`` → ``batch.item``, with the same ``pflow.*`` attributes. Ids are hashed from the
execution id, so exporting one file twice gives the same ids and a backend stores the run once.

Placement, most exact first: a recorded start offset; a node's end ``timestamp`` minus its
duration; else nodes laid end to end. Items without offsets run back to back (sequential) or
greedily on ``max_concurrent`` lanes in index order (parallel).
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass
from typing import Any

from pflow_trace.errors import TraceReadError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import DEFAULT_SERVICE_NAME
from pflow_trace.text import hex_span_id, hex_trace_id, preview
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SKIPPED,
    BatchInfo,
    BatchItem,
    TraceNode,
    TraceRun,
)
from pflow_trace.tracefile.replay_model import (
    STATUS_ERROR,
    STATUS_UNSET,
    ReplaySpan,
    ReplayTrace,
)
from pflow_trace.tracefile.timeunits import iso_to_ns, ms_to_ns
from pflow_trace.version import __version__

#: The workflow format's default ``batch.max_concurrent``; used when a pflow trace omits it.
DEFAULT_MAX_CONCURRENT = 10
#: Characters of an item kept in a synthesized item span's ``pflow.batch.item``.
ITEM_PREVIEW_CHARS = 60

_FAILED_RUN_STATUSES = frozenset({"failed", "interrupted"})


class _Ids:
    """Deterministic ids: sha256 of the run's seed and a path naming the span in the tree."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def _number(self, path: str, size: int) -> int:
        """The first ``size`` bytes of the digest as a number; never 0, which OTLP rejects."""
        digest = hashlib.sha256(f"{self.seed}\x00{path}".encode()).digest()
        return int.from_bytes(digest[:size], "big") or 1

    def trace_id(self) -> str:
        return hex_trace_id(self._number("trace", 16)) or ""

    def span_id(self, path: str) -> str:
        return hex_span_id(self._number(path, 8)) or ""


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Where a run sits in time: its start, and its end when the trace recorded a duration."""

    start_ns: int
    end_ns: int | None


def synthesize(run: TraceRun, service_name: str = DEFAULT_SERVICE_NAME) -> ReplayTrace:
    """Build workflow → node → batch → item spans from a run's recorded timings."""
    ids = _Ids(run.execution_id or f"{run.workflow_name}@{run.start_time}@{run.source}")
    run_start = _run_start_ns(run)
    run_end = run_start + ms_to_ns(run.duration_ms) if run.duration_ms is not None else None
    timeline = _Timeline(run_start, run_end)
    root_id = ids.span_id("workflow")
    spans: list[ReplaySpan] = []
    cursor = run_start
    node_spans_of: list[tuple[TraceNode, ReplaySpan]] = []
    for position, node in enumerate(run.nodes):
        node_spans = _node_spans(node, position, cursor, timeline, ids, root_id)
        cursor = max(cursor, node_spans[0].end_ns)
        spans.extend(node_spans)
        node_spans_of.append((node, node_spans[0]))
    _nest_sub_workflows(node_spans_of)
    return ReplayTrace(
        source=run.source,
        source_format=run.format,
        trace_id=ids.trace_id(),
        spans=[_root_span(run, root_id, timeline, spans), *spans],
        resource={"service.name": service_name},
        scope_name=conv.INSTRUMENTATION_NAME,
        scope_version=__version__,
        synthesized=True,
    )


def _nest_sub_workflows(node_spans_of: list[tuple[TraceNode, ReplaySpan]]) -> None:
    """A sub-workflow's node span goes under its calling step's (``caller_span_id``), as the
    runtime nested it; a caller the trace does not hold leaves it under the root."""
    synthesized = {node.span_id: span.span_id for node, span in node_spans_of if node.span_id}
    for node, span in node_spans_of:
        caller = synthesized.get(node.caller_span_id or "")
        if caller is not None:
            span.parent_span_id = caller


def _run_start_ns(run: TraceRun) -> int:
    """The run's start: its ``start_time``, else the first node's end minus its duration."""
    if run.start_time:
        parsed = iso_to_ns(run.start_time)
        if parsed is not None:
            return parsed
    for node in run.nodes:
        stamp = iso_to_ns(node.timestamp) if node.timestamp else None
        if stamp is not None:
            return stamp - (ms_to_ns(node.duration_ms) if node.duration_ms is not None else 0)
    raise TraceReadError(f"{run.source}: no start time, so its spans cannot be placed in time")


def _node_window(node: TraceNode, cursor: int, timeline: _Timeline) -> tuple[int, int]:
    """``(start_ns, end_ns)`` of a node; ``cursor`` is the latest end placed so far."""
    duration = ms_to_ns(node.duration_ms) if node.duration_ms is not None else None
    end_stamp = iso_to_ns(node.timestamp) if node.timestamp else None
    if node.start_offset_ms is not None:
        start = timeline.start_ns + ms_to_ns(node.start_offset_ms)
    elif not node.finished and end_stamp is not None:
        start = end_stamp  # a node that never finished: its timestamp is its start
    elif end_stamp is not None and duration is not None:
        start = end_stamp - duration
    else:
        start = cursor
    if duration is None:
        # Never finished: it lasted until the run's end, or the last end the trace knows.
        duration = max(0, (timeline.end_ns if timeline.end_ns is not None else cursor) - start)
    return start, start + duration


def _node_spans(
    node: TraceNode, position: int, cursor: int, timeline: _Timeline, ids: _Ids, root_id: str
) -> list[ReplaySpan]:
    """The node's ``instrumented`` span first, then its batch span and item spans if any."""
    start, end = _node_window(node, cursor, timeline)
    node_attributes = {conv.ATTR_NODE_ID: node.node_id, conv.ATTR_NODE_TYPE: node.node_type}
    status, message = (
        (STATUS_ERROR, node.error or "node failed") if not node.success else (STATUS_UNSET, None)
    )
    path = f"node/{position}/{node.node_id}"
    node_span = ReplaySpan(
        name=conv.span_name(conv.LAYER_INSTRUMENTED, node.node_id),
        span_id=ids.span_id(path),
        parent_span_id=root_id,
        start_ns=start,
        end_ns=end,
        attributes={conv.ATTR_LAYER: conv.LAYER_INSTRUMENTED, **node_attributes},
        status_code=status,
        status_message=message,
    )
    if node.batch is None:
        return [node_span]
    batch_span = ReplaySpan(
        name=conv.span_name(conv.LAYER_BATCH, node.node_id),
        span_id=ids.span_id(f"{path}/batch"),
        parent_span_id=node_span.span_id,
        start_ns=start,
        end_ns=end,
        attributes={
            conv.ATTR_LAYER: conv.LAYER_BATCH,
            **node_attributes,
            **_batch_attributes(node.batch),
        },
        status_code=status,
        status_message=message,
    )
    items = _item_spans(node.batch, batch_span, f"{path}/item", ids, node_attributes)
    return [node_span, batch_span, *items]


def _root_span(
    run: TraceRun, root_id: str, timeline: _Timeline, spans: list[ReplaySpan]
) -> ReplaySpan:
    """The workflow span, stretched to cover every span under it and the run's recorded end."""
    root_end = max([timeline.end_ns or timeline.start_ns, *(span.end_ns for span in spans)])
    root_start = min([timeline.start_ns, *(span.start_ns for span in spans)])
    attributes: dict[str, Any] = {
        conv.ATTR_LAYER: conv.LAYER_WORKFLOW,
        conv.ATTR_WORKFLOW_NAME: run.workflow_name or "workflow",
    }
    if run.execution_id:
        attributes[conv.ATTR_EXECUTION_ID] = run.execution_id
    if run.final_status:
        attributes[conv.ATTR_FINAL_STATUS] = run.final_status
    failed = run.final_status in _FAILED_RUN_STATUSES
    return ReplaySpan(
        name=conv.span_name(conv.LAYER_WORKFLOW, run.workflow_name),
        span_id=root_id,
        parent_span_id=None,
        start_ns=root_start,
        end_ns=root_end,
        attributes=attributes,
        status_code=STATUS_ERROR if failed else STATUS_UNSET,
        status_message=(run.error or run.final_status) if failed else None,
    )


def _batch_attributes(batch: BatchInfo) -> dict[str, Any]:
    """The batch span's attributes, as the runtime sets them, for what the trace recorded."""
    attributes: dict[str, Any] = {}
    size = (
        batch.count
        if batch.count is not None
        else (len(batch.items) if batch.items is not None else None)
    )
    if size is not None:
        attributes[conv.ATTR_BATCH_SIZE] = size
    if batch.parallel is not None:
        attributes[conv.ATTR_BATCH_PARALLEL] = batch.parallel
        attributes[conv.ATTR_BATCH_MAX_CONCURRENT] = (
            (batch.max_concurrent or DEFAULT_MAX_CONCURRENT) if batch.parallel else 1
        )
    if batch.execution_mode is not None:
        attributes[conv.ATTR_BATCH_EXECUTION_MODE] = batch.execution_mode
    if batch.success_count is not None:
        attributes[conv.ATTR_BATCH_SUCCESS_COUNT] = batch.success_count
    if batch.error_count is not None:
        attributes[conv.ATTR_BATCH_ERROR_COUNT] = batch.error_count
    return attributes


def _item_spans(
    batch: BatchInfo,
    batch_span: ReplaySpan,
    path: str,
    ids: _Ids,
    node_attributes: dict[str, Any],
) -> list[ReplaySpan]:
    """Item spans under the batch span; none when the trace keeps no per-item records."""
    if not batch.items:
        return []
    ran = [
        (position, item) for position, item in enumerate(batch.items) if item.status != ITEM_SKIPPED
    ]
    ran.sort(key=lambda pair: (pair[1].index is None, pair[1].index or 0, pair[0]))
    placed = _place(ran, batch, batch_span.start_ns)
    return [
        _item_span(item, position, start, lane, batch_span.span_id, path, ids, node_attributes)
        for (position, item), (start, lane) in zip(ran, placed, strict=True)
    ]


def _item_span(
    item: BatchItem,
    position: int,
    start: int,
    lane: int,
    batch_span_id: str,
    path: str,
    ids: _Ids,
    node_attributes: dict[str, Any],
) -> ReplaySpan:
    """One item's span at its placed ``start`` on ``lane``; ``position`` is its record's place."""
    duration = ms_to_ns(item.duration_ms) if item.duration_ms is not None else 0
    attributes: dict[str, Any] = {
        conv.ATTR_LAYER: conv.LAYER_BATCH_ITEM,
        **node_attributes,
        conv.ATTR_BATCH_INDEX: item.index if item.index is not None else position,
        conv.ATTR_BATCH_ITEM_PREVIEW: preview(item.item, ITEM_PREVIEW_CHARS),
    }
    if item.worker is not None:
        attributes[conv.ATTR_BATCH_WORKER] = item.worker
    if item.attempts is not None:
        attributes[conv.ATTR_BATCH_ATTEMPTS] = item.attempts
    failed = item.status == ITEM_FAILED
    key = item.index if item.index is not None else f"p{position}"
    return ReplaySpan(
        name=conv.span_name(conv.LAYER_BATCH_ITEM, str(node_attributes[conv.ATTR_NODE_ID])),
        span_id=ids.span_id(f"{path}/{key}"),
        parent_span_id=batch_span_id,
        start_ns=start,
        end_ns=start + duration,
        attributes=attributes,
        status_code=STATUS_ERROR if failed else STATUS_UNSET,
        status_message=(item.error or "item failed") if failed else None,
        lane=lane,
    )


def _place(
    ran: list[tuple[int, BatchItem]], batch: BatchInfo, batch_start: int
) -> list[tuple[int, int]]:
    """``(start_ns, lane)`` per item, in the order given (index order)."""
    items = [item for _, item in ran]
    if all(item.start_offset_ms is not None for item in items):
        return [
            (batch_start + ms_to_ns(item.start_offset_ms or 0.0), item.worker or 0)
            for item in items
        ]
    durations = [
        ms_to_ns(item.duration_ms) if item.duration_ms is not None else 0 for item in items
    ]
    if not batch.parallel:
        return _place_back_to_back(durations, batch_start)
    lanes = max(1, min(batch.max_concurrent or DEFAULT_MAX_CONCURRENT, len(items)))
    return _place_on_lanes(durations, batch_start, lanes)


def _place_back_to_back(durations: list[int], batch_start: int) -> list[tuple[int, int]]:
    """A sequential batch: each item starts when the one before ended, all on lane 0."""
    placed, cursor = [], batch_start
    for duration in durations:
        placed.append((cursor, 0))
        cursor += duration
    return placed


def _place_on_lanes(durations: list[int], batch_start: int, lanes: int) -> list[tuple[int, int]]:
    """A parallel batch: each item on the lane free soonest (the lowest such lane on a tie)."""
    free_at = [(batch_start, lane) for lane in range(lanes)]  # a heap: earliest, then lowest lane
    placed = []
    for duration in durations:
        start, lane = heapq.heappop(free_at)
        placed.append((start, lane))
        heapq.heappush(free_at, (start + duration, lane))
    return placed
