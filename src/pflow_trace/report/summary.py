"""The ``show`` summary: computed once, rendered many ways.

``stats.build_summary`` fills these classes from the trace model; the terminal table, the
plain text and ``--json`` are all renderings of the same object, so a new field is added here
once and cannot lag in one view. Field names are the JSON keys documented in
``docs/show-json.md`` and checked by ``schemas/show.schema.json``; renaming one is a breaking
change of that contract.

Times are milliseconds (``*_ms``); ``share`` and ``efficiency`` are fractions (0.5 = 50 %).
``None`` (JSON ``null``) always means "not known from this trace", never zero.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pflow_trace.report.llm_stats import LlmSummary

#: Identifies the JSON document; bumped only on an incompatible change (see docs/show-json.md).
SCHEMA_NAME = "pflow-trace/show"
SCHEMA_VERSION = 1


#: Every ``NodeSummary.status``, from best to worst outcome.
NODE_STATUSES = ("success", "degraded", "failed", "unfinished")


def node_status(
    finished: bool, success: bool, success_count: int | None, error_count: int | None
) -> str:
    """How a node ended, as every view shows it: the one rule, so no view can flatter a node.

    A batch whose items all failed is ``failed`` even when its node went on (``continue``) and
    its trace says ``success``: nothing it was asked to do was done. A batch with some failed
    items is ``degraded``. ``success_count`` None means the trace does not tell; then failed
    items make the node ``degraded``, never ``failed`` on a guess.
    """
    if not finished:
        return "unfinished"
    if not success:
        return "failed"
    if error_count:
        return "failed" if success_count == 0 else "degraded"
    return "success"


@dataclass(slots=True)
class ItemTiming:
    """Item durations of one batch: from per-item records, or as ``batch_metadata`` reported."""

    total_items_ms: float | None = None
    avg_item_ms: float | None = None
    min_item_ms: float | None = None
    max_item_ms: float | None = None
    p50_item_ms: float | None = None
    p95_item_ms: float | None = None


@dataclass(slots=True)
class SlowItem:
    """One of the ``--top`` slowest items of a batch."""

    index: int | None
    #: A one-line preview of the item, at most 60 characters.
    item: str
    duration_ms: float
    status: str
    attempts: int | None
    worker: int | None


@dataclass(slots=True)
class ErrorGroup:
    """Failed items whose error messages share one shape (values such as numbers taken out)."""

    #: The first real message of the group, as the trace holds it: the group's example.
    message: str
    count: int
    first_index: int | None
    #: The message with its varying values replaced (``bad value <n>``); see error_shapes.
    shape: str = ""


@dataclass(slots=True)
class WorkerShare:
    """What one worker process did for a batch whose items left the run's process."""

    #: The Dask worker's address, else ``host pid N`` (the processes executor).
    worker: str
    items: int
    failed: int
    #: Sum of its items' durations.
    busy_ms: float


@dataclass(slots=True)
class TimeSplit:
    """Where a batch's item time went, summed over its items (``docs/trace-format.md``):
    waiting for a lane, inside attempts, waiting between attempts, the runtime's overhead.
    They add up to ``wall_ms``; the provider's latency is part of the attempts."""

    #: Items the sums cover (those the trace recorded a split for).
    items: int
    lane_wait_ms: float
    attempts_ms: float
    retry_wait_ms: float
    overhead_ms: float
    #: lane wait + attempts + retry waits + overhead.
    wall_ms: float
    #: The provider's reported latency over the items that reported one; None when none did.
    provider_ms: float | None = None
    #: How many items reported a provider latency.
    provider_items: int = 0


@dataclass(slots=True)
class BatchSummary:
    """One batch node: counts, item time, parallelism, slowest items, errors, unknowns."""

    count: int
    success_count: int | None
    error_count: int | None
    #: Items never run because an earlier item failed (fail-fast); 0 when unknown.
    skipped_count: int
    #: Items cut short because the run was stopped (Ctrl-C, SIGTERM, SIGHUP).
    interrupted_count: int
    #: How many per-item records the trace holds (0 when it keeps only batch_metadata).
    item_records: int
    #: True when fewer items were recorded than the batch had (interrupted or failed batch).
    partial: bool
    execution_mode: str | None
    parallel: bool | None
    max_concurrent: int | None
    max_retries: int | None
    retries_used: int | None
    #: The batch node's own duration: the wall-clock time the whole batch took.
    wall_ms: float | None
    #: Sum of item time divided by wall time: how many items ran at once, on average.
    effective_parallelism: float | None
    #: effective_parallelism / max_concurrent, for parallel batches only.
    efficiency: float | None
    timing: ItemTiming
    #: "items" when computed from per-item records, "batch_metadata" when as reported.
    timing_source: str | None
    slowest: list[SlowItem] = field(default_factory=list)
    errors: list[ErrorGroup] = field(default_factory=list)
    #: Error groups left out of ``errors`` (the "+N more").
    errors_more: int = 0
    #: Plain sentences naming what this trace cannot tell about the batch.
    unknown: list[str] = field(default_factory=list)
    #: Items per worker process, by worker name; empty when the items ran on the run's threads.
    workers: list[WorkerShare] = field(default_factory=list)
    #: Where the item time went; None when the trace does not record it (older traces).
    time_split: TimeSplit | None = None


