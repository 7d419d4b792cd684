"""Matching a batch's items across the two sides of a diff: which began or stopped failing,
and which moved most.

Items are matched by the first of these that is safe, and the output says which
(``NodeDiff.item_match``), never a guess the reader cannot see:

1. their **key** (the workflow's ``batch.key``, recorded per item): every run on both sides
   recorded one for every item, and no two items of one run share one;
2. their **value** (the recorded preview), on the same terms;
3. their **index**.

A key or a value survives a reordered input list; an index does not, but it is all a trace of
duplicate or hidden values (``--no-previews``) offers. When keys were recorded but cannot be
used (one side has none, an item's key did not resolve, two items share one), the reason is
given (``ItemMovement.note``) beside the fallback.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, eq, itemgetter, sub

from pflow_trace.report.diff import ItemChange
from pflow_trace.text import one_line
from pflow_trace.tracefile.model import ITEM_FAILED, ITEM_SUCCESS, BatchItem

MATCH_KEY = "key"
MATCH_VALUE = "value"
MATCH_INDEX = "index"
#: Characters of an item's error kept in the diff.
ERROR_CHARS = 200


_item_of = attrgetter("item")
_key_of = attrgetter("key")
_status_of = attrgetter("status")
_duration_of = attrgetter("duration_ms")
_FINISHED = frozenset({ITEM_SUCCESS, ITEM_FAILED})


@dataclass(slots=True)
class _Tally:
    """One item key on one side, over every run of that side."""

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
    #: Why recorded ``batch.key`` values were not used; None when they were or there were none.
    note: str | None = None


def match_mode(base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]]) -> str:
    """``key``, ``value`` or ``index``: the first that every execution on both sides has,
    present and distinct, for every item."""
    return _match_keys(base, new)[0]


def _match_keys(
    base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]]
) -> tuple[str, list[list[str]], str | None]:
    """(how items are matched, each execution's item keys with base executions first, why
    recorded ``batch.key`` values could not be used)."""
    keyed, note = _keys_by_key(base, new)
    if keyed is not None:
        return MATCH_KEY, keyed, None
    keyed = _keys_by_value(base, new)
    if keyed is not None:
        return MATCH_VALUE, keyed, note
    return MATCH_INDEX, [list(map(_index_key, items)) for items in (*base, *new)], note


def _keys_by_key(
    base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]]
) -> tuple[list[list[str]] | None, str | None]:
    """Each execution's ``batch.key`` values, or None and (when some were recorded) why not."""
    executions = [*base, *new]
    keyed = [list(map(_key_of, items)) for items in executions]
    with_keys = [any(key is not None for key in keys) for keys in keyed]
    if not any(with_keys):
        return None, None
    if not all(with_keys):
        sides = [side for side, runs in (("base", base), ("new", new)) if _has_keys(runs)]
        return None, f"batch.key is recorded only in the {sides[0]} runs"
    missing = sum(key is None for keys in keyed for key in keys)
    if missing:
        return None, f"{missing} items have no batch.key (it did not resolve for them)"
    repeated = sum(len(keys) - len(set(keys)) for keys in keyed)
    if repeated:
        return None, f"batch.key repeats ({repeated} items share a key with another in their run)"
    return keyed, None  # type: ignore[return-value]


def _has_keys(executions: Sequence[list[BatchItem]]) -> bool:
    return any(item.key is not None for items in executions for item in items)


def _keys_by_value(
    base: Sequence[list[BatchItem]], new: Sequence[list[BatchItem]]
) -> list[list[str]] | None:
    """Each execution's item values as keys (base executions first), or None when some
    execution has a missing or repeated value. Plain strings (what our traces hold) are
    taken as they are, in C; anything else is encoded as JSON."""
    keyed = []
    for items in (*base, *new):
        values = list(map(_item_of, items))
        if set(map(type, values)) != {str}:
            values = [_value_key(value) for value in values]
            if None in values:
                return None
        if len(set(values)) != len(values):
            return None
        keyed.append(values)
    return keyed


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
    mode, keyed, note = _match_keys(base, new)
    base_keys, new_keys = keyed[: len(base)], keyed[len(base) :]
    if len(base) == 1 and len(new) == 1:
        movement = _one_run_each(mode, base[0], base_keys[0], new[0], new_keys[0], top)
        movement.note = note
        return movement
    base_tallies = _tallies(base, base_keys)
    new_tallies = _tallies(new, new_keys)
    failing, succeeding = [], []
    moved: list[tuple[float, str]] = []
    for key, after in new_tallies.items():
        before = base_tallies.get(key)
        if before is None:
            continue
        if after.failures and not before.failures and before.successes:
            change = _change(key, before, after)
            change.error = one_line(after.last_error, ERROR_CHARS) if after.last_error else None
            failing.append(change)
        elif before.failures and not before.successes and after.successes and not after.failures:
            succeeding.append(_change(key, before, after))
        if before.timed and after.timed:
            moved.append((abs(after.mean_ms - before.mean_ms), key))  # type: ignore[operator]
    largest = heapq.nlargest(top, moved, key=itemgetter(0))
    return ItemMovement(
        mode,
        failing,
        succeeding,
        [_change(key, base_tallies[key], new_tallies[key]) for _, key in largest],
        note,
    )


