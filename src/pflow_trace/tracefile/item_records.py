"""A batch node's ``batch_items``: one record per item, encoded and spooled a block at a time.

A batch of a million items must not cost a million record dicts, nor a million lists kept
for the batch's time split. Records are made a block at a time and turned into JSON text
at once; the split's sums (``batch_time_us``) are kept as running totals.

Most records have only the fields every item has (no worker process, no key, no LLM call,
no reuse): those are written straight into their text, field by field, skipping the dict and
the generic encoder. The text is exactly what ``json.dumps`` gives for the record as a dict,
which ``tests/tracefile/test_item_records.py`` checks on awkward values (quotes, control
characters, lone surrogates, every float shape). Any other record is made as a dict and
encoded by the trace writer's encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from json.encoder import encode_basestring
from operator import attrgetter
from typing import Any

from pflow_trace.observe.facts import ItemOutcome
from pflow_trace.text import hex_span_id
from pflow_trace.tracefile.spool import Spool, TextBlocks, encode_json
from pflow_trace.tracefile.time_split import TIME_PARTS, item_time_us, lane_waits_ns

#: Records of ``batch_items`` encoded and spooled together.
ITEMS_PER_BLOCK = 1000

Preview = Callable[[Any], str]
Sanitize = Callable[[Any], Any]


class _TimeTotals:
    """The batch's time split: each part summed over the items that reported one."""

    __slots__ = ("items", "parts", "provider_us", "providers")

    def __init__(self) -> None:
        self.parts = [0, 0, 0, 0]
        self.items = 0
        self.provider_us = 0
        self.providers = 0

    def add(self, parts: list[int]) -> None:
        totals = self.parts
        totals[0] += parts[0]
        totals[1] += parts[1]
        totals[2] += parts[2]
        totals[3] += parts[3]
        self.items += 1

    def as_dict(self) -> dict[str, int] | None:
        """``batch_time_us``: the sums, the items they cover, and the provider's total
        latency when any item reported one; None when no item reported a split."""
        if not self.items:
            return None
        totals = dict(zip(TIME_PARTS, self.parts, strict=True))
        totals["items"] = self.items
        if self.providers:
            totals["provider"] = self.provider_us
        return totals


def batch_items(
    outcomes: Sequence[ItemOutcome],
    keys: Sequence[Any] | None,
    preview: Preview,
    sanitize: Sanitize,
    spool: Spool | None,
) -> tuple[TextBlocks, dict[str, int] | None]:
    """The ``batch_items`` records of ``outcomes``, in index order, as spooled text blocks,
    and the batch's ``batch_time_us`` (None when no item reported a split).

    ``keys``: the batch's ``key`` per index (every record then carries one); ``preview`` and
    ``sanitize``: the run's sanitizer, for items whose span made no preview and for LLM usage.
    """
    ordered = sorted(outcomes, key=attrgetter("index"))
    records = TextBlocks(spool)
    if not ordered:
        return records, None
    batch_start = min(outcome.start_ns for outcome in ordered)
    with_place = any(map(attrgetter("place"), ordered))
    waits_ns = lane_waits_ns(ordered, batch_start)
    totals = _TimeTotals()
    for start in range(0, len(ordered), ITEMS_PER_BLOCK):
        texts = []
        for position in range(start, min(start + ITEMS_PER_BLOCK, len(ordered))):
            outcome = ordered[position]
            time_us = None
            if outcome.split_ns is not None:
                time_us = item_time_us(outcome, outcome.split_ns, waits_ns[position])
                totals.add(time_us)
            if outcome.provider_ns is not None:
                totals.provider_us += outcome.provider_ns // 1000
                totals.providers += 1
            if keys is None and not with_place and _plain(outcome):
                texts.append(_plain_text(outcome, batch_start, time_us, preview))
            else:
                record = _record(outcome, batch_start, with_place, preview, sanitize)
                _add_late_fields(record, outcome, keys, time_us)
                texts.append(encode_json(record))
        records.append_block(", ".join(texts), len(texts))
    return records, totals.as_dict()


def _plain(outcome: ItemOutcome) -> bool:
    """Whether the record has only the fields every item has."""
    return outcome.reused_ms is None and not outcome.llm_usage and outcome.provider_ns is None


def _plain_text(
    outcome: ItemOutcome, batch_start: int, time_us: list[int] | None, preview: Preview
) -> str:
    """A record with only the common fields, as JSON text (``json.dumps`` of :func:`_record`)."""
    shown = outcome.preview if outcome.preview is not None else preview(outcome.item)
    error = outcome.error
    span_id = outcome.span_id
    duration_ms = round((outcome.end_ns - outcome.start_ns) / 1e6, 3)
    offset_ms = round((outcome.start_ns - batch_start) / 1e6, 3)
    error_text = "null" if error is None else encode_basestring(error)
    span_text = f'"{span_id:016x}"' if span_id else "null"
    text = (
        f'{{"index": {outcome.index:d}, "item": {encode_basestring(shown)}, '
        f'"status": {encode_basestring(outcome.status)}, "attempts": {outcome.attempts:d}, '
        f'"duration_ms": {duration_ms!r}, "start_offset_ms": {offset_ms!r}, '
        f'"worker": {outcome.worker:d}, "error": {error_text}, "span_id": {span_text}'
    )
    if time_us is None:
        return text + "}"
    lane_wait, attempts, retry_wait, overhead = time_us
    return f'{text}, "time_us": [{lane_wait:d}, {attempts:d}, {retry_wait:d}, {overhead:d}]}}'


def _record(
    outcome: ItemOutcome, batch_start: int, with_place: bool, preview: Preview, sanitize: Sanitize
) -> dict[str, Any]:
    """One record as a dict, with every field the outcome has (``docs/trace-format.md``)."""
    record: dict[str, Any] = {
        "index": outcome.index,
        "item": outcome.preview if outcome.preview is not None else preview(outcome.item),
        "status": outcome.status,
        "attempts": outcome.attempts,
        "duration_ms": round((outcome.end_ns - outcome.start_ns) / 1e6, 3),
        "start_offset_ms": round((outcome.start_ns - batch_start) / 1e6, 3),
        "worker": outcome.worker,
        "error": outcome.error,
        "span_id": hex_span_id(outcome.span_id),
    }
    if with_place:
        place = outcome.place
        record["host"] = place.host if place is not None else None
        record["pid"] = place.pid if place is not None else None
        record["worker_address"] = place.address if place is not None else None
    if outcome.reused_ms is not None:  # taken from the run this one resumes
        record["reused"] = True
        record["original_duration_ms"] = round(outcome.reused_ms, 3)
    if outcome.llm_usage:  # an LLM call: only these items carry the key
        record["llm_usage"] = sanitize(outcome.llm_usage)
    return record


def _add_late_fields(
    record: dict[str, Any],
    outcome: ItemOutcome,
    keys: Sequence[Any] | None,
    time_us: list[int] | None,
) -> None:
    """The fields that follow the outcome's own: the batch key, the time split, the provider."""
    if keys is not None:  # the node's batch has a key: every record carries one
        record["key"] = keys[outcome.index] if outcome.index < len(keys) else None
    if time_us is not None:
        record["time_us"] = time_us
    if outcome.provider_ns is not None:
        record["provider_us"] = outcome.provider_ns // 1000
