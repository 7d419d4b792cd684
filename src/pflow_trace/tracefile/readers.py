"""Read trace files of every supported format into the one model (``model.py``).

Three formats are read:

* ours (``generator`` "pflow-trace ...", format 1.2.0 plus ``otel``, ``start_offset_ms`` and
  per-item ``batch_items``): one JSON object;
* pflow's JSON trace, format 1.2.0: the same object without per-item records, so a batch node
  is known only through ``batch_metadata`` in ``shared_after[node_id]``;
* pflow's JSON-lines trace (``"pflow_trace": "jsonl/1"``, format 2.x): a ``meta`` record,
  ``node.start`` and ``event`` records per node (a batch node's event carries ``node_output``
  with ``batch_metadata`` and ``batch_items``), and a closing ``run.complete`` record.

Every problem a user can cause (missing file, not JSON, truncated, unknown format) becomes a
:class:`~pflow_trace.errors.TraceReadError` whose one-line message names the file, so the CLI
can print it and exit 2. A version newer than the reader knows is read best effort and leaves
exactly one warning on the run.

The file is read and parsed once, like ``json.load`` does. Turning ``batch_items`` into
objects is the hot path for a 100,000-item batch, because ``show`` must cost no more than
about twice ``json.load``: see :func:`_batch_items` for how it stays cheap.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Iterable, Iterator
from itertools import starmap
from operator import attrgetter, itemgetter
from typing import Any

from pflow_trace.errors import TraceReadError
from pflow_trace.tracefile.model import (
    ITEM_FAILED,
    ITEM_SUCCESS,
    BatchInfo,
    BatchItem,
    ReportedError,
    TraceNode,
    TraceRun,
)

FORMAT_OURS = "pflow-trace"
FORMAT_PFLOW = "pflow"
FORMAT_PFLOW_JSONL = "pflow-jsonl"

#: The newest version of the single-object format this reader knows (ours and pflow's).
KNOWN_JSON_VERSION = (1, 2, 0)
#: The newest JSON-lines marker (``"pflow_trace": "jsonl/N"``) and format major version known.
KNOWN_JSONL_MARKER = 1
KNOWN_JSONL_MAJOR = 2

_NUMBER_CLASSES = (int, float)
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_FAILED_NODE_STATUSES = frozenset({"failed", "error", "interrupted", "cancelled", "aborted"})


def read_trace(path: str | os.PathLike[str]) -> TraceRun:
    """Read one trace file of any supported format.

    The format is decided by content, not by extension: one JSON value filling the file is a
    JSON trace (ours or pflow's 1.2.0); a ``meta`` record followed by more lines is pflow's
    JSON lines. The text is read and parsed once, as ``json.load`` would.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise TraceReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise TraceReadError(f"{name}: is a directory, not a trace file") from None
    except UnicodeDecodeError:
        raise TraceReadError(f"{name}: not JSON (the file is not UTF-8 text)") from None
    except OSError as exc:
        raise TraceReadError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return read_trace_text(name, text)


def read_trace_text(name: str, text: str) -> TraceRun:
    """Read a trace from its text; ``name`` is what error messages call it."""
    start = _skip_space(text, 0)
    if start == len(text):
        raise TraceReadError(f"{name}: empty file, not a trace")
    try:
        first, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _decode_error(name, text, exc) from None
    if _skip_space(text, end) == len(text):
        del text  # the parsed document is all that is needed from here on
        return _run_from_object(name, first)
    # More JSON follows the first value: JSON lines, which must open with pflow's meta record.
    line = text.count("\n", 0, end) + 1
    records = _parse_lines(name, text[end:].splitlines(), first_number=line)
    return _read_jsonl_records(name, _prepend((1, first), records))


# -- one JSON document (ours and pflow 1.2.0) ----------------------------------------------------


def _run_from_object(name: str, doc: Any) -> TraceRun:
    if isinstance(doc, dict) and _is_jsonl_meta(doc):
        return _read_jsonl_records(name, iter([(1, doc)]))
    if not isinstance(doc, dict):
        kind = _json_kind(doc)
        raise TraceReadError(f"{name}: unknown trace format (a JSON {kind}, not a trace object)")
    if not isinstance(doc.get("nodes"), list) or "format_version" not in doc:
        raise TraceReadError(
            f"{name}: unknown trace format (no 'format_version' and 'nodes' at the top level)"
        )
    return _run_from_document(name, doc)


def _run_from_document(name: str, doc: dict[str, Any]) -> TraceRun:
    version = doc.get("format_version")
    warnings: list[str] = []
    parsed = _parse_version(version)
    if parsed is None:
        raise TraceReadError(f"{name}: unknown trace format (format_version {version!r})")
    if parsed > KNOWN_JSON_VERSION:
        known = ".".join(map(str, KNOWN_JSON_VERSION))
        warnings.append(
            f"{name}: format_version {version} is newer than this reader knows ({known}); "
            "read best effort"
        )
    generator = _str(doc.get("generator"))
    otel = doc.get("otel")
    ours = (generator or "").startswith("pflow-trace") or isinstance(otel, dict)
    nodes = []
    for position, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, dict):
            raise TraceReadError(
                f"{name}: unknown trace format (nodes[{position}] is not an object)"
            )
        nodes.append(_node_from_document(raw))
    return TraceRun(
        source=name,
        format=FORMAT_OURS if ours else FORMAT_PFLOW,
        format_version=_str(version),
        workflow_name=_str(doc.get("workflow_name")),
        final_status=_str(doc.get("final_status")),
        start_time=_str(doc.get("start_time")),
        end_time=_str(doc.get("end_time")),
        duration_ms=_number(doc.get("duration_ms")),
        execution_id=_str(doc.get("execution_id")),
        generator=generator,
        nodes_executed=_int(doc.get("nodes_executed")),
        nodes_failed=_int(doc.get("nodes_failed")),
        error=_error_text(doc.get("error")),
        failed_node=_str(doc.get("failed_node")),
        trace_id=_str(otel.get("trace_id")) if isinstance(otel, dict) else None,
        otel=otel if isinstance(otel, dict) else None,
        nodes=nodes,
        warnings=warnings,
    )


