"""pflow's JSON-lines trace (format 2.x): a ``meta`` record, per-node records, a closing record.

Records are parsed line by line, so a file cut short mid-run still reads up to its last whole
line (with a warning); a batch node's event carries ``batch_metadata`` and ``batch_items``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pflow_trace.errors import TraceReadError
from pflow_trace.tracefile.model import (
    TraceNode,
    TraceRun,
)
from pflow_trace.tracefile.read_batch import attach_llm_usage, batch_info, llm_call_of
from pflow_trace.tracefile.read_common import (
    FAILED_NODE_STATUSES,
    FORMAT_PFLOW_JSONL,
    KNOWN_JSONL_MAJOR,
    KNOWN_JSONL_MARKER,
    TRACE_DECODER,
    as_int,
    as_number,
    as_str,
    cut_off,
    error_text,
    json_kind,
    parse_version,
)


def parse_lines(
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
            record = TRACE_DECODER.decode(line)
        except json.JSONDecodeError as exc:
            pending = (number, line, exc)
            continue
        except RecursionError:
            raise TraceReadError(f"{name}: line {number} is nested too deeply to read") from None
        except ValueError as exc:  # an integer of thousands of digits
            raise TraceReadError(f"{name}: not JSON on line {number} ({exc})") from None
        if not isinstance(record, dict):
            raise TraceReadError(
                f"{name}: unknown trace format (line {number} is a JSON {json_kind(record)}, "
                "not a record)"
            )
        yield number, record
    if pending is not None:
        bad_number, bad_line, exc = pending
        if cut_off(bad_line, exc):
            raise TraceReadError(f"{name}: truncated JSON (line {bad_number} ends mid-record)")
        raise TraceReadError(f"{name}: not JSON on line {bad_number} ({exc.msg})")


def _start_key(record: dict[str, Any]) -> tuple[str, str]:
    """Pairs a ``node.start`` with its ``event``; as text, so a damaged id (a list) still hashes."""
    return (repr(record.get("node_id")), repr(record.get("id")))


def read_jsonl_records(name: str, records: Iterator[tuple[int, dict[str, Any]]]) -> TraceRun:
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
            started[_start_key(record)] = TraceNode(
                node_id=str(record.get("node_id", "?")),
                node_type=str(record.get("node_type", "?")),
                success=False,
                duration_ms=None,
                timestamp=as_str(record.get("timestamp")),
                error="started but never finished",
                finished=False,
            )
        elif kind == "event" or (kind is None and "duration_ms" in record and "node_id" in record):
            started.pop(_start_key(record), None)
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
    run.end_time = as_str(complete.get("end_time"))
    run.duration_ms = as_number(complete.get("duration_ms"))
    run.final_status = as_str(complete.get("final_status"))
    run.nodes_executed = as_int(complete.get("nodes_executed"))
    run.nodes_failed = as_int(complete.get("nodes_failed"))
    run.error = error_text(complete.get("error"))
    failed_ids = complete.get("failed_node_ids")
    if isinstance(failed_ids, list) and failed_ids:
        run.failed_node = as_str(failed_ids[0])
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
        marker_version = parse_version(marker.removeprefix("jsonl/"))
    version = meta.get("format_version")
    parsed = parse_version(version)
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
        format_version=as_str(version),
        workflow_name=as_str(meta.get("workflow_name")),
        final_status=None,
        start_time=as_str(meta.get("start_time")),
        execution_id=as_str(meta.get("execution_id")),
        warnings=warnings,
    )


def _node_from_event(record: dict[str, Any]) -> TraceNode:
    output = record.get("node_output")
    raw_items = record.get("batch_items")
    batch = None
    llm_usage = None
    if isinstance(raw_items, list) or (isinstance(output, dict) and "batch_metadata" in output):
        batch = batch_info(output, raw_items)
        if batch.items and isinstance(raw_items, list):
            attach_llm_usage(batch.items, raw_items)
    else:
        llm_usage = llm_call_of(record)
    status = record.get("status")
    return TraceNode(
        node_id=str(record.get("node_id", "?")),
        node_type=str(record.get("node_type", "?")),
        success=status not in FAILED_NODE_STATUSES and not record.get("error"),
        duration_ms=as_number(record.get("duration_ms")),
        timestamp=as_str(record.get("timestamp")),
        error=error_text(record.get("error")),
        batch=batch,
        llm_usage=llm_usage,
    )


def is_jsonl_meta(record: dict[str, Any]) -> bool:
    return record.get("kind") == "meta" or "pflow_trace" in record
