"""What if a batch had run with other lanes: replay its recorded items through a lane scheduler.

``show --what-if max_concurrent=N`` (or ``parallel=false``) predicts each batch's wall time,
and the run's, from the item durations the trace recorded. The scheduler is the ``threads``
executor's: N lanes, each taking the next item in index order as soon as it is free (so an
item goes to the lane that frees first). Each item costs what it cost when recorded: its span
(attempts, retry waits, overhead) plus the gap its lane had before it, the lane's own cost of
handing out an item (``time_us`` lane wait; the median over the batch's items that followed
another on their lane). Lanes start one after another (a thread copies the node chain before
its first item), so lane ``k`` is ready ``k`` lane start-ups after the batch starts, a
start-up being what the recording's lanes took. What else the batch spent outside its items
(its own start-up, collecting results) is taken as fixed: the replay of the recorded lanes is
compared with the recorded wall time, and the difference is added to every prediction, so the
recorded settings predict exactly what was recorded.

The one assumption, printed with every prediction: an item takes as long whatever the number
of lanes. A service that slows down under load, a rate limit (HTTP 429) or a lock make that
doubtful; items that failed that way are counted and named in the output.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from statistics import median

from pflow_trace.errors import UsageError
from pflow_trace.tracefile.model import BatchItem, TraceNode, TraceRun

#: What an item's error says when a service turned it away for going too fast.
_RATE_LIMITED = re.compile(r"\b429\b|rate.?limit|too many requests|throttl", re.IGNORECASE)
_MAX_LANES = 100_000

ASSUMPTION = (
    "assumes each item takes as long as it did when recorded, whatever the number of lanes, "
    "and that lanes take items in index order as the threads executor does"
)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The settings to replay with; None keeps what the batch had."""

    max_concurrent: int | None = None
    parallel: bool | None = None

    def describe(self) -> str:
        parts = []
        if self.max_concurrent is not None:
            parts.append(f"max_concurrent={self.max_concurrent}")
        if self.parallel is not None:
            parts.append(f"parallel={'true' if self.parallel else 'false'}")
        return ", ".join(parts)


def parse_what_if(expression: str) -> WhatIf:
    """``max_concurrent=N`` and/or ``parallel=true|false``, comma-separated."""
    max_concurrent: int | None = None
    parallel: bool | None = None
    for part in expression.split(","):
        name, equals, value = (text.strip() for text in part.partition("="))
        if not equals or not value:
            raise UsageError(
                f"--what-if: {part.strip()!r} is not NAME=VALUE "
                "(max_concurrent=N or parallel=true|false)"
            )
        if name == "max_concurrent":
            if not value.isdigit() or not 1 <= int(value) <= _MAX_LANES:
                raise UsageError(
                    f"--what-if: max_concurrent must be a whole number from 1 to {_MAX_LANES}, "
                    f"not {value!r}"
                )
            max_concurrent = int(value)
        elif name == "parallel":
            if value.lower() not in ("true", "false"):
                raise UsageError(f"--what-if: parallel must be true or false, not {value!r}")
            parallel = value.lower() == "true"
        else:
            raise UsageError(
                f"--what-if: unknown setting {name!r} (max_concurrent=N or parallel=true|false)"
            )
    return WhatIf(max_concurrent, parallel)


@dataclass(slots=True)
class BatchPrediction:
    node_id: str
    items: int
    recorded_lanes: int
    recorded_wall_ms: float
    lanes: int
    predicted_wall_ms: float
    #: Items that failed or retried with an error that names a rate limit.
    rate_limited: int = 0
    retried: int = 0


@dataclass(slots=True)
class RunPrediction:
    source: str
    what_if: str
    recorded_ms: float | None
    predicted_ms: float | None
    batches: list[BatchPrediction] = field(default_factory=list)
    #: Batch nodes the replay could not take (no per-item records, no wall time).
    skipped: list[str] = field(default_factory=list)
    assumption: str = ASSUMPTION
    #: Sentences saying why the assumption is doubtful for this run; empty when nothing does.
    doubts: list[str] = field(default_factory=list)


