"""Where each node and each batch item sat in time: the waterfall the HTML report draws.

The statistics of a run are :mod:`pflow_trace.report.stats`' business; this module adds only
what a picture needs and a table does not: each node's start, and for a batch node every
item's start, duration, lane, status, attempts, error and span id, read from the same trace
model (:mod:`pflow_trace.tracefile.model`). Items are kept column by column (one list per
field) because a batch can hold 100,000 items: columns cost a few bytes per item in the page,
where one object per item would repeat every key 100,000 times.

Times are milliseconds from the run's start; an item's from its batch's start, as the trace
records them (the page adds the node's start). Nothing is invented: an item without a recorded
start is counted in ``unplaced`` and not drawn; a node start that had to be derived (pflow's
formats record only when a node ended) is flagged ``start_estimated``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, gt, is_not

from pflow_trace.observe.llm_usage import call_cost, call_total_tokens
from pflow_trace.report.batch_stats import PREVIEW_CHARS
from pflow_trace.report.summary import RunSummary
from pflow_trace.text import preview
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SKIPPED,
    ITEM_SUCCESS,
    BatchItem,
    TraceNode,
    TraceRun,
)
from pflow_trace.tracefile.spantable_decode import item_retry_offsets_ms

#: Item status classes, in the order ``ItemColumns.status`` numbers them.
ITEM_CLASSES = ("ok", "retried", "failed", "interrupted", "skipped")
STATUS_OK, STATUS_RETRIED, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_SKIPPED = range(5)

_CLASS_OF = {ITEM_SUCCESS: STATUS_OK, ITEM_FAILED: STATUS_FAILED, ITEM_SKIPPED: STATUS_SKIPPED}
_items_field = {name: attrgetter(name) for name in BatchItem.__slots__}


@dataclass(slots=True)
class ItemColumns:
    """The items of one batch node, one list per field, all in record order."""

    index: list[int | None]
    preview: list[str]
    #: Position in :data:`ITEM_CLASSES`.
    status: list[int]
    #: Start from the batch's start (the node's start plus this is the item's place on the
    #: run's time axis); ``None`` when not recorded (the item is not drawn).
    offset_ms: list[float | None]
    duration_ms: list[float | None]
    #: The row the item is drawn on: its worker lane (0 when not recorded) or, for items that
    #: ran in other processes, a row within its worker's group (see ``lane_labels``).
    lane: list[int]
    attempts: list[int | None]
    #: Position in ``errors``, or -1 for no error.
    error: list[int]
    #: Each distinct error message once.
    errors: list[str]
    span_id: list[str | None]
    #: Item position -> when each failed attempt ended, in ms after the item started (from the
    #: span table's retry events; absent when the trace keeps no span table).
    retry_ms: dict[int, list[float]]
    #: Rows the waterfall needs: the highest lane + 1.
    lanes: int
    #: Items with no recorded start or duration.
    unplaced: int
    #: One label per row when the items ran in other processes, rows grouped by worker
    #: ("tcp://10.0.0.5:40211 · 1"); empty for threads, whose rows are "lane N".
    lane_labels: list[str] = field(default_factory=list)
    #: Where each item's time went, in µs: [lane wait, attempts, retry waits, overhead] or
    #: None; empty when no item of the batch has a recorded split.
    time_us: list[tuple[int, int, int, int] | None] = field(default_factory=list)
    #: The provider's reported latency in µs per item (None when unknown); empty when none.
    provider_us: list[int | None] = field(default_factory=list)
    #: Each item's ``batch.key`` (None where it has none); empty when no item has one.
    key: list[str | None] = field(default_factory=list)
    #: Each item's LLM tokens (input + output) and cost in US dollars (None: no call, or a
    #: price unknown); both empty when no item made an LLM call. The waterfall can colour
    #: items by either instead of by status.
    tokens: list[int | None] = field(default_factory=list)
    cost_usd: list[float | None] = field(default_factory=list)


@dataclass(slots=True)
class NodeTimeline:
    """One node execution on the time axis."""

    order: int
    node_id: str
    node_type: str
    #: As ``NodeSummary.status``: success, degraded, failed or unfinished.
    status: str
    start_ms: float | None
    duration_ms: float | None
    #: True when the start was derived from the node's end time or the previous node.
    start_estimated: bool
    span_id: str | None
    items: ItemColumns | None = None


@dataclass(slots=True)
class RunTimeline:
    """One run's nodes (and their items) on one time axis starting at the run's start."""

    source: str
    trace_id: str | None
    duration_ms: float | None
    nodes: list[NodeTimeline] = field(default_factory=list)


def build_timeline(run: TraceRun, summary: RunSummary) -> RunTimeline:
    """The run's waterfall; node statuses come from its summary so both views agree."""
    retry_ms = _retry_marks(run)
    nodes = []
    previous_end_ms = 0.0
    for node, node_summary in zip(run.nodes, summary.nodes, strict=True):
        start_ms, estimated = _node_start_ms(node, run.start_time, previous_end_ms)
        items = None
        if node.batch is not None and node.batch.items is not None:
            items = _item_columns(node.batch.items, start_ms, retry_ms)
        nodes.append(
            NodeTimeline(
                order=node_summary.order,
                node_id=node.node_id,
                node_type=node.node_type,
                status=node_summary.status,
                start_ms=start_ms,
                duration_ms=node.duration_ms,
                start_estimated=estimated,
                span_id=node.span_id,
                items=items,
            )
        )
        if start_ms is not None:
            previous_end_ms = start_ms + (node.duration_ms or 0.0)
    return RunTimeline(
        source=run.source, trace_id=run.trace_id, duration_ms=summary.duration_ms, nodes=nodes
    )


