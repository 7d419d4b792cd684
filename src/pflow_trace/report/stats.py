"""Statistics over the trace model, and the one place the ``show`` summary is computed.

Percentiles use linear interpolation between closest ranks, the definition numpy uses by
default (``method="linear"``) and ``statistics.quantiles(..., method="inclusive")`` matches:
for sorted values ``x[0..n-1]`` the p-th percentile sits at rank ``h = (n - 1) * p / 100``
and is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``. It never invents a
value outside the data, and p0 / p100 are the minimum / maximum. With one value every
percentile is that value; with none it is ``None``.

Nothing here knows a file format: it reads :mod:`pflow_trace.tracefile.model` only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, eq
from typing import Any

from pflow_trace.report.summary import (
    Aggregate,
    BatchAggregate,
    BatchSummary,
    ErrorGroup,
    ItemTiming,
    NodeAggregate,
    NodeSummary,
    RunSummary,
    ShowSummary,
    SlowItem,
    WorkflowAggregate,
)
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SKIPPED,
    ITEM_SUCCESS,
    BatchInfo,
    BatchItem,
    TraceRun,
)

DEFAULT_TOP = 5
#: Error groups listed per batch before "+N more".
DEFAULT_ERROR_GROUPS = 5
PREVIEW_CHARS = 60

_by_duration = attrgetter("duration_ms")
_status_of = attrgetter("status")
_attempts_of = attrgetter("attempts")


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of already sorted values, by linear interpolation."""
    n = len(sorted_values)
    if n == 0:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    rank = (n - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + fraction * (sorted_values[high] - sorted_values[low])


def percentiles(values: Iterable[float], ps: Sequence[float]) -> list[float | None]:
    """Several percentiles of unsorted values, sorting once."""
    ordered = sorted(values)
    return [percentile(ordered, p) for p in ps]


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line preview of an item: strings as they are, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- one run -------------------------------------------------------------------------------------


def build_summary(
    runs: Sequence[TraceRun],
    top: int = DEFAULT_TOP,
    error_groups: int = DEFAULT_ERROR_GROUPS,
) -> ShowSummary:
    """The whole ``show`` output as data; the aggregate only when several runs were read."""
    run_summaries = [summarize_run(run, top, error_groups) for run in runs]
    aggregate = aggregate_runs(runs) if len(runs) > 1 else None
    return ShowSummary(runs=run_summaries, aggregate=aggregate)


def summarize_run(
    run: TraceRun, top: int = DEFAULT_TOP, error_groups: int = DEFAULT_ERROR_GROUPS
) -> RunSummary:
    duration_ms = run.duration_ms
    if duration_ms is None:
        duration_ms = _elapsed_ms(run.start_time, run.end_time)
    nodes = []
    for order, node in enumerate(run.nodes, start=1):
        batch = None
        if node.batch is not None:
            batch = summarize_batch(node.batch, node.duration_ms, top, error_groups)
        if not node.finished:
            status = "unfinished"
        elif not node.success:
            status = "failed"
        elif batch is not None and batch.error_count:
            status = "degraded"
        else:
            status = "success"
        share = None
        if duration_ms and node.duration_ms is not None:
            share = node.duration_ms / duration_ms
        nodes.append(
            NodeSummary(
                order=order,
                node_id=node.node_id,
                node_type=node.node_type,
                status=status,
                success=node.success,
                duration_ms=node.duration_ms,
                share=share,
                error=node.error,
                batch=batch,
            )
        )
    nodes_run = run.nodes_executed
    if nodes_run is None:
        nodes_run = sum(1 for node in run.nodes if node.finished)
    nodes_failed = run.nodes_failed
    if nodes_failed is None:
        nodes_failed = sum(1 for node in nodes if node.status == "failed")
    return RunSummary(
        source=run.source,
        format=run.format,
        format_version=run.format_version,
        workflow_name=run.workflow_name,
        final_status=run.final_status,
        start_time=run.start_time,
        end_time=run.end_time,
        duration_ms=duration_ms,
        execution_id=run.execution_id,
        trace_id=run.trace_id,
        nodes_run=nodes_run,
        nodes_failed=nodes_failed,
        error=run.error,
        failed_node=run.failed_node,
        warnings=list(run.warnings),
        nodes=nodes,
    )


def summarize_batch(
    batch: BatchInfo,
    wall_ms: float | None,
    top: int = DEFAULT_TOP,
    error_groups: int = DEFAULT_ERROR_GROUPS,
) -> BatchSummary:
    """One batch node's numbers, from per-item records where the trace has them.

    Written as whole-list operations (``map`` with ``attrgetter``, a ``Counter``, one sort)
    rather than one loop with branches: each runs at C speed over the items, which keeps a
    100,000-item batch well inside the benchmark's budget.
    """
    items = batch.items
    unknown: list[str] = []
    timing = ItemTiming()
    timing_source = None
    slowest: list[SlowItem] = []
    retries_used = None
    skipped = 0
    recorded = 0
    success_from_items = None
    if items is not None:
        recorded = len(items)
        statuses = list(map(_status_of, items))
        status_counts = Counter(statuses)
        skipped = status_counts[ITEM_SKIPPED]
        success_from_items = status_counts[ITEM_SUCCESS]
        ran = [item for item in items if item.status != ITEM_SKIPPED] if skipped else items
        durations = list(map(_by_duration, ran))
        timed = ran
        if None in durations:
            timed = [item for item in ran if item.duration_ms is not None]
            durations = list(map(_by_duration, timed))
        if durations:
            ordered = durations  # a fresh list: sorted in place, summed in any order
            ordered.sort()
            total = sum(ordered)
            timing = ItemTiming(
                total_items_ms=total,
                avg_item_ms=total / len(ordered),
                min_item_ms=ordered[0],
                max_item_ms=ordered[-1],
                p50_item_ms=percentile(ordered, 50),
                p95_item_ms=percentile(ordered, 95),
            )
            timing_source = "items"
            slowest = _slowest(timed, ordered, top)
        elif ran:
            unknown.append("item durations: not recorded per item")
        attempts = list(map(_attempts_of, ran))
        if None not in attempts:
            retries_used = sum(attempts) - len(attempts)
        else:
            unknown.append("retries used: this trace does not record attempts per item")
        failures = []
        if status_counts[ITEM_FAILED]:
            failed = compress(items, map(eq, statuses, repeat(ITEM_FAILED)))
            failures = [(item.error, item.index) for item in failed]
    else:
        failures = [(error.message, error.index) for error in batch.reported_errors]
        unknown.append(
            "per-item records: absent (the trace keeps only batch_metadata), so item "
            "p50/p95, the slowest items and retries used cannot be known"
        )
    if timing_source is None and batch.reported_timing_ms:
        reported = batch.reported_timing_ms
        timing = ItemTiming(
            total_items_ms=reported.get("total_items_ms"),
            avg_item_ms=reported.get("avg_item_ms"),
            min_item_ms=reported.get("min_item_ms"),
            max_item_ms=reported.get("max_item_ms"),
        )
        timing_source = "batch_metadata"

    count = batch.count if batch.count is not None else recorded
    partial = items is not None and (batch.count is None or recorded < batch.count)
    if partial:
        if batch.count is None:
            unknown.append(
                f"batch size: only {recorded} item(s) were recorded before the batch stopped; "
                "the total is not in the trace"
            )
        else:
            unknown.append(
                f"{count - recorded} of {count} items: no record (the batch stopped before "
                "they ran or finished)"
            )
    success_count = batch.success_count
    if success_count is None:
        success_count = success_from_items
    error_count = batch.error_count
    if error_count is None and items is not None:
        error_count = len(failures)

    effective = efficiency = None
    total_ms = timing.total_items_ms
    if total_ms is not None and wall_ms:
        effective = total_ms / wall_ms
        if batch.parallel and batch.max_concurrent:
            efficiency = effective / batch.max_concurrent
    elif wall_ms is None:
        unknown.append("wall time: the node's duration is not in the trace")

    groups, more = group_errors(failures, error_groups)
    return BatchSummary(
        count=count,
        success_count=success_count,
        error_count=error_count,
        skipped_count=skipped,
        item_records=recorded,
        partial=partial,
        execution_mode=batch.execution_mode,
        parallel=batch.parallel,
        max_concurrent=batch.max_concurrent,
        max_retries=batch.max_retries,
        retries_used=retries_used,
        wall_ms=wall_ms,
        effective_parallelism=effective,
        efficiency=efficiency,
        timing=timing,
        timing_source=timing_source,
        slowest=slowest,
        errors=groups,
        errors_more=more,
        unknown=unknown,
    )


def _slowest(timed: list[BatchItem], ordered: list[float], top: int) -> list[SlowItem]:
    """The ``top`` slowest items, longest first; ties keep item order.

    The sorted durations give the threshold, so only items at or above it are looked at
    again: a comprehension over all items, then a sort of a handful.
    """
    if top <= 0:
        return []
    threshold = ordered[-min(top, len(ordered))]
    candidates = [item for item in timed if item.duration_ms >= threshold]
    candidates.sort(key=_by_duration, reverse=True)
    return [
        SlowItem(
            index=_index(item.index),
            item=preview(item.item),
            duration_ms=item.duration_ms,
            status=str(item.status),
            attempts=item.attempts,
            worker=item.worker,
        )
        for item in candidates[:top]
    ]


def group_errors(
    failures: Iterable[tuple[str | None, int | None]], limit: int
) -> tuple[list[ErrorGroup], int]:
    """Group failed items by message: the ``limit`` most frequent, and how many groups remain."""
    counts: dict[str, list[Any]] = {}
    for message, index in failures:
        if message is not None and not isinstance(message, str):
            message = json.dumps(message, default=str)
        key = (message or "").strip() or "(no error message)"
        entry = counts.get(key)
        if entry is None:
            counts[key] = [1, index]
        else:
            entry[0] += 1
    # Stable sort: equal counts stay in the order their message first appeared.
    ordered = sorted(counts.items(), key=lambda kv: -kv[1][0])
    groups = [
        ErrorGroup(message, count, _index(first)) for message, (count, first) in ordered[:limit]
    ]
    return groups, max(0, len(ordered) - limit)


# -- many runs -----------------------------------------------------------------------------------


def aggregate_runs(runs: Sequence[TraceRun]) -> Aggregate:
    """Per workflow and node across runs: counts, failure rates and duration percentiles."""
    by_workflow: dict[str, list[TraceRun]] = {}
    for run in runs:
        by_workflow.setdefault(run.workflow_name or "(unnamed)", []).append(run)
    return Aggregate(
        runs=len(runs),
        workflows=[_aggregate_workflow(name, group) for name, group in by_workflow.items()],
    )


def _aggregate_workflow(name: str, runs: list[TraceRun]) -> WorkflowAggregate:
    status_counts: dict[str, int] = {}
    durations = []
    for run in runs:
        status = run.final_status or "unknown"
        status_counts[status] = status_counts.get(status, 0) + 1
        duration = run.duration_ms
        if duration is None:
            duration = _elapsed_ms(run.start_time, run.end_time)
        if duration is not None:
            durations.append(duration)
    p50, p95 = percentiles(durations, (50, 95))
    failed = status_counts.get("failed", 0)

    executions: dict[str, list[Any]] = {}
    for run in runs:
        for node in run.nodes:
            executions.setdefault(node.node_id, []).append(node)
    nodes = [_aggregate_node(node_id, group) for node_id, group in executions.items()]
    return WorkflowAggregate(
        workflow_name=name,
        runs=len(runs),
        status_counts=status_counts,
        failed_runs=failed,
        failure_rate=failed / len(runs),
        duration_p50_ms=p50,
        duration_p95_ms=p95,
        duration_max_ms=max(durations) if durations else None,
        nodes=nodes,
    )


def _aggregate_node(node_id: str, executions: list[Any]) -> NodeAggregate:
    failures = sum(1 for node in executions if node.finished and not node.success)
    durations = [node.duration_ms for node in executions if node.duration_ms is not None]
    p50, p95 = percentiles(durations, (50, 95))
    batch = None
    batches = [node.batch for node in executions if node.batch is not None]
    if batches:
        pooled: list[float] = []
        with_items = 0
        for info in batches:
            if info.items is None:
                continue
            with_items += 1
            pooled.extend(
                d
                for item in info.items
                if (d := item.duration_ms) is not None and item.status != ITEM_SKIPPED
            )
        item_p50, item_p95 = percentiles(pooled, (50, 95))
        batch = BatchAggregate(
            runs_with_items=with_items,
            items=len(pooled),
            p50_item_ms=item_p50,
            p95_item_ms=item_p95,
        )
    return NodeAggregate(
        node_id=node_id,
        node_type=executions[0].node_type,
        runs=len(executions),
        failures=failures,
        failure_rate=failures / len(executions),
        duration_p50_ms=p50,
        duration_p95_ms=p95,
        duration_max_ms=max(durations) if durations else None,
        batch=batch,
    )


def _index(value: Any) -> int | None:
    """An item index for display: readers copy it as written, so a stray type becomes None."""
    return value if value.__class__ is int else None


def _elapsed_ms(start: str | None, end: str | None) -> float | None:
    """End minus start when both parse; naive and offset-aware times are not mixed."""
    if not start or not end:
        return None
    try:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
        return (finish - begin).total_seconds() * 1000
    except (ValueError, TypeError):
        return None
