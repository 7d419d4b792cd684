"""Statistics of one batch node: item counts, item time, the slowest items, grouped errors.

A batch is where ``show`` spends nearly all its time (a trace can hold 100,000 items), and
where traces differ most: ours records every item, pflow's JSON only ``batch_metadata``, an
interrupted run only the items that finished. Keeping the per-batch numbers here, apart from
the per-run summary, lets each of those cases be read in one place, with a plain sentence for
everything a trace cannot tell.

The per-item work is written as whole-list operations (``map`` with ``attrgetter``, a
``Counter``, one sort) rather than one loop with branches: each runs at C speed over the
items, which keeps a 100,000-item batch well inside the benchmark's budget.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, eq
from typing import Any

from pflow_trace.report.error_shapes import error_shape
from pflow_trace.report.percentiles import percentile
from pflow_trace.report.summary import BatchSummary, ErrorGroup, ItemTiming, SlowItem, WorkerShare
from pflow_trace.report.time_split import batch_time_split
from pflow_trace.text import preview
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_INTERRUPTED,
    ITEM_SKIPPED,
    ITEM_SUCCESS,
    BatchInfo,
    BatchItem,
)

#: Slowest items listed per batch (``show --top``).
DEFAULT_TOP = 5
#: Error groups listed per batch before "+N more".
DEFAULT_ERROR_GROUPS = 5
#: Characters of an item shown in the slowest-items table (``SlowItem.item``).
PREVIEW_CHARS = 60

#: A failed item as (error message, item index), both as the trace wrote them.
Failure = tuple[str | None, int | None]

_by_duration = attrgetter("duration_ms")
_status_of = attrgetter("status")
_attempts_of = attrgetter("attempts")


@dataclass(slots=True)
class _ItemFindings:
    """What a batch's per-item records tell; the defaults describe a trace without them."""

    item_records: int = 0
    skipped_count: int = 0
    interrupted_count: int = 0
    success_count: int | None = None
    timing: ItemTiming = field(default_factory=ItemTiming)
    #: "items" or "batch_metadata", as in ``BatchSummary.timing_source``.
    timing_source: str | None = None
    slowest: list[SlowItem] = field(default_factory=list)
    retries_used: int | None = None
    failures: list[Failure] = field(default_factory=list)
    #: Sentences naming what the trace cannot tell, in the order they are shown.
    unknown: list[str] = field(default_factory=list)


def summarize_batch(
    batch: BatchInfo,
    wall_ms: float | None,
    top: int = DEFAULT_TOP,
    error_groups: int = DEFAULT_ERROR_GROUPS,
) -> BatchSummary:
    """One batch node's numbers, from per-item records where the trace has them.

    ``wall_ms`` is the batch node's own duration; item time over it gives the parallelism.
    """
    if batch.items is None:
        findings = _without_item_records(batch)
    else:
        findings = _from_item_records(batch.items, top)
    if findings.timing_source is None and batch.reported_timing_ms:
        findings.timing = _reported_timing(batch.reported_timing_ms)
        findings.timing_source = "batch_metadata"

    unknown = findings.unknown
    recorded = findings.item_records
    count = batch.count if batch.count is not None else recorded
    partial = batch.items is not None and (batch.count is None or recorded < batch.count)
    if partial:
        unknown.append(_partial_batch_note(batch.count, recorded))
    error_count = batch.error_count
    if error_count is None and batch.items is not None:
        error_count = len(findings.failures)
    effective, efficiency = _parallelism(findings.timing.total_items_ms, wall_ms, batch)
    if wall_ms is None:
        unknown.append("wall time: the node's duration is not in the trace")

    groups, more = group_errors(findings.failures, error_groups)
    return BatchSummary(
        count=count,
        success_count=(
            batch.success_count if batch.success_count is not None else findings.success_count
        ),
        error_count=error_count,
        skipped_count=findings.skipped_count,
        interrupted_count=findings.interrupted_count,
        item_records=recorded,
        partial=partial,
        execution_mode=batch.execution_mode,
        parallel=batch.parallel,
        max_concurrent=batch.max_concurrent,
        max_retries=batch.max_retries,
        retries_used=findings.retries_used,
        wall_ms=wall_ms,
        effective_parallelism=effective,
        efficiency=efficiency,
        timing=findings.timing,
        timing_source=findings.timing_source,
        slowest=findings.slowest,
        errors=groups,
        errors_more=more,
        unknown=unknown,
        workers=_workers(batch.items) if batch.items else [],
        time_split=batch_time_split(batch.items) if batch.items else None,
    )