def _node_from_document(raw: dict[str, Any]) -> TraceNode:
    node_id = str(raw.get("node_id", "?"))
    shared_after = raw.get("shared_after")
    output = shared_after.get(node_id) if isinstance(shared_after, dict) else None
    raw_items = raw.get("batch_items")
    batch = None
    if isinstance(raw_items, list) or (isinstance(output, dict) and "batch_metadata" in output):
        batch = _batch_info(output, raw_items)
    return TraceNode(
        node_id=node_id,
        node_type=str(raw.get("node_type", "?")),
        success=raw.get("success") is not False,
        duration_ms=_number(raw.get("duration_ms")),
        timestamp=_str(raw.get("timestamp")),
        start_offset_ms=_number(raw.get("start_offset_ms")),
        error=_error_text(raw.get("error")),
        span_id=_str(raw.get("span_id")),
        batch=batch,
    )


# -- JSON lines (pflow 2.x) --------------------------------------------------------------------


def _parse_lines(
    name: str, lines: Iterable[str], first_number: int = 1
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, record)``; a bad line raises, naming the file and the line.

    A bad *last* line whose JSON simply stops is reported as truncated (the writer was cut
    off); a bad line anywhere else is reported as not JSON.
    """
    pending: tuple[int, str, json.JSONDecodeError] | None = None
    for number, line in enumerate(lines, start=first_number):
        if not line.strip():
            continue
        if pending is not None:
            # The bad line was not the last one: corrupt, not merely cut off.
            bad_number, _, exc = pending
            raise TraceReadError(f"{name}: not JSON on line {bad_number} ({exc.msg})")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            pending = (number, line, exc)
            continue
        if not isinstance(record, dict):
            raise TraceReadError(
                f"{name}: unknown trace format (line {number} is a JSON {_json_kind(record)}, "
                "not a record)"
            )
        yield number, record
    if pending is not None:
        bad_number, bad_line, exc = pending
        if _cut_off(bad_line, exc):
            raise TraceReadError(f"{name}: truncated JSON (line {bad_number} ends mid-record)")
        raise TraceReadError(f"{name}: not JSON on line {bad_number} ({exc.msg})")


def _read_jsonl_records(name: str, records: Iterator[tuple[int, dict[str, Any]]]) -> TraceRun:
    run: TraceRun | None = None
    finished: list[TraceNode] = []
    started: dict[Any, TraceNode] = {}
    complete: dict[str, Any] | None = None
    for number, record in records:
        kind = record.get("kind")
        if run is None:
            if kind != "meta":
                raise TraceReadError(
                    f"{name}: unknown trace format (line {number} is not a pflow 'meta' record)"
                )
            run = _run_from_meta(name, record)
            continue
        if record.get("parent_id") is not None:
            continue  # a node inside a nested workflow: its parent's time already counts it
        if kind == "node.start":
            key = (record.get("node_id"), record.get("id"))
            started[key] = TraceNode(
                node_id=str(record.get("node_id", "?")),
                node_type=str(record.get("node_type", "?")),
                success=False,
                duration_ms=None,
                timestamp=_str(record.get("timestamp")),
                error="started but never finished",
                finished=False,
            )
        elif kind == "event" or (kind is None and "duration_ms" in record and "node_id" in record):
            started.pop((record.get("node_id"), record.get("id")), None)
            finished.append(_node_from_event(record))
        elif kind == "run.complete":
            complete = record
    if run is None:
        raise TraceReadError(f"{name}: empty file, not a trace")
    run.nodes = finished + list(started.values())
    if complete is None:
        run.final_status = "interrupted"
        if not run.warnings:
            run.warnings.append(
                f"{name}: no run.complete record (the run stopped before finishing its trace); "
                "shown as interrupted"
            )
        return run
    run.end_time = _str(complete.get("end_time"))
    run.duration_ms = _number(complete.get("duration_ms"))
    run.final_status = _str(complete.get("final_status"))
    run.nodes_executed = _int(complete.get("nodes_executed"))
    run.nodes_failed = _int(complete.get("nodes_failed"))
    run.error = _error_text(complete.get("error"))
    failed_ids = complete.get("failed_node_ids")
    if isinstance(failed_ids, list) and failed_ids:
        run.failed_node = _str(failed_ids[0])
        failed = set(map(str, failed_ids))
        for node in run.nodes:
            if node.node_id in failed:
                node.success = False
    return run


def _run_from_meta(name: str, meta: dict[str, Any]) -> TraceRun:
    warnings = []
    marker = meta.get("pflow_trace")
    marker_version = None
    if isinstance(marker, str) and marker.startswith("jsonl/"):
        marker_version = _parse_version(marker.removeprefix("jsonl/"))
    version = meta.get("format_version")
    parsed = _parse_version(version)
    if (marker_version is not None and marker_version[0] > KNOWN_JSONL_MARKER) or (
        parsed is not None and parsed[0] > KNOWN_JSONL_MAJOR
    ):
        warnings.append(
            f"{name}: pflow JSON-lines trace {marker} format_version {version} is newer than "
            f"this reader knows (jsonl/{KNOWN_JSONL_MARKER}, {KNOWN_JSONL_MAJOR}.x); "
            "read best effort"
        )
    return TraceRun(
        source=name,
        format=FORMAT_PFLOW_JSONL,
        format_version=_str(version),
        workflow_name=_str(meta.get("workflow_name")),
        final_status=None,
        start_time=_str(meta.get("start_time")),
        execution_id=_str(meta.get("execution_id")),
        warnings=warnings,
    )


def _node_from_event(record: dict[str, Any]) -> TraceNode:
    output = record.get("node_output")
    raw_items = record.get("batch_items")
    batch = None
    if isinstance(raw_items, list) or (isinstance(output, dict) and "batch_metadata" in output):
        batch = _batch_info(output, raw_items)
    status = record.get("status")
    return TraceNode(
        node_id=str(record.get("node_id", "?")),
        node_type=str(record.get("node_type", "?")),
        success=status not in _FAILED_NODE_STATUSES and not record.get("error"),
        duration_ms=_number(record.get("duration_ms")),
        timestamp=_str(record.get("timestamp")),
        error=_error_text(record.get("error")),
        batch=batch,
    )


# -- batch nodes (all formats) -------------------------------------------------------------------


def _batch_info(output: Any, raw_items: Any) -> BatchInfo:
    info = BatchInfo()
    if isinstance(output, dict):
        info.count = _int(output.get("count"))
        info.success_count = _int(output.get("success_count"))
        info.error_count = _int(output.get("error_count"))
        meta = output.get("batch_metadata")
        if isinstance(meta, dict):
            parallel = meta.get("parallel")
            info.parallel = parallel if isinstance(parallel, bool) else None
            info.execution_mode = _str(meta.get("execution_mode"))
            info.max_concurrent = _int(meta.get("max_concurrent"))
            info.max_retries = _int(meta.get("max_retries"))
            info.retry_wait = _number(meta.get("retry_wait"))
            timing = meta.get("timing")
            if isinstance(timing, dict):
                info.reported_timing_ms = {
                    key: float(value)
                    for key, value in timing.items()
                    if value.__class__ in _NUMBER_CLASSES
                }
        errors = output.get("errors")
        if not isinstance(raw_items, list) and isinstance(errors, list):
            info.reported_errors = [
                ReportedError(
                    _int(e.get("index")), e.get("item"), _error_text(e.get("error")) or ""
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


def _batch_items(raw_items: list[Any]) -> list[BatchItem]:
    """Turn ``batch_items`` records into :class:`BatchItem` objects: the hot path.

    Our format writes every field on every item, so the fast path pulls them with one
    ``itemgetter`` and builds the objects in a C-level loop (``starmap``), then checks the
    numeric fields' types in bulk. The garbage collector is paused meanwhile: building 100,000
    acyclic objects would otherwise trigger collections that re-scan the freshly loaded
    document for nothing. Anything unusual (a missing field as in pflow's records, a value
    of the wrong type) falls back to the careful per-item loop.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        try:
            items = list(starmap(BatchItem, map(_item_fields, raw_items)))
        except (KeyError, TypeError):
            return _batch_items_careful(raw_items)
        for name, allowed in _ITEM_TYPES:
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
    numbers = _NUMBER_CLASSES
    for raw in raw_items:
        if raw.__class__ is not dict:
            continue
        get = raw.get
        duration = get("duration_ms")
        if duration.__class__ not in numbers:
            duration = None
        error = get("error")
        if error is not None and error.__class__ is not str:
            error = _error_text(error)
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
        append(BatchItem(index, item, status, duration, error, attempts, offset, worker, span_id))
    return items


