"""The one place the ``show`` summary is computed: each run in full, and runs side by side.

``build_summary`` is what ``show`` and the benchmarks call; it turns the trace model into the
classes of :mod:`pflow_trace.report.summary`, which every rendering then draws. Per-batch
numbers come from :mod:`pflow_trace.report.batch_stats`, percentiles from
:mod:`pflow_trace.report.percentiles`.

Nothing here knows a file format: it reads :mod:`pflow_trace.tracefile.model` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pflow_trace.report.batch_stats import DEFAULT_ERROR_GROUPS, DEFAULT_TOP, summarize_batch
from pflow_trace.report.llm_stats import summarize_llm
from pflow_trace.report.percentiles import percentiles
from pflow_trace.report.summary import (
    Aggregate,
    BatchAggregate,
    LoopSummary,
    NodeAggregate,
    NodeSummary,
    RunSummary,
    ShowSummary,
    WorkflowAggregate,
    node_status,
)
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SKIPPED,
    ITEM_SUCCESS,
    BatchInfo,
    LoopInfo,
    TraceNode,
    TraceRun,
)


def build_summary(
    runs: Sequence[TraceRun],
    top: int = DEFAULT_TOP,
    error_groups: int = DEFAULT_ERROR_GROUPS,
) -> ShowSummary:
    """The whole ``show`` output as data; the aggregate only when several runs were read."""
    run_summaries = [summarize_run(run, top, error_groups) for run in runs]
    aggregate = aggregate_runs(runs) if len(runs) > 1 else None
    return ShowSummary(runs=run_summaries, aggregate=aggregate)


# -- one run -------------------------------------------------------------------------------------


def summarize_run(
    run: TraceRun, top: int = DEFAULT_TOP, error_groups: int = DEFAULT_ERROR_GROUPS
) -> RunSummary:
    """One run and each of its nodes; counts the trace leaves out are counted from the nodes."""
    duration_ms = _run_duration_ms(run)
    nodes = [
        _summarize_node(order, node, duration_ms, top, error_groups)
        for order, node in enumerate(callers_first(run.nodes), start=1)
    ]
    nodes_run = run.nodes_executed
    if nodes_run is None:
        nodes_run = sum(1 for node in run.nodes if node.finished)
    # A trace written before a batch with no successful item counted as failed says 0 here;
    # the nodes shown as failed are never more than the count shown.
    shown_failed = sum(1 for node in nodes if node.status == "failed")
    nodes_failed = max(run.nodes_failed or 0, shown_failed)
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
        llm=summarize_llm(run, top),
        resume=run.resume,
    )


def callers_first(nodes: Sequence[TraceNode]) -> list[TraceNode]:
    """The nodes in run order, each sub-workflow's nodes right after the step that called them.

    A trace lists a node when it finishes, so a child comes before its caller there; a child is
    matched to its caller by ``caller_span_id`` (exact also when one step ran several times).
    A child whose caller is not in the trace (a cut-off run) stays where it was.
    """
    span_ids = {node.span_id for node in nodes if node.span_id}
    children: dict[str, list[TraceNode]] = {}
    for node in nodes:
        if node.caller_span_id in span_ids:
            children.setdefault(str(node.caller_span_id), []).append(node)
    ordered: list[TraceNode] = []
    stack = [node for node in reversed(nodes) if node.caller_span_id not in span_ids]
    while stack:
        node = stack.pop()
        ordered.append(node)
        stack.extend(reversed(children.get(node.span_id or "", [])))
    return ordered


def _summarize_node(
    order: int, node: TraceNode, run_ms: float | None, top: int, error_groups: int
) -> NodeSummary:
    """One node of a run, its batch numbers included; ``run_ms`` gives its share of the run."""
    batch = None
    if node.batch is not None:
        batch = summarize_batch(node.batch, node.duration_ms, top, error_groups)
    share = None
    if run_ms and node.duration_ms is not None:
        share = node.duration_ms / run_ms
    return NodeSummary(
        order=order,
        node_id=node.node_id,
        node_type=node.node_type,
        status=(
            _node_status(node, batch.success_count, batch.error_count, batch.count)
            if batch is not None
            else _node_status(node, None, None, None)
        ),
        success=node.success,
        duration_ms=node.duration_ms,
        share=share,
        error=node.error,
        batch=batch,
        call_path=list(node.call_path),
        loop=_loop_summary(node.loop) if node.loop is not None else None,
        files=[dict(ref) for ref in node.files],
    )


def _loop_summary(loop: LoopInfo) -> LoopSummary:
    passes = [
        {
            "iteration": one.iteration,
            "status": one.status,
            "duration_ms": one.duration_ms,
            "error": one.error,
        }
        for one in loop.passes
    ]
    return LoopSummary(loop.iterations, loop.stopped, loop.keyword, passes)


def _node_status(
    node: TraceNode, success_count: int | None, error_count: int | None, count: int | None
) -> str:
    """The node's status by :func:`node_status`; a batch of which every item failed has no
    successes even when the trace leaves ``success_count`` out."""
    if success_count is None and error_count and count is not None and error_count >= count:
        success_count = 0
    return node_status(node.finished, node.success, success_count, error_count)


def _run_duration_ms(run: TraceRun) -> float | None:
    """The run's recorded duration, else end minus start when the trace has both times."""
    if run.duration_ms is not None:
        return run.duration_ms
    return _elapsed_ms(run.start_time, run.end_time)


