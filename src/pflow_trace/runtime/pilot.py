"""``run --pilot K``: each batch runs K random items first, projects the rest, then asks.

Why in the batch layer: a batch's items are only known once the nodes before it have run, and a
later batch's items are the results of an earlier one, so a pilot of every batch *before* the
run cannot exist without paying for the earlier batches in full. Here each batch pilots itself
just before the rest of its items run: the K pilot items (chosen with a seeded
:class:`random.Random`, the same seed and node giving the same items) run for real, the
projection of the remaining items' wall time and LLM cost is handed to the run's
:class:`PilotPlan` ``confirm`` callback, and only when it says yes do the others run, in the
same batch. The pilot's results are that batch's results, so nothing is paid twice. A "no"
stops the run as an interruption: the trace and checkpoint keep the pilot items, and
``pflow-trace resume TRACE`` takes them instead of running them again.

The projection treats the pilot as a simple random sample of the batch's items (drawn without
replacement): the rest's total is ``M * mean`` with a Student-t interval whose half-width is
``t * sd * sqrt(N * M / K)`` (the finite-population form for a total of the ``M`` unsampled
items out of ``N``); wall time divides the items' time by the lanes the batch has. K < 2 gives
a point figure and no interval.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pflow_trace.errors import RunInterrupted
from pflow_trace.observe.facts import ItemOutcome
from pflow_trace.observe.llm_usage import call_cost

#: Two-sided 95% Student-t quantiles by degrees of freedom; past 30 the normal's 1.96 is close.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(degrees: int) -> float:
    """The two-sided 95% quantile of Student's t with ``degrees`` degrees of freedom."""
    return _T95[degrees - 1] if 1 <= degrees <= len(_T95) else 1.96


@dataclass(frozen=True, slots=True)
class Range:
    """A projected figure: the point estimate and its 95% interval (None: no interval)."""

    estimate: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def project_total(sample: Sequence[float], population: int) -> Range:
    """The total of the ``population - len(sample)`` items not sampled, from the sample."""
    k = len(sample)
    rest = population - k
    if k == 0 or rest <= 0:
        return Range(0.0, 0.0, 0.0)
    mean = statistics.fmean(sample)
    estimate = rest * mean
    if k < 2:
        return Range(estimate, None, None)
    half = t95(k - 1) * statistics.stdev(sample) * math.sqrt(population * rest / k)
    return Range(estimate, max(0.0, estimate - half), estimate + half)


@dataclass(slots=True)
class PilotProjection:
    """What a batch's pilot measured and what it projects for the rest of the batch."""

    node_id: str
    seed: int
    indices: list[int]
    item_count: int
    remaining: int
    lanes: int
    failed: int
    pilot_ms: float
    pilot_cost_usd: float | None
    #: The remaining items' wall time (ms) at the batch's lanes.
    rest_wall_ms: Range
    #: The remaining items' LLM cost; None when the pilot made LLM calls of unknown price.
    rest_cost_usd: Range | None
    #: Whether the pilot items made any LLM call (else cost is simply not a question).
    llm_calls: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "seed": self.seed,
            "indices": self.indices,
            "item_count": self.item_count,
            "remaining": self.remaining,
            "lanes": self.lanes,
            "failed": self.failed,
            "pilot_ms": round(self.pilot_ms, 3),
            "pilot_cost_usd": self.pilot_cost_usd,
            "llm_calls": self.llm_calls,
            "rest_wall_ms": self.rest_wall_ms.as_dict(),
            "rest_cost_usd": None if self.rest_cost_usd is None else self.rest_cost_usd.as_dict(),
            "notes": self.notes,
        }


class PilotDeclined(RunInterrupted):
    """The person asked after a pilot said no: the run stops as interrupted (resumable)."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.message = f"stopped after the pilot of batch '{node_id}' (not confirmed)"
        self.args = (self.message,)


@dataclass(slots=True)
class PilotPlan:
    """``--pilot K``: the sample size, the seed and who is asked after each batch's pilot."""

    k: int
    seed: int
    #: Told the projection; True goes on with the batch's other items, False stops the run.
    confirm: Callable[[PilotProjection], bool]
    #: Every projection made in this run, in order (the run's record of its pilots).
    projections: list[PilotProjection] = field(default_factory=list)

    def choose(self, node_id: str, visit: int, candidates: Sequence[int]) -> list[int]:
        """K of ``candidates`` at random, the same ones for the same seed, node and visit;
        sorted, so they run in item order."""
        chooser = random.Random(f"{self.seed}:{node_id}:{visit}")
        return sorted(chooser.sample(list(candidates), min(self.k, len(candidates))))

    def project(
        self, node_id: str, indices: list[int], outcomes: Sequence[ItemOutcome], total: int,
        lanes: int,
    ) -> PilotProjection:  # fmt: skip
        """The projection for the batch's ``total - len(indices)`` other items."""
        ran = [outcome for outcome in outcomes if outcome.reused_ms is None]
        durations = [outcome.duration_ms for outcome in ran]
        usages = [outcome.llm_usage for outcome in ran if outcome.llm_usage]
        costs = [call_cost(usage) for usage in usages]
        remaining = max(0, total - len(ran))
        lanes = max(1, min(lanes, remaining or 1))
        items_ms = project_total(durations, len(ran) + remaining)
        rest_wall = Range(
            items_ms.estimate / lanes,
            None if items_ms.low is None else items_ms.low / lanes,
            None if items_ms.high is None else items_ms.high / lanes,
        )
        unpriced = any(cost is None for cost in costs)
        known = [cost for cost in costs if cost is not None]
        per_item = [sum(_costs_of(outcome)) for outcome in ran]
        notes = []
        if len(ran) < 2:
            notes.append("one pilot item: no interval")
        if unpriced:
            notes.append("price unknown for a model the pilot called")
        projection = PilotProjection(
            node_id=node_id,
            seed=self.seed,
            indices=indices,
            item_count=total,
            remaining=remaining,
            lanes=lanes,
            failed=sum(outcome.status != "success" for outcome in ran),
            pilot_ms=max((o.end_ns for o in ran), default=0) / 1e6
            - min((o.start_ns for o in ran), default=0) / 1e6,
            pilot_cost_usd=None if unpriced else round(sum(known), 10),
            rest_wall_ms=rest_wall,
            rest_cost_usd=None if unpriced else project_total(per_item, len(ran) + remaining),
            llm_calls=len(usages),
            notes=notes,
        )
        self.projections.append(projection)
        return projection


def _costs_of(outcome: ItemOutcome) -> list[float]:
    cost = call_cost(outcome.llm_usage) if outcome.llm_usage else None
    return [cost] if cost is not None else []
