"""The report's comparison: several runs of one workflow, drawn from ``diff``'s own model.

For every workflow with at least two runs among the traces, the page gets:

- the runs, **newest first** (by start time, else the order given);
- the :class:`~pflow_trace.report.diff.RunDiff` of the newest run against the one before it,
  built by :func:`~pflow_trace.report.diff_build.build_diff` exactly as ``pflow-trace diff``
  builds it: a change is called slower, faster or costlier only when the diff calls it
  significant and larger than its minimum effect, and unequal runs carry its warnings. It is
  the history's last step (:func:`~pflow_trace.report.history.step_diffs`), computed once;
- the :class:`~pflow_trace.report.history.History` of all of them (oldest first, as a chart
  reads), from :func:`~pflow_trace.report.history.build_history`.

Nothing is compared here: this module only groups the runs and hands them to those two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pflow_trace.report.diff import RunDiff
from pflow_trace.report.history import History, build_history, step_diffs
from pflow_trace.tracefile.model import TraceRun

#: The name a run without one is grouped under.
UNNAMED = "(unnamed)"


@dataclass(slots=True)
class WorkflowComparison:
    """The runs of one workflow: the newest against the one before, and the history of all."""

    workflow_name: str
    #: Positions in the runs given (``ShowSummary.runs``), newest first.
    runs: list[int]
    diff: RunDiff
    history: History

    @property
    def base_run(self) -> int:
        return self.runs[1]

    @property
    def new_run(self) -> int:
        return self.runs[0]

    def to_dict(self) -> dict[str, Any]:
        """The page's data: the history's runs are ``runs`` reversed (oldest first)."""
        return {
            "workflow_name": self.workflow_name,
            "runs": list(self.runs),
            "base_run": self.base_run,
            "new_run": self.new_run,
            "diff": self.diff.to_dict(),
            "history": self.history.to_dict(),
        }


def compare_runs(runs: Sequence[TraceRun]) -> list[WorkflowComparison]:
    """One comparison per workflow that has at least two runs, in first-seen order."""
    by_workflow: dict[str, list[int]] = {}
    for position, run in enumerate(runs):
        by_workflow.setdefault(run.workflow_name or UNNAMED, []).append(position)
    comparisons = []
    for name, positions in by_workflow.items():
        if len(positions) < 2:
            continue
        oldest_first = sorted(positions, key=lambda at: (runs[at].start_time or "", at))
        ordered = [runs[at] for at in oldest_first]
        steps = step_diffs(ordered)  # the last is the newest run against the one before it
        comparisons.append(
            WorkflowComparison(
                workflow_name=name,
                runs=oldest_first[::-1],
                diff=steps[-1],
                history=build_history(ordered, steps=steps),
            )
        )
    return comparisons