def _one_run_each(
    mode: str,
    base: list[BatchItem],
    base_keys: list[str],
    new: list[BatchItem],
    new_keys: list[str],
    top: int,
) -> ItemMovement:
    """The same answer as the pooled path for one run per side (the usual case), in whole-list
    operations: a 100,000-item batch is matched without an object per item."""
    base_at = dict(zip(base_keys, base, strict=True))
    failing = [
        _pair_change(key, before, after)
        for key, after in _with_status(new_keys, new, ITEM_FAILED)
        if (before := base_at.get(key)) is not None and before.status == ITEM_SUCCESS
    ]
    base_failed = list(_with_status(base_keys, base, ITEM_FAILED))
    new_at = dict(zip(new_keys, new, strict=True)) if base_failed else {}
    succeeding = [
        _pair_change(key, before, after)
        for key, before in base_failed
        if (after := new_at.get(key)) is not None and after.status == ITEM_SUCCESS
    ]
    moves = _moves(base, base_keys, new, new_keys)
    largest = heapq.nlargest(top, range(len(moves)), key=moves.__getitem__)
    moved = [
        _pair_change(new_keys[at], base_at[new_keys[at]], new[at])
        for at in largest
        if moves[at] >= 0
    ]
    return ItemMovement(mode, failing, succeeding, moved)


def _moves(
    base: list[BatchItem], base_keys: list[str], new: list[BatchItem], new_keys: list[str]
) -> list[float]:
    """How far each new item moved from its base (``abs(new - base)`` ms), -1 where it has no
    time on one side. When every item finished on both sides with a time (the usual case)
    this is subtraction in C; otherwise one check per item."""
    statuses = {*map(_status_of, base), *map(_status_of, new)}
    if statuses <= _FINISHED:
        base_ms = dict(zip(base_keys, map(_duration_of, base), strict=True))
        aligned = list(map(base_ms.get, new_keys))
        new_ms = list(map(_duration_of, new))
        if None not in aligned and None not in new_ms:
            return list(map(abs, map(sub, new_ms, aligned)))
    base_ms = dict(zip(base_keys, map(_finished_ms, base), strict=True))
    return list(map(_move, map(_finished_ms, new), map(base_ms.get, new_keys)))


def _with_status(
    keys: list[str], items: list[BatchItem], status: str
) -> Iterator[tuple[str, BatchItem]]:
    statuses = list(map(_status_of, items))
    return compress(zip(keys, items, strict=True), map(eq, statuses, repeat(status)))


def _finished_ms(item: BatchItem) -> float | None:
    return item.duration_ms if item.status in _FINISHED else None


def _move(new_ms: float | None, base_ms: float | None) -> float:
    """How far an item moved either way; -1 when it has no time on one side."""
    if new_ms is None or base_ms is None:
        return -1.0
    return abs(new_ms - base_ms)


def _pair_change(key: str, before: BatchItem, after: BatchItem) -> ItemChange:
    base_ms, new_ms = _finished_ms(before), _finished_ms(after)
    change = ItemChange(
        key,
        str(before.status),
        str(after.status),
        base_ms,
        new_ms,
        new_ms - base_ms if base_ms is not None and new_ms is not None else None,
    )
    if after.status == ITEM_FAILED and before.status != ITEM_FAILED:
        error = after.error if isinstance(after.error, str) else None
        change.error = one_line(error, ERROR_CHARS) if error else None
    return change


def _change(key: str, before: _Tally, after: _Tally) -> ItemChange:
    base_ms, new_ms = before.mean_ms, after.mean_ms
    change_ms = new_ms - base_ms if base_ms is not None and new_ms is not None else None
    return ItemChange(key, before.last_status, after.last_status, base_ms, new_ms, change_ms)


def _tallies(executions: Sequence[list[BatchItem]], keys: list[list[str]]) -> dict[str, _Tally]:
    tallies: dict[str, _Tally] = {}
    for items, item_keys in zip(executions, keys, strict=True):
        for item, key in zip(items, item_keys, strict=True):
            if key is None:
                continue
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = _Tally()
            status = item.status
            tally.last_status = status
            if status == ITEM_FAILED:
                tally.failures += 1
                tally.last_error = item.error if isinstance(item.error, str) else None
            elif status == ITEM_SUCCESS:
                tally.successes += 1
            else:
                continue
            if item.duration_ms is not None:
                tally.total_ms += item.duration_ms
                tally.timed += 1
    return tallies