def _retry_marks(run: TraceRun) -> dict[str, list[float]]:
    """Retry event offsets by span id; the span table is scanned only if an item was retried."""
    for node in run.nodes:
        items = node.batch.items if node.batch is not None else None
        if items and any(a is not None and a > 1 for a in map(_items_field["attempts"], items)):
            return item_retry_offsets_ms(run)
    return {}


def _node_start_ms(
    node: TraceNode, run_start: str | None, previous_end_ms: float
) -> tuple[float | None, bool]:
    """(start, estimated): recorded, else end time minus duration, else after the last node."""
    if node.start_offset_ms is not None:
        return node.start_offset_ms, False
    if node.duration_ms is None:
        return None, True
    ended_ms = _offset_ms(run_start, node.timestamp)
    if ended_ms is not None:
        return max(ended_ms - node.duration_ms, 0.0), True
    return previous_end_ms, True


def _offset_ms(start: str | None, moment: str | None) -> float | None:
    """``moment`` minus ``start`` in ms when both parse (naive and aware are not mixed)."""
    if not start or not moment:
        return None
    try:
        delta = datetime.fromisoformat(moment) - datetime.fromisoformat(start)
    except (ValueError, TypeError):
        return None
    return delta.total_seconds() * 1000


def _item_columns(
    items: list[BatchItem], node_start_ms: float | None, retry_ms: dict[str, list[float]]
) -> ItemColumns:
    """Column lists from the item records: whole-list passes at C speed, as in ``batch_stats``.

    Each column takes the trace's values as they are when they are all of the expected type
    (the usual case, checked in bulk) and is cleaned value by value only otherwise.
    """
    get = _items_field
    count = len(items)
    offsets = list(map(get["start_offset_ms"], items))
    durations = list(map(get["duration_ms"], items))
    attempts = list(map(get["attempts"], items))
    span_ids = list(map(get["span_id"], items))
    lanes = list(map(get["worker"], items))
    if set(map(type, lanes)) != {int} or min(lanes) < 0:
        lanes = [w if w.__class__ is int and w >= 0 else 0 for w in lanes]
    lane_labels: list[str] = []
    if list(map(get["host"], items)).count(None) != count:
        lanes, lane_labels = _rows_by_worker(items, offsets, durations)
    indexes = list(map(get["index"], items))
    if set(map(type, indexes)) - {int}:
        indexes = [i if i.__class__ is int else None for i in indexes]
    errors, error_codes = _error_columns(list(map(get["error"], items)))
    splits = list(map(get["time_us"], items))
    providers = list(map(get["provider_us"], items))
    keys = list(map(get["key"], items))
    usages = list(map(get["llm_usage"], items))
    any_usage = usages.count(None) != count
    marks = {}
    if retry_ms:
        marks = {at: retry_ms[s] for at, s in enumerate(span_ids) if s in retry_ms}
    unplaced = count
    if node_start_ms is not None:
        unplaced = offsets.count(None) + durations.count(None)
    return ItemColumns(
        index=indexes,
        preview=_previews(list(map(get["item"], items))),
        status=_status_classes(list(map(get["status"], items)), attempts),
        offset_ms=offsets,
        duration_ms=durations,
        lane=lanes,
        attempts=attempts,
        error=error_codes,
        errors=errors,
        span_id=span_ids,
        retry_ms=marks,
        lanes=max(lanes, default=0) + 1,
        unplaced=min(unplaced, count),
        lane_labels=lane_labels,
        time_us=splits if splits.count(None) != count else [],
        provider_us=providers if providers.count(None) != count else [],
        key=keys if keys.count(None) != count else [],
        tokens=[call_total_tokens(u) if u else None for u in usages] if any_usage else [],
        cost_usd=[call_cost(u) if u else None for u in usages] if any_usage else [],
    )