# -- small helpers -----------------------------------------------------------------------------


def _skip_space(text: str, position: int) -> int:
    """The position of the first non-whitespace character at or after ``position``."""
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _is_jsonl_meta(record: dict[str, Any]) -> bool:
    return record.get("kind") == "meta" or "pflow_trace" in record


def _prepend(head: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield head
    yield from rest


def _decode_error(name: str, text: str, exc: json.JSONDecodeError) -> TraceReadError:
    if _cut_off(text, exc):
        return TraceReadError(
            f"{name}: truncated JSON (the document stops at line {exc.lineno} before it is "
            "complete)"
        )
    return TraceReadError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")


#: What may be left after the parser's error position when the text was merely cut short: a
#: partial number or a partial true / false / null.
_PARTIAL_TOKEN = re.compile(r"-?[0-9.eE+-]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _cut_off(text: str, exc: json.JSONDecodeError) -> bool:
    """True when the JSON is fine as far as it goes and simply ends too early.

    The parser stops either at the very end, inside a string that never closes, or at the
    start of a token the cut left incomplete (``12.``, ``tru``); anything else is damage.
    """
    if exc.msg.startswith("Unterminated string"):
        return True
    rest = text[exc.pos :].strip()
    return _PARTIAL_TOKEN.fullmatch(rest) is not None


def _parse_version(value: Any) -> tuple[int, ...] | None:
    """``"1.2.0"`` -> ``(1, 2, 0)``; a suffix such as ``-rc1`` is ignored; junk is ``None``."""
    if not isinstance(value, str):
        return None
    match = _VERSION.match(value)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(0).split("."))


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return value if value.__class__ in _NUMBER_CLASSES else None


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def _error_text(value: Any) -> str | None:
    """Errors are strings in every known format; a structured one keeps its message."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        message = value.get("message") or value.get("error")
        if isinstance(message, str):
            return message
    return json.dumps(value, default=str)
