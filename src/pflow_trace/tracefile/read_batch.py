"""Batch nodes in every format: ``batch_metadata`` and per-item ``batch_items`` into the model.

Turning ``batch_items`` into objects is the hot path for a 100,000-item batch (``show`` must
cost no more than about twice ``json.load``), hence the fast path with a bulk type check and a
careful path that only runs when the fast one finds a record it cannot take as it is.
"""

from __future__ import annotations

import gc
from itertools import starmap
from operator import attrgetter, itemgetter
from typing import Any

from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SUCCESS,
    BatchInfo,
    BatchItem,
    ReportedError,
)
from pflow_trace.tracefile.read_common import (
    NUMBER_LIMIT,
    as_int,
    as_number,
    as_str,
    error_text,
)


def batch_info(output: Any, raw_items: Any) -> BatchInfo:
    info = BatchInfo()
    if isinstance(output, dict):
        info.count = as_int(output.get("count"))
        info.success_count = as_int(output.get("success_count"))
        info.error_count = as_int(output.get("error_count"))
        meta = output.get("batch_metadata")
        if isinstance(meta, dict):
            parallel = meta.get("parallel")
            info.parallel = parallel if isinstance(parallel, bool) else None
            info.execution_mode = as_str(meta.get("execution_mode"))
            info.max_concurrent = as_int(meta.get("max_concurrent"))
            info.max_retries = as_int(meta.get("max_retries"))
            info.retry_wait = as_number(meta.get("retry_wait"))
            timing = meta.get("timing")
            if isinstance(timing, dict):
                info.reported_timing_ms = {
                    key: float(value)
                    for key, value in timing.items()
                    if as_number(value) is not None
                }
        errors = output.get("errors")
        if not isinstance(raw_items, list) and isinstance(errors, list):
            info.reported_errors = [
                ReportedError(
                    as_int(e.get("index")), e.get("item"), error_text(e.get("error")) or ""
                )
                for e in errors
                if isinstance(e, dict)
            ]
    if info.execution_mode is None and info.parallel is not None:
        info.execution_mode = "parallel" if info.parallel else "sequential"
    if info.parallel is None and info.execution_mode is not None:
        info.parallel = info.execution_mode == "parallel"
    if isinstance(raw_items, list):
        info.items = _batch_items(raw_items)
    return info


#: The per-item fields, in BatchItem's positional order.
_ITEM_FIELDS = (
    "index",
    "item",
    "status",
    "duration_ms",
    "error",
    "attempts",
    "start_offset_ms",
    "worker",
    "span_id",
)
_item_fields = itemgetter(*_ITEM_FIELDS)
#: Where an item ran, recorded only for items run in another process (processes, dask).
_PLACE_FIELDS = ("host", "pid", "worker_address")
_placed_item_fields = itemgetter(*_ITEM_FIELDS, *_PLACE_FIELDS)
#: The fields statistics and exporters compute with (``index`` and ``status`` are sorted,
#: counted and compared; the span id links the HTML report to Jaeger), and the types they may
#: hold; checked in bulk after the fast path. The others (``item``, ``error``) are display
#: values that ``stats`` turns into text itself.
_ITEM_TYPES = (
    ("index", frozenset({int, type(None)})),
    ("status", frozenset({str})),
    ("duration_ms", frozenset({int, float, type(None)})),
    ("attempts", frozenset({int, type(None)})),
    ("start_offset_ms", frozenset({int, float, type(None)})),
    ("worker", frozenset({int, type(None)})),
    ("span_id", frozenset({str, type(None)})),
)
_PLACE_TYPES = (
    ("host", frozenset({str, type(None)})),
    ("pid", frozenset({int, type(None)})),
    ("worker_address", frozenset({str, type(None)})),
)


#: Fields the bulk check does not add up: ids and labels, not measurements.
_NOT_SUMMED = frozenset({"index", "status", "span_id", "host", "pid", "worker_address"})


def attach_llm_usage(items: list[BatchItem], raw_items: list[Any]) -> None:
    """Give each item its LLM call: ours as ``llm_usage``, pflow's as ``llm_call``.

    Items and records pair up only when every record became an item (the careful path drops
    records that are not objects); otherwise the usage is looked up by index.
    """
    records = [raw for raw in raw_items if raw.__class__ is dict]
    if len(records) != len(items):
        return
    for item, raw in zip(items, records, strict=True):
        usage = llm_call_of(raw)
        if usage is not None:
            item.llm_usage = usage


