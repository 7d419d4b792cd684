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

from collections.abc import Sequence

from pflow_trace.observe.facts import ItemOutcome

#: The parts of ``time_us``, in its order (and the keys of ``batch_time_us``).
TIME_PARTS = ("lane_wait", "attempts", "retry_wait", "overhead")


def lane_waits_ns(outcomes: Sequence[ItemOutcome], batch_start_ns: int) -> list[int]:
    """How long each item (by its position in ``outcomes``) waited for its lane: from the
    batch start (its lane's first item) or from the end of the item before it on that lane,
    to its own start. A list, not a mapping: a million-item batch pays 8 bytes an item."""
    by_lane: dict[int, list[int]] = {}
    for position, outcome in enumerate(outcomes):
        by_lane.setdefault(outcome.worker, []).append(position)
    waits = [0] * len(outcomes)
    for positions in by_lane.values():
        positions.sort(key=lambda position: outcomes[position].start_ns)
        free_ns = batch_start_ns
        for position in positions:
            outcome = outcomes[position]
            waits[position] = max(outcome.start_ns - free_ns, 0)
            free_ns = max(free_ns, outcome.end_ns)
    return waits


def item_time_us(outcome: ItemOutcome, split: tuple[int, int], lane_wait_ns: int) -> list[int]:
    """``[lane_wait, attempts, retry_wait, overhead]`` in whole µs; overhead is the rest of
    the item span (never below zero: the parts are timed with the span's own clock)."""
    attempts_ns, waits_ns = split
    overhead_ns = max(outcome.end_ns - outcome.start_ns - attempts_ns - waits_ns, 0)
    return [lane_wait_ns // 1000, attempts_ns // 1000, waits_ns // 1000, overhead_ns // 1000]
