"""Several runs of one workflow side by side: per node, what got slower or faster.

Built from the run summaries ``show`` computes (:class:`~pflow_trace.report.summary.RunSummary`),
so a node's duration and item p50 here are exactly the figures ``show`` prints for each run.
The baseline is the workflow's earliest run (by start time, else the order given); every other
run is compared with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pflow_trace.report.summary import RunSummary

#: A change smaller than this fraction of the baseline is reported as "same".
SAME_WITHIN = 0.05


@dataclass(slots=True)
class NodeComparison:
    """One node across the runs of a workflow; lists are in the workflow's run order."""

    node_id: str
    #: The node's duration in each run (summed when it ran more than once); None if absent.
    duration_ms: list[float | None]
    #: A batch node's item p50 in each run.
    p50_item_ms: list[float | None]
    #: The last run against the baseline: last / first, and "slower", "faster" or "same".
    ratio: float | None
    change: str | None


@dataclass(slots=True)
class WorkflowComparison:
    """The runs of one workflow, oldest first, and each node across them."""

    workflow_name: str
    #: Positions in ``ShowSummary.runs``.
    runs: list[int]
    run_duration_ms: list[float | None]
    nodes: list[NodeComparison] = field(default_factory=list)


def compare_runs(runs: list[RunSummary]) -> list[WorkflowComparison]:
    """One comparison per workflow that has at least two runs."""
    by_workflow: dict[str, list[int]] = {}
    for position, run in enumerate(runs):
        by_workflow.setdefault(run.workflow_name or "(unnamed)", []).append(position)
    comparisons = []
    for name, positions in by_workflow.items():
        if len(positions) < 2:
            continue
        positions.sort(key=lambda at: (runs[at].start_time or "", at))
        comparisons.append(_compare_workflow(name, [runs[at] for at in positions], positions))
    return comparisons


def _compare_workflow(
    name: str, ordered: list[RunSummary], positions: list[int]
) -> WorkflowComparison:
    node_ids: list[str] = []
    for run in ordered:
        node_ids.extend(n.node_id for n in run.nodes if n.node_id not in node_ids)
    nodes = []
    for node_id in node_ids:
        durations = [_duration_ms(run, node_id) for run in ordered]
        p50s = [_p50_item_ms(run, node_id) for run in ordered]
        ratio, change = _change(durations[0], durations[-1])
        nodes.append(NodeComparison(node_id, durations, p50s, ratio, change))
    return WorkflowComparison(
        workflow_name=name,
        runs=positions,
        run_duration_ms=[run.duration_ms for run in ordered],
        nodes=nodes,
    )


def _duration_ms(run: RunSummary, node_id: str) -> float | None:
    """The node's time in the run; a node that ran several times counts all its executions."""
    known = [n.duration_ms for n in run.nodes if n.node_id == node_id]
    if not known or None in known:
        return None
    return sum(known)  # type: ignore[arg-type]


def _p50_item_ms(run: RunSummary, node_id: str) -> float | None:
    for node in run.nodes:
        if node.node_id == node_id and node.batch is not None:
            return node.batch.timing.p50_item_ms
    return None


def _change(first_ms: float | None, last_ms: float | None) -> tuple[float | None, str | None]:
    if first_ms is None or last_ms is None or first_ms <= 0:
        return None, None
    ratio = last_ms / first_ms
    if abs(ratio - 1) < SAME_WITHIN:
        return ratio, "same"
    return ratio, "slower" if ratio > 1 else "faster"