def attach_time_split(items: list[BatchItem], raw_items: list[Any]) -> None:
    """Give each item where its time went (``time_us``, ``provider_us``), when recorded.

    Optional fields (older traces lack them), so they are not on the fast path; a record whose
    split is not four non-negative integers keeps none.
    """
    records = [raw for raw in raw_items if raw.__class__ is dict]
    if len(records) != len(items) or "time_us" not in records[0]:
        return
    for item, raw in zip(items, records, strict=True):
        parts = raw.get("time_us")
        if (
            parts.__class__ is list
            and len(parts) == 4
            and all(part.__class__ is int and 0 <= part < NUMBER_LIMIT for part in parts)
        ):
            item.time_us = tuple(parts)  # type: ignore[assignment]
        provider = raw.get("provider_us")
        if provider.__class__ is int and 0 <= provider < NUMBER_LIMIT:
            item.provider_us = provider


def attach_keys(items: list[BatchItem], raw_items: list[Any]) -> None:
    """Give each item its ``batch.key`` when the batch recorded keys (an optional field: older
    traces and batches without a key lack it). A key that is not text is left out."""
    records = [raw for raw in raw_items if raw.__class__ is dict]
    if len(records) != len(items) or "key" not in records[0]:
        return
    for item, raw in zip(items, records, strict=True):
        key = raw.get("key")
        if key.__class__ is str:
            item.key = key


def llm_call_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The LLM call a trace record carries, in any format; None when it has none.

    pflow keeps the response text beside the call (``llm_response``) rather than a flag, so a
    blank one is marked here as ``empty_response`` like ours.
    """
    usage = record.get("llm_usage")
    if usage.__class__ is not dict:
        usage = record.get("llm_call")
    if usage.__class__ is not dict:
        output = record.get("node_output")
        usage = output.get("llm_usage") if output.__class__ is dict else None
    if usage.__class__ is not dict or not usage or "calls" in usage:
        return None
    response = record.get("llm_response")
    if "empty_response" not in usage and isinstance(response, str):
        usage = {**usage, "empty_response": not response.strip()}
    return usage


def _batch_items(raw_items: list[Any]) -> list[BatchItem]:
    """Turn ``batch_items`` records into :class:`BatchItem` objects: the hot path.

    Our format writes every field on every item, so the fast path pulls them with one
    ``itemgetter`` and builds the objects in a C-level loop (``starmap``), then checks the
    numeric fields' types in bulk. The garbage collector is paused meanwhile: building 100,000
    acyclic objects would otherwise trigger collections that re-scan the freshly loaded
    document for nothing. Anything unusual (a missing field as in pflow's records, a value
    of the wrong type) falls back to the careful per-item loop.
    """
    placed = bool(raw_items) and isinstance(raw_items[0], dict) and "host" in raw_items[0]
    fields, types = (
        (_placed_item_fields, _ITEM_TYPES + _PLACE_TYPES) if placed else (_item_fields, _ITEM_TYPES)
    )
    paused = gc.isenabled()
    gc.disable()
    try:
        try:
            items = list(starmap(BatchItem, map(fields, raw_items)))
        except (KeyError, TypeError):
            return _batch_items_careful(raw_items)
        for name, allowed in types:
            values = list(map(attrgetter(name), items))
            if not set(map(type, values)) <= allowed:
                return _batch_items_careful(raw_items)
            if name in _NOT_SUMMED:
                continue
            # One C-level sum finds an infinite (1e999) or absurdly large number: any of them
            # makes the sum leave the range, and NaN fails every comparison.
            if not -NUMBER_LIMIT < sum(filter(None, values)) < NUMBER_LIMIT:
                return _batch_items_careful(raw_items)
        return items
    finally:
        if paused:
            gc.enable()


def _batch_items_careful(raw_items: list[Any]) -> list[BatchItem]:
    """The per-item loop: tolerates missing fields and drops values of the wrong type."""
    items: list[BatchItem] = []
    append = items.append
    for raw in raw_items:
        if raw.__class__ is not dict:
            continue
        get = raw.get
        duration = as_number(get("duration_ms"))
        error = get("error")
        if error is not None and error.__class__ is not str:
            error = error_text(error)
        status = get("status")
        if status.__class__ is not str:
            status = ITEM_FAILED if error else ITEM_SUCCESS
        attempts = as_int(get("attempts"))
        offset = as_number(get("start_offset_ms"))
        worker = as_int(get("worker"))
        span_id = as_str(get("span_id"))
        index, item = as_int(get("index")), get("item")
        host, pid, address = as_str(get("host")), as_int(get("pid")), as_str(get("worker_address"))
        append(
            BatchItem(
                index, item, status, duration, error, attempts, offset, worker, span_id,
                host, pid, address,
            )
        )  # fmt: skip
    return items