def _workers(items: list[BatchItem]) -> list[WorkerShare]:
    """Items, failures and busy time per worker process; [] when no item left the process."""
    if list(map(attrgetter("host"), items)).count(None) == len(items):
        return []
    shares: dict[str, WorkerShare] = {}
    for item in items:
        name = item.place or "this process"
        share = shares.get(name)
        if share is None:
            share = shares[name] = WorkerShare(name, 0, 0, 0.0)
        share.items += 1
        share.failed += item.status == ITEM_FAILED
        share.busy_ms += item.duration_ms or 0.0
    for share in shares.values():
        share.busy_ms = round(share.busy_ms, 3)
    return [shares[name] for name in sorted(shares)]


def _without_item_records(batch: BatchInfo) -> _ItemFindings:
    """A batch known only from ``batch_metadata``: its reported errors, and what is missing."""
    findings = _ItemFindings(
        failures=[(error.message, error.index) for error in batch.reported_errors]
    )
    findings.unknown.append(
        "per-item records: absent (the trace keeps only batch_metadata), so item "
        "p50/p95, the slowest items and retries used cannot be known"
    )
    return findings


def _from_item_records(items: list[BatchItem], top: int) -> _ItemFindings:
    """Counts, item time, retries and failures from the per-item records.

    Skipped items never ran, so they count as skipped but add no time and no retries.
    """
    statuses = list(map(_status_of, items))
    status_counts = Counter(statuses)
    skipped_count = status_counts[ITEM_SKIPPED]
    ran = [item for item in items if item.status != ITEM_SKIPPED] if skipped_count else items
    findings = _ItemFindings(
        item_records=len(items),
        skipped_count=skipped_count,
        interrupted_count=status_counts[ITEM_INTERRUPTED],
        success_count=status_counts[ITEM_SUCCESS],
    )
    _add_item_timing(findings, ran, top)
    attempts = list(map(_attempts_of, ran))
    if None not in attempts:
        findings.retries_used = sum(attempts) - sum(map(bool, attempts))  # reused: 0 attempts
    else:
        findings.unknown.append("retries used: this trace does not record attempts per item")
    if status_counts[ITEM_FAILED]:
        failed = compress(items, map(eq, statuses, repeat(ITEM_FAILED)))
        findings.failures = [(item.error, item.index) for item in failed]
    return findings


def _add_item_timing(findings: _ItemFindings, ran: list[BatchItem], top: int) -> None:
    """Item time and the slowest items from the items that ran and recorded a duration."""
    durations_ms = list(map(_by_duration, ran))
    timed = ran
    if None in durations_ms:
        timed = [item for item in ran if item.duration_ms is not None]
        durations_ms = list(map(_by_duration, timed))
    if durations_ms:
        durations_ms.sort()  # a fresh list: sorted in place, summed in any order
        findings.timing = _timing_of_sorted(durations_ms)
        findings.timing_source = "items"
        findings.slowest = _slowest(timed, durations_ms, top)
    elif ran:
        findings.unknown.append("item durations: not recorded per item")


def _timing_of_sorted(sorted_durations_ms: list[float]) -> ItemTiming:
    """Total, average, extremes and percentiles of item durations sorted ascending."""
    total_ms = sum(sorted_durations_ms)
    return ItemTiming(
        total_items_ms=total_ms,
        avg_item_ms=total_ms / len(sorted_durations_ms),
        min_item_ms=sorted_durations_ms[0],
        max_item_ms=sorted_durations_ms[-1],
        p50_item_ms=percentile(sorted_durations_ms, 50),
        p95_item_ms=percentile(sorted_durations_ms, 95),
    )


