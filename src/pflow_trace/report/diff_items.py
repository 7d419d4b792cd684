"""Matching a batch's items across the two sides of a diff: which began or stopped failing,
and which moved most.

Items are matched by their value when that is safe — every run on both sides recorded a
value (its preview) for every item, and no two items of one run share one — else by their
index. The value survives a reordered input list; the index does not, but it is all a trace
of duplicate or hidden values (``--no-previews``) offers. Which one was used is part of the
output (``NodeDiff.item_match``), never a guess the reader cannot see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from pflow_trace.report.diff import ItemChange
from pflow_trace.text import one_line
from pflow_trace.tracefile.model import ITEM_FAILED, ITEM_SUCCESS, BatchItem

MATCH_VALUE = "value"
MATCH_INDEX = "index"
#: Characters of an item's error kept in the diff.
ERROR_CHARS = 200


@dataclass(slots=True)
class _Tally:
    """One item key on one side, over every run of that side."""

    runs: int = 0
    failures: int = 0
    successes: int = 0
    total_ms: float = 0.0
    timed: int = 0
    last_status: str | None = None
    last_error: str | None = None

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.timed if self.timed else None


@dataclass(slots=True)
class ItemMovement:
    """What matching found for one batch node."""

    match: str
    newly_failing: list[ItemChange]
    newly_succeeding: list[ItemChange]
    moved_most: list[ItemChange]


def match_mode(base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]]) -> str:
    """``value`` when every execution on both sides has distinct, present values."""
    for items in (*base, *new):
        keys = [_value_key(item.item) for item in items]
        if None in keys or len(set(keys)) != len(keys):
            return MATCH_INDEX
    return MATCH_VALUE


def _value_key(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _index_key(item: BatchItem) -> str | None:
    return None if item.index is None else str(item.index)


def match_items(
    base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]], top: int
) -> ItemMovement:
    """Every item newly failing and newly succeeding (the caller lists a few and counts all),
    and the ``top`` items whose mean duration moved most, either way."""
    mode = match_mode(base, new)
    base_tallies = _tallies(base, mode)
    new_tallies = _tallies(new, mode)
    failing, succeeding, moved = [], [], []
    for key, after in new_tallies.items():
        before = base_tallies.get(key)
        if before is None:
            continue
        change = _change(key, before, after)
        if after.failures and not before.failures and before.successes:
            change.error = one_line(after.last_error, ERROR_CHARS) if after.last_error else None
            failing.append(change)
        elif before.failures and not before.successes and after.successes and not after.failures:
            succeeding.append(change)
        if change.change_ms is not None:
            moved.append(change)
    moved.sort(key=lambda c: -abs(c.change_ms or 0.0))
    return ItemMovement(mode, failing, succeeding, moved[:top])


def _change(key: str, before: _Tally, after: _Tally) -> ItemChange:
    base_ms, new_ms = before.mean_ms, after.mean_ms
    change_ms = new_ms - base_ms if base_ms is not None and new_ms is not None else None
    return ItemChange(key, before.last_status, after.last_status, base_ms, new_ms, change_ms)


def _tallies(executions: Sequence[list[BatchItem]], mode: str) -> dict[str, _Tally]:
    tallies: dict[str, _Tally] = {}
    for items in executions:
        for item in items:
            key = _value_key(item.item) if mode == MATCH_VALUE else _index_key(item)
            if key is None:
                continue
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = _Tally()
            tally.runs += 1
            tally.last_status = str(item.status)
            if item.status == ITEM_FAILED:
                tally.failures += 1
                tally.last_error = item.error if isinstance(item.error, str) else None
            elif item.status == ITEM_SUCCESS:
                tally.successes += 1
            if item.duration_ms is not None and item.status in (ITEM_SUCCESS, ITEM_FAILED):
                tally.total_ms += item.duration_ms
                tally.timed += 1
    return tallies
