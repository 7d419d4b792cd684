"""What one side of a diff holds for each node: the samples the tests in ``diff_stats`` take.

A side is one or more runs; a node that ran in several of them (or several times in one) is
pooled: its items' durations, failures, retries, tokens and costs go into one sample, and its
wall time is one value per run. Nothing here decides anything: ``diff_build`` compares.

The node's status uses ``show``'s words (``success``, ``degraded``, ``failed``,
``unfinished``; see ``report/stats.py``), computed here from the trace model directly
rather than by building the whole ``show`` summary, which would read every item twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter

from pflow_trace.observe.llm_usage import call_cost, call_total_tokens
from pflow_trace.report.stats import callers_first
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SUCCESS,
    BatchInfo,
    BatchItem,
    TraceNode,
    TraceRun,
)

#: Item statuses that finished: they have a duration and count for the error rate.
_FINISHED = frozenset({ITEM_SUCCESS, ITEM_FAILED})
_status_of = attrgetter("status")
_duration_of = attrgetter("duration_ms")
_attempts_of = attrgetter("attempts")


@dataclass(slots=True)
class NodeSample:
    """One node over every run of one side."""

    node_id: str
    node_type: str
    batch: bool
    #: The node's status in each execution, in run order.
    statuses: list[str] = field(default_factory=list)
    #: The node's time in each run that ran it (executions in one run summed).
    wall_ms_per_run: list[float] = field(default_factory=list)
    #: Items per execution (batch nodes).
    item_counts: list[int] = field(default_factory=list)
    #: Durations of finished items (batch nodes), unsorted.
    item_durations_ms: list[float] = field(default_factory=list)
    #: Finished items (executions, for a node that is not a batch) and how many failed.
    finished: int = 0
    failed: int = 0
    #: Items that took more than one attempt; None when a trace does not record attempts.
    retried: int | None = 0
    tokens_per_call: list[float] = field(default_factory=list)
    cost_per_call: list[float] = field(default_factory=list)
    #: The node's known LLM cost in each run that ran it; empty when it made no priced call.
    cost_per_run: list[float] = field(default_factory=list)
    #: Each execution's item records, kept for matching items across the sides.
    executions_items: list[list[BatchItem]] = field(default_factory=list)


def node_samples(runs: Sequence[TraceRun]) -> dict[str, NodeSample]:
    """Every node id of the runs, in first-seen order, with its pooled sample."""
    samples: dict[str, NodeSample] = {}
    for run in runs:
        wall_this_run: dict[str, float] = {}
        cost_this_run: dict[str, float] = {}
        for node in callers_first(run.nodes):
            key = node.qualified_id
            sample = samples.get(key)
            if sample is None:
                sample = samples[key] = NodeSample(key, node.node_type, node.batch is not None)
            _add_execution(sample, node, cost_this_run)
            if node.duration_ms is not None:
                wall_this_run[key] = wall_this_run.get(key, 0.0) + (node.duration_ms)
        for node_id, wall_ms in wall_this_run.items():
            samples[node_id].wall_ms_per_run.append(wall_ms)
        for node_id, cost in cost_this_run.items():
            samples[node_id].cost_per_run.append(cost)
    return samples


def _add_execution(sample: NodeSample, node: TraceNode, cost_this_run: dict[str, float]) -> None:
    """One execution of the node into its sample: per-item records when the trace has them,
    else a batch's reported counts, else the node's own outcome."""
    batch = node.batch
    usages = [node.llm_usage] if node.llm_usage is not None else list(node.loop_calls)
    if batch is not None and batch.items is not None:
        failed_items = _add_items(sample, batch.items)
        sample.item_counts.append(batch.count if batch.count is not None else len(batch.items))
        sample.executions_items.append(batch.items)
        usages = [item.llm_usage for item in batch.items if item.llm_usage is not None]
    elif batch is not None and batch.count is not None:
        failed_items = _add_reported_counts(sample, batch)
    else:
        failed_items = 0
        if batch is not None:
            sample.retried = None
        if node.finished:
            sample.finished += 1
            sample.failed += not node.success
    sample.statuses.append(_status(node, failed_items))
    for usage in usages:
        sample.tokens_per_call.append(float(call_total_tokens(usage)))
        cost = call_cost(usage)
        if cost is not None:
            sample.cost_per_call.append(cost)
            cost_this_run[node.qualified_id] = cost_this_run.get(node.qualified_id, 0.0) + cost


def _add_reported_counts(sample: NodeSample, batch: BatchInfo) -> int:
    """A batch known only from ``batch_metadata`` (pflow's JSON): its counts, but no attempts
    and no item times. Returns how many items failed."""
    assert batch.count is not None
    sample.retried = None
    sample.item_counts.append(batch.count)
    failed = batch.error_count or 0
    succeeded = batch.success_count
    sample.finished += batch.count if succeeded is None else succeeded + failed
    sample.failed += failed
    return failed


def _add_items(sample: NodeSample, items: list[BatchItem]) -> int:
    """A batch execution's items into the sample; returns how many failed.

    Whole-list operations (``map`` over attribute getters, ``compress``), as in
    ``batch_stats``, so a 100,000-item batch costs no object and no branch per item.
    """
    statuses = list(map(_status_of, items))
    counts = Counter(statuses)
    finished = items
    if counts[ITEM_SUCCESS] + counts[ITEM_FAILED] != len(items):
        finished = list(compress(items, map(_FINISHED.__contains__, statuses)))
    sample.finished += len(finished)
    durations = list(map(_duration_of, finished))
    if None in durations:
        durations = [duration for duration in durations if duration is not None]
    sample.item_durations_ms.extend(durations)
    if sample.retried is not None:
        attempts = list(map(_attempts_of, finished))
        if None in attempts:
            sample.retried = None
        else:
            sample.retried += sum(map((1).__lt__, attempts))
    failed = counts[ITEM_FAILED]
    sample.failed += failed
    return failed


def _status(node: TraceNode, failed_items: int) -> str:
    """``show``'s status word for one execution."""
    if not node.finished:
        return "unfinished"
    if not node.success:
        return "failed"
    if failed_items or (node.batch is not None and node.batch.error_count):
        return "degraded"
    return "success"