def _reported_timing(reported_ms: dict[str, float]) -> ItemTiming:
    """Item time as ``batch_metadata`` reported it: no percentiles, since no items."""
    return ItemTiming(
        total_items_ms=reported_ms.get("total_items_ms"),
        avg_item_ms=reported_ms.get("avg_item_ms"),
        min_item_ms=reported_ms.get("min_item_ms"),
        max_item_ms=reported_ms.get("max_item_ms"),
    )


def _partial_batch_note(count: int | None, recorded: int) -> str:
    """The sentence for a batch that recorded fewer items than it had (or an unknown total)."""
    if count is None:
        return (
            f"batch size: only {recorded} item(s) were recorded before the batch stopped; "
            "the total is not in the trace"
        )
    return (
        f"{count - recorded} of {count} items: no record (the batch stopped before "
        "they ran or finished)"
    )


def _parallelism(
    total_items_ms: float | None, wall_ms: float | None, batch: BatchInfo
) -> tuple[float | None, float | None]:
    """(effective parallelism, efficiency): item time over wall time, and that over the cap.

    Efficiency is only defined for a parallel batch with a known ``max_concurrent``.
    """
    if total_items_ms is None or not wall_ms:
        return None, None
    effective = total_items_ms / wall_ms
    if batch.parallel and batch.max_concurrent:
        return effective, effective / batch.max_concurrent
    return effective, None


def _slowest(timed: list[BatchItem], sorted_durations_ms: list[float], top: int) -> list[SlowItem]:
    """The ``top`` slowest items, longest first; ties keep item order.

    The sorted durations give the threshold, so only items at or above it are looked at
    again: a comprehension over all items, then a sort of a handful.
    """
    if top <= 0:
        return []
    threshold_ms = sorted_durations_ms[-min(top, len(sorted_durations_ms))]
    candidates = [item for item in timed if item.duration_ms >= threshold_ms]
    candidates.sort(key=_by_duration, reverse=True)
    return [
        SlowItem(
            index=_index(item.index),
            item=preview(item.item, PREVIEW_CHARS),
            duration_ms=item.duration_ms,
            status=str(item.status),
            attempts=item.attempts,
            worker=item.worker,
        )
        for item in candidates[:top]
    ]


def group_errors(failures: Iterable[Failure], limit: int) -> tuple[list[ErrorGroup], int]:
    """Group failed items by the shape of their message (numbers, ids, hex, URLs and paths
    taken out): the ``limit`` largest groups, each with its first real message, and how many
    groups remain. A group whose messages are all the same keeps that message as its shape:
    only values that really differ from item to item are replaced."""
    # shape -> [count, first message, index of the first item, whether the messages differ]
    by_shape: dict[str, list[Any]] = {}
    shape_of: dict[str, str] = {}  # a batch repeats messages; each is shaped once
    for message, index in failures:
        if message is not None and not isinstance(message, str):
            message = json.dumps(message, default=str)
        text = (message or "").strip() or "(no error message)"
        shape = shape_of.get(text)
        if shape is None:
            shape = shape_of[text] = error_shape(text)
        entry = by_shape.get(shape)
        if entry is None:
            by_shape[shape] = [1, text, index, False]
        else:
            entry[0] += 1
            entry[3] = entry[3] or text != entry[1]
    # Stable sort: equal counts stay in the order their shape first appeared.
    ordered = sorted(by_shape.items(), key=lambda kv: -kv[1][0])
    groups = [
        ErrorGroup(example, count, _index(first), shape if varied else example)
        for shape, (count, example, first, varied) in ordered[:limit]
    ]
    return groups, max(0, len(ordered) - limit)


def _index(value: Any) -> int | None:
    """An item index for display: readers copy it as written, so a stray type becomes None."""
    return value if value.__class__ is int else None
