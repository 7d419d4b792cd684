"""``pflow-trace history``: one workflow's runs in time order, and where each node changed.

For every node: its time (item p95 for a batch node, its wall time otherwise), its error rate
and its cost in each run, and the steps between consecutive runs that ``diff`` calls a change
(the same tests and minimum effects: see :mod:`pflow_trace.report.diff_build`). The first
such step is where a change started. Built from the trace model only; the text view is
:func:`render_history_text`, the JSON view ``History.to_json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pflow_trace.errors import UsageError
from pflow_trace.report.diff import DiffSettings, RunDiff
from pflow_trace.report.diff_build import build_diff
from pflow_trace.report.diff_samples import node_samples
from pflow_trace.report.percentiles import percentile
from pflow_trace.text import format_duration_ms, terminal_safe
from pflow_trace.tracefile.model import TraceRun

SCHEMA_NAME = "pflow-trace/history"
SCHEMA_VERSION = 1
#: The metrics a history follows (``MetricDiff.metric`` names).
TRACKED = ("p95_ms", "wall_ms", "error_rate", "cost_usd")
SPARK_BARS = "▁▂▃▄▅▆▇█"
#: Drawn for a run in which the node did not run or the figure is unknown.
SPARK_GAP = "·"


@dataclass(slots=True)
class HistoryRun:
    source: str
    start_time: str | None
    final_status: str | None
    duration_ms: float | None


@dataclass(slots=True)
class TrendStep:
    """A step between run ``run - 1`` and run ``run`` that the diff called a change."""

    metric: str
    #: Position in ``History.runs`` of the run where the change shows first.
    run: int
    verdict: str
    change: float | None
    change_relative: float | None


@dataclass(slots=True)
class NodeTrend:
    """One node across the runs; a list holds one value per run (None: not run or unknown)."""

    node_id: str
    node_type: str
    batch: bool
    #: Item p95 (batch nodes) per run.
    p95_ms: list[float | None] = field(default_factory=list)
    wall_ms: list[float | None] = field(default_factory=list)
    error_rate: list[float | None] = field(default_factory=list)
    errors: list[int | None] = field(default_factory=list)
    cost_usd: list[float | None] = field(default_factory=list)
    #: Every step called a change, oldest first; the first per metric is where it started.
    steps: list[TrendStep] = field(default_factory=list)

    def first_step(self, metric: str) -> TrendStep | None:
        return next((step for step in self.steps if step.metric == metric), None)


@dataclass(slots=True)
class History:
    workflow_name: str
    runs: list[HistoryRun]
    nodes: list[NodeTrend]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, **asdict(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)


def pick_workflow(runs: Sequence[TraceRun], workflow_name: str | None) -> list[TraceRun]:
    """The runs of ``workflow_name`` (default: the newest run's workflow), oldest first."""
    ordered = sorted(runs, key=lambda run: (run.start_time or "", run.source))
    if not ordered:
        raise UsageError("history: no runs to read")
    name = workflow_name if workflow_name is not None else ordered[-1].workflow_name
    chosen = [run for run in ordered if run.workflow_name == name]
    if not chosen:
        known = ", ".join(sorted({str(run.workflow_name) for run in ordered}))
        raise UsageError(f"history: no runs of workflow {name!r} (found: {known})")
    return chosen


def step_diffs(runs: Sequence[TraceRun], settings: DiffSettings | None = None) -> list[RunDiff]:
    """The diff of each run against the one before it (``runs`` oldest first)."""
    settings = settings or DiffSettings()
    return [build_diff([runs[at - 1]], [runs[at]], settings) for at in range(1, len(runs))]


def build_history(
    runs: Sequence[TraceRun],
    settings: DiffSettings | None = None,
    steps: Sequence[RunDiff] | None = None,
) -> History:
    """The trend of every node over ``runs`` (one workflow, oldest first). ``steps`` are
    :func:`step_diffs` of the same runs when the caller has them already (the report shows
    the last one), else they are computed here."""
    settings = settings or DiffSettings()
    nodes: dict[str, NodeTrend] = {}
    for position, run in enumerate(runs):
        for node_id, sample in node_samples([run]).items():
            trend = nodes.get(node_id)
            if trend is None:
                trend = nodes[node_id] = NodeTrend(node_id, sample.node_type, sample.batch)
                _pad(trend, position)
            durations = sorted(sample.item_durations_ms)
            trend.p95_ms.append(percentile(durations, 95) if durations else None)
            trend.wall_ms.append(sum(sample.wall_ms_per_run) if sample.wall_ms_per_run else None)
            trend.errors.append(sample.failed)
            trend.error_rate.append(sample.failed / sample.finished if sample.finished else None)
            trend.cost_usd.append(sum(sample.cost_per_run) if sample.cost_per_run else None)
        for trend in nodes.values():
            _pad(trend, position + 1)
    for position, step in enumerate(steps or step_diffs(runs, settings), start=1):
        for node in step.nodes:
            for metric in node.metrics:
                if metric.metric in TRACKED and metric.verdict not in ("no change", "untested"):
                    nodes[node.node_id].steps.append(
                        TrendStep(
                            metric.metric,
                            position,
                            metric.verdict,
                            metric.change,
                            metric.change_relative,
                        )
                    )
    history_runs = [
        HistoryRun(run.source, run.start_time, run.final_status, run.duration_ms) for run in runs
    ]
    return History(str(runs[0].workflow_name), history_runs, list(nodes.values()))


def _pad(trend: NodeTrend, length: int) -> None:
    """Fill the node's lists with None up to ``length`` runs (runs it was not in)."""
    for values in (trend.p95_ms, trend.wall_ms, trend.error_rate, trend.errors, trend.cost_usd):
        values.extend([None] * (length - len(values)))


def sparkline(values: Sequence[float | None]) -> str:
    """One bar per value, scaled between the smallest and largest; a gap where unknown."""
    known = [value for value in values if value is not None]
    if not known:
        return SPARK_GAP * len(values)
    low, high = min(known), max(known)
    span = high - low
    top = len(SPARK_BARS) - 1
    return "".join(
        SPARK_GAP if value is None else SPARK_BARS[round((value - low) / span * top) if span else 0]
        for value in values
    )


def render_history_text(history: History) -> str:
    """Per node: a sparkline and the latest value of each figure, and where changes started."""
    safe = terminal_safe
    runs = history.runs
    lines = [f"workflow {safe(history.workflow_name)}: {len(runs)} run(s), oldest first"]
    if runs:
        lines.append(f"  from {safe(runs[0].source)}")
        lines.append(f"  to   {safe(runs[-1].source)}")
    for node in history.nodes:
        lines += ["", f"node {safe(node.node_id)} ({safe(node.node_type)})"]
        time_metric, times = ("p95_ms", node.p95_ms) if node.batch else ("wall_ms", node.wall_ms)
        label = "item p95" if node.batch else "wall"
        rows = [
            (label, sparkline(times), format_duration_ms(_last(times)), time_metric),
            ("errors", sparkline(node.error_rate), _rate(_last(node.error_rate)), "error_rate"),
        ]
        if any(cost is not None for cost in node.cost_usd):
            cost = _last(node.cost_usd)
            rows.append(("cost", sparkline(node.cost_usd), _dollars(cost), "cost_usd"))
        for name, line, latest, metric in rows:
            started = node.first_step(metric)
            note = ""
            if started is not None:
                where = safe(runs[started.run].source)
                note = f"  {started.verdict} from run {started.run + 1} ({where})"
            lines.append(f"  {name:<9} {line}  latest {latest}{note}")
    return "\n".join(lines) + "\n"


def _last(values: Sequence[float | None]) -> float | None:
    return next((value for value in reversed(values) if value is not None), None)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _dollars(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"