def _rows_by_worker(
    items: list[BatchItem], offsets: list[float | None], durations: list[float | None]
) -> tuple[list[int], list[str]]:
    """(row per item, label per row) with each worker process's items on rows of their own.

    Within a worker the items are packed onto as few rows as never overlap (a worker with
    two threads gets two rows), so the picture shows what each worker did when.
    """
    by_place: dict[str, list[int]] = {}
    for at, item in enumerate(items):
        by_place.setdefault(item.place or "this process", []).append(at)
    rows = [0] * len(items)
    labels: list[str] = []
    for place in sorted(by_place):
        ends: list[tuple[float, int]] = []  # heap of (end of the row's last item, row)
        first_row = len(labels)
        order = sorted(by_place[place], key=lambda at: offsets[at] or 0.0)
        for at in order:
            start = offsets[at] or 0.0
            end = start + (durations[at] or 0.0)
            if ends and ends[0][0] <= start:  # the row that went idle first is free again
                row = ends[0][1]
                heapq.heapreplace(ends, (end, row))
            else:
                row = len(labels)
                labels.append(f"{place} · {row - first_row}")
                heapq.heappush(ends, (end, row))
            rows[at] = row
    return rows, labels


def _error_columns(messages: list[object]) -> tuple[list[str], list[int]]:
    """(each distinct message once, per item its position in that list or -1)."""
    codes = [-1] * len(messages)
    position: dict[str, int] = {}
    for at in compress(range(len(messages)), map(is_not, messages, repeat(None))):
        codes[at] = position.setdefault(str(messages[at]), len(position))
    return list(position), codes


def _status_classes(statuses: list[str], attempts: list[int | None]) -> list[int]:
    """The colour of each item; a success that needed more than one attempt is "retried"."""
    classes = list(map(_CLASS_OF.get, statuses, repeat(STATUS_INTERRUPTED)))
    if None in attempts:
        retried = [a is not None and a > 1 for a in attempts]
    else:
        retried = list(map(gt, attempts, repeat(1)))
    for at in compress(range(len(classes)), retried):
        if classes[at] == STATUS_OK:
            classes[at] = STATUS_RETRIED
    return classes


def _previews(values: list[object]) -> list[str]:
    """Each item as one short line; our traces already hold short one-line strings."""
    if set(map(type, values)) <= {str} and max(map(len, values), default=0) <= PREVIEW_CHARS:  # type: ignore[arg-type]
        joined = "".join(values)  # type: ignore[arg-type]
        if "\n" not in joined and "\r" not in joined:
            return values  # type: ignore[return-value]
    return [preview(value, PREVIEW_CHARS) for value in values]