def _elapsed_ms(start: str | None, end: str | None) -> float | None:
    """End minus start when both parse; naive and offset-aware times are not mixed."""
    if not start or not end:
        return None
    try:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
        return (finish - begin).total_seconds() * 1000
    except (ValueError, TypeError):
        return None


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
    """One workflow's runs: how they ended, how long they took, and each node across them."""
    status_counts: dict[str, int] = {}
    durations_ms = []
    for run in runs:
        status = run.final_status or "unknown"
        status_counts[status] = status_counts.get(status, 0) + 1
        duration_ms = _run_duration_ms(run)
        if duration_ms is not None:
            durations_ms.append(duration_ms)
    p50_ms, p95_ms = percentiles(durations_ms, (50, 95))
    failed = status_counts.get("failed", 0)

    executions: dict[str, list[TraceNode]] = {}
    for run in runs:
        for node in callers_first(run.nodes):
            executions.setdefault(node.qualified_id, []).append(node)
    nodes = [_aggregate_node(node_id, group) for node_id, group in executions.items()]
    return WorkflowAggregate(
        workflow_name=name,
        runs=len(runs),
        status_counts=status_counts,
        failed_runs=failed,
        failure_rate=failed / len(runs),
        duration_p50_ms=p50_ms,
        duration_p95_ms=p95_ms,
        duration_max_ms=max(durations_ms) if durations_ms else None,
        nodes=nodes,
    )


def _aggregate_node(node_id: str, executions: list[TraceNode]) -> NodeAggregate:
    """One node over every run it ran in: failure rate, duration percentiles, item time."""
    failures = sum(1 for node in executions if _failed(node))
    durations_ms = [node.duration_ms for node in executions if node.duration_ms is not None]
    p50_ms, p95_ms = percentiles(durations_ms, (50, 95))
    batches = [node.batch for node in executions if node.batch is not None]
    return NodeAggregate(
        node_id=node_id,
        node_type=executions[0].node_type,
        runs=len(executions),
        failures=failures,
        failure_rate=failures / len(executions),
        duration_p50_ms=p50_ms,
        duration_p95_ms=p95_ms,
        duration_max_ms=max(durations_ms) if durations_ms else None,
        batch=_aggregate_batches(batches) if batches else None,
    )


def _failed(node: TraceNode) -> bool:
    """Whether the node counts as failed, by the rule ``status`` follows in one run."""
    info = node.batch
    if info is None:
        return _node_status(node, None, None, None) == "failed"
    success_count, error_count = info.success_count, info.error_count
    if info.items is not None:
        statuses = [item.status for item in info.items]
        if success_count is None:
            success_count = statuses.count(ITEM_SUCCESS)
        if error_count is None:
            error_count = statuses.count(ITEM_FAILED)
    return _node_status(node, success_count, error_count, info.count) == "failed"


def _aggregate_batches(batches: list[BatchInfo]) -> BatchAggregate:
    """Item durations pooled over the runs that recorded items; skipped items never ran."""
    pooled_ms: list[float] = []
    runs_with_items = 0
    for info in batches:
        if info.items is None:
            continue
        runs_with_items += 1
        pooled_ms.extend(
            d
            for item in info.items
            if (d := item.duration_ms) is not None and item.status != ITEM_SKIPPED
        )
    item_p50_ms, item_p95_ms = percentiles(pooled_ms, (50, 95))
    return BatchAggregate(
        runs_with_items=runs_with_items,
        items=len(pooled_ms),
        p50_item_ms=item_p50_ms,
        p95_item_ms=item_p95_ms,
    )
