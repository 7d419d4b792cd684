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
from pflow_trace.tracefile.read_common import NUMBER_CLASSES, as_int, as_number, as_str, error_text


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
                    if value.__class__ in NUMBER_CLASSES
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
#: The fields statistics compute with (and the span id the HTML report links to Jaeger), and
#: the types they may hold; checked in bulk after the fast path. The others (``index``,
#: ``item``, ``error``) are display values that ``stats`` turns into text itself, and
#: ``status`` is only ever compared.
_ITEM_TYPES = (
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
            if not set(map(type, map(attrgetter(name), items))) <= allowed:
                return _batch_items_careful(raw_items)
        return items
    finally:
        if paused:
            gc.enable()


def _batch_items_careful(raw_items: list[Any]) -> list[BatchItem]:
    """The per-item loop: tolerates missing fields and drops values of the wrong type."""
    items: list[BatchItem] = []
    append = items.append
    numbers = NUMBER_CLASSES
    for raw in raw_items:
        if raw.__class__ is not dict:
            continue
        get = raw.get
        duration = get("duration_ms")
        if duration.__class__ not in numbers:
            duration = None
        error = get("error")
        if error is not None and error.__class__ is not str:
            error = error_text(error)
        status = get("status")
        if status.__class__ is not str:
            status = ITEM_FAILED if error else ITEM_SUCCESS
        attempts = get("attempts")
        if attempts.__class__ is not int:
            attempts = None
        offset = get("start_offset_ms")
        if offset.__class__ not in numbers:
            offset = None
        worker = get("worker")
        if worker.__class__ is not int:
            worker = None
        span_id = get("span_id")
        if span_id.__class__ is not str:
            span_id = None
        index, item = get("index"), get("item")
        host, pid, address = get("host"), get("pid"), get("worker_address")
        append(
            BatchItem(
                index, item, status, duration, error, attempts, offset, worker, span_id,
                host if host.__class__ is str else None,
                pid if pid.__class__ is int else None,
                address if address.__class__ is str else None,
            )
        )  # fmt: skip
    return items

