"""Where a batch item's time went, as the trace file records it (``docs/trace-format.md``).

An item's *wall* runs from the moment its lane was free (the batch's first item start, or the
end of the item before it on the same lane) to its end, and is split in four parts that add up
to it: waiting for the lane, inside the node's attempts, waiting between attempts (retry
pauses), and the runtime's own overhead (the rest of the item span: copying the store,
templates, the span and the record). The runtime measures the attempts and the pauses
(:attr:`ItemOutcome.split_ns`); the lane wait needs the lane's other items, so it is worked out
here, once the batch has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pflow_trace.observe.facts import ItemOutcome

#: The parts of ``time_us``, in its order (and the keys of ``batch_time_us``).
TIME_PARTS = ("lane_wait", "attempts", "retry_wait", "overhead")


def lane_waits_ns(outcomes: Iterable[ItemOutcome], batch_start_ns: int) -> dict[int, int]:
    """index -> how long each item waited for its lane: from the batch start (its lane's
    first item) or from the end of the item before it on that lane, to its own start."""
    by_lane: dict[int, list[ItemOutcome]] = {}
    for outcome in outcomes:
        by_lane.setdefault(outcome.worker, []).append(outcome)
    waits: dict[int, int] = {}
    for lane_items in by_lane.values():
        lane_items.sort(key=lambda outcome: outcome.start_ns)
        free_ns = batch_start_ns
        for outcome in lane_items:
            waits[outcome.index] = max(outcome.start_ns - free_ns, 0)
            free_ns = max(free_ns, outcome.end_ns)
    return waits


def item_time_us(outcome: ItemOutcome, split: tuple[int, int], lane_wait_ns: int) -> list[int]:
    """``[lane_wait, attempts, retry_wait, overhead]`` in whole µs; overhead is the rest of
    the item span (never below zero: the parts are timed with the span's own clock)."""
    attempts_ns, waits_ns = split
    overhead_ns = max(outcome.end_ns - outcome.start_ns - attempts_ns - waits_ns, 0)
    return [lane_wait_ns // 1000, attempts_ns // 1000, waits_ns // 1000, overhead_ns // 1000]


def batch_time_us(records: Sequence[list[int]], provider_us: Sequence[int]) -> dict[str, int]:
    """The batch's sums of its items' parts, the items they cover, and the provider's total
    latency when any item reported one."""
    # One C-level sum per part over the transposed records, not a loop per item.
    totals = dict(zip(TIME_PARTS, map(sum, zip(*records, strict=True)), strict=True))
    totals["items"] = len(records)
    if provider_us:
        totals["provider"] = sum(provider_us)
    return totals