def lane_finish_ms(costs_ms: list[float], lanes: int, lane_start_ms: float = 0.0) -> float:
    """When the last of ``lanes`` lanes finishes, each taking the next item as it frees; lane
    ``k`` is ready ``k * lane_start_ms`` after the batch starts (lanes start one by one)."""
    free = [k * lane_start_ms for k in range(max(min(lanes, len(costs_ms)), 1))]
    for cost in costs_ms:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def _lane_costs_ms(items: list[BatchItem]) -> tuple[float, float]:
    """(a lane's cost between two of its items, the time one more lane takes to start).

    The first is the median lane wait of items that followed another on their lane; the
    second the latest lane's first wait over the lanes started before it (lanes start one
    after another). Both 0 when the trace has no lane waits.
    """
    first_waits: dict[int | None, float] = {}
    gaps: list[float] = []
    for item in sorted(items, key=lambda item: item.start_offset_ms or 0.0):
        if item.time_us is None:
            continue
        if item.worker in first_waits:
            gaps.append(item.time_us[0] / 1000)
        else:
            first_waits[item.worker] = item.time_us[0] / 1000
    lane_start = max(first_waits.values()) / (len(first_waits) - 1) if len(first_waits) > 1 else 0.0
    return (median(gaps) if gaps else 0.0), lane_start


def _recorded_lanes(node: TraceNode, items: list[BatchItem]) -> int:
    batch = node.batch
    assert batch is not None
    if batch.parallel is False:
        return 1
    if batch.max_concurrent:
        return batch.max_concurrent
    return len({item.worker for item in items}) or 1


def _lanes_for(what_if: WhatIf, node: TraceNode, recorded: int) -> int:
    assert node.batch is not None
    parallel = what_if.parallel if what_if.parallel is not None else node.batch.parallel
    if parallel is False:
        return 1
    if what_if.max_concurrent is not None:
        return what_if.max_concurrent
    return recorded


def predict_batch(node: TraceNode, what_if: WhatIf) -> BatchPrediction | None:
    """The batch's wall time under ``what_if``; None without per-item records or wall time."""
    batch = node.batch
    if batch is None or not batch.items or node.duration_ms is None:
        return None
    items = sorted(
        (item for item in batch.items if item.duration_ms is not None),
        key=lambda item: item.index if item.index is not None else 0,
    )
    if not items:
        return None
    gap, lane_start = _lane_costs_ms(items)
    costs = [(item.duration_ms or 0.0) + gap for item in items]
    recorded = _recorded_lanes(node, items)
    lanes = _lanes_for(what_if, node, recorded)
    fixed_ms = node.duration_ms - lane_finish_ms(costs, recorded, lane_start)
    predicted = max(lane_finish_ms(costs, lanes, lane_start) + fixed_ms, 0.0)
    errors = [item.error for item in items if item.error]
    return BatchPrediction(
        node_id=node.node_id,
        items=len(items),
        recorded_lanes=min(recorded, len(items)),
        recorded_wall_ms=node.duration_ms,
        lanes=min(lanes, len(items)),
        predicted_wall_ms=predicted,
        rate_limited=sum(1 for error in errors if _RATE_LIMITED.search(error)),
        retried=sum(1 for item in items if (item.attempts or 1) > 1),
    )


def predict_run(run: TraceRun, what_if: WhatIf) -> RunPrediction:
    """Every batch node of the run replayed under ``what_if``; the run's wall time changes by
    what its batches gain or lose (nodes run one after another)."""
    prediction = RunPrediction(run.source, what_if.describe(), run.duration_ms, run.duration_ms)
    change_ms = 0.0
    for node in run.nodes:
        if node.batch is None:
            continue
        batch = predict_batch(node, what_if)
        if batch is None:
            prediction.skipped.append(node.node_id)
            continue
        prediction.batches.append(batch)
        change_ms += batch.predicted_wall_ms - batch.recorded_wall_ms
    if run.duration_ms is not None:
        prediction.predicted_ms = max(run.duration_ms + change_ms, 0.0)
    prediction.doubts = _doubts(prediction.batches)
    return prediction


def _doubts(batches: list[BatchPrediction]) -> list[str]:
    doubts = []
    for batch in batches:
        if batch.rate_limited:
            doubts.append(
                f"batch {batch.node_id}: {batch.rate_limited} item(s) failed on a rate limit "
                "(429): more lanes would likely hit it more often, so the prediction is doubtful"
            )
        elif batch.retried and batch.lanes > batch.recorded_lanes:
            doubts.append(
                f"batch {batch.node_id}: {batch.retried} item(s) needed retries; if a service "
                "limited their rate, more lanes would retry more than recorded"
            )
    return doubts