@dataclass(slots=True)
class LoopSummary:
    """A ``loop`` node's passes: how many ran, what ended the loop and each pass's outcome."""

    iterations: int
    #: ``condition`` (its ``while``/``until`` said stop), ``max_iterations`` (the cap) or
    #: ``failed`` (a pass failed); None when the trace does not say.
    stopped: str | None
    #: The condition's keyword, ``while`` or ``until``; None in traces that do not record it.
    keyword: str | None
    #: ``{"iteration", "status", "duration_ms", "error"}`` per pass, in order.
    passes: list[dict[str, Any]] = field(default_factory=list)

    def stopped_by(self) -> str:
        """What ended the loop, in words: ``until``, ``while``, ``the cap``, ``a failed pass``."""
        if self.stopped == "condition":
            return self.keyword or "its condition"
        if self.stopped == "max_iterations":
            return "the cap (max_iterations)"
        if self.stopped == "failed":
            return "a failed pass"
        return "nothing recorded"


@dataclass(slots=True)
class NodeSummary:
    """One node execution of a run, in run order."""

    order: int
    node_id: str
    node_type: str
    #: "success", "degraded" (some items failed, node went on), "failed" (also a batch whose
    #: every item failed) or "unfinished"; see :func:`node_status`.
    status: str
    #: The node's own success flag as the trace holds it; ``status`` is what to show.
    success: bool
    duration_ms: float | None
    #: Fraction of the run's duration spent in this node.
    share: float | None
    error: str | None
    batch: BatchSummary | None
    #: A node of a sub-workflow: the ``workflow`` steps that called it, outermost first; it
    #: is listed right after its caller. Empty at the top level.
    call_path: list[str] = field(default_factory=list)
    #: A ``loop`` node's passes; None for a node without a loop.
    loop: LoopSummary | None = None
    #: Each param the node read from a file: ``{"param", "path", "sha256", "bytes"}``.
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class RunSummary:
    """One run read from one trace file, with its nodes."""

    source: str
    format: str
    format_version: str | None
    workflow_name: str | None
    final_status: str | None
    start_time: str | None
    end_time: str | None
    duration_ms: float | None
    execution_id: str | None
    trace_id: str | None
    nodes_run: int
    nodes_failed: int
    error: str | None
    failed_node: str | None
    warnings: list[str]
    nodes: list[NodeSummary]
    #: The run's LLM calls (tokens, cost, quality signals); None when it made none.
    llm: LlmSummary | None = None
    #: A resumed run's batch items: items, reused, rerun, ok, failed; None otherwise.
    resume: dict[str, int] | None = None


@dataclass(slots=True)
class BatchAggregate:
    """Item time of one batch node, pooled over every run that recorded per-item times."""

    runs_with_items: int
    items: int
    p50_item_ms: float | None
    p95_item_ms: float | None


@dataclass(slots=True)
class NodeAggregate:
    """One node across every run of its workflow."""

    node_id: str
    node_type: str
    #: Executions of the node over all runs (a node that ran twice in a run counts twice).
    runs: int
    failures: int
    failure_rate: float
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_max_ms: float | None
    batch: BatchAggregate | None


@dataclass(slots=True)
class WorkflowAggregate:
    """One workflow across the runs read: outcomes, run time, and each node."""

    workflow_name: str
    runs: int
    status_counts: dict[str, int]
    #: Runs whose final status is "failed" (interrupted and degraded runs are not failures).
    failed_runs: int
    failure_rate: float
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_max_ms: float | None
    nodes: list[NodeAggregate]


@dataclass(slots=True)
class Aggregate:
    """Several runs side by side, grouped by workflow name."""

    runs: int
    workflows: list[WorkflowAggregate]


@dataclass(slots=True)
class ShowSummary:
    """Everything ``pflow-trace show`` prints, as data."""

    runs: list[RunSummary]
    #: Present when several runs were read.
    aggregate: Aggregate | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document as plain Python data (see docs/show-json.md)."""
        document: dict[str, Any] = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "runs": [asdict(run) for run in self.runs],
        }
        if self.aggregate is not None:
            document["aggregate"] = asdict(self.aggregate)
        return document

    def to_json(self, indent: int | None = 2) -> str:
        """The ``--json`` document as text; NaN is refused, since JSON has no such number."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)
