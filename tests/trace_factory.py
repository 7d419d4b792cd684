"""Build trace files in our format (1.2.0 plus extensions) without running the runtime.

``make_trace`` lays nodes out one after another and, for batch nodes, simulates the workers:
each item goes to the first free lane, so start offsets, worker lanes, the batch's wall time
and ``batch_metadata`` agree the way the runtime's do. Tests describe a run with
``plain(...)`` and ``batch(...)`` node specs and get back the JSON-ready dict.

Shared-store snapshots cap lists at 10,000 entries like the runtime's snapshot does, so a
generated 100,000-item trace has the realistic shape (the cost is in ``batch_items``).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pflow_trace.runtime.batch_output import timing_stats

SNAPSHOT_LIST_LIMIT = 10_000
DEFAULT_START = datetime(2026, 11, 21, 20, 53, 24, 346151, tzinfo=UTC)
NODE_GAP_MS = 0.25


@dataclass
class PlainSpec:
    node_id: str
    duration_ms: float
    node_type: str = "echo"
    success: bool = True
    error: str | None = None
    output: Any = "ok"


@dataclass
class BatchSpec:
    node_id: str
    durations_ms: list[float]
    node_type: str = "shell"
    parallel: bool = False
    max_concurrent: int = 10
    max_retries: int = 1
    #: index -> error message for items that failed
    failures: dict[int, str] = field(default_factory=dict)
    #: index -> attempts (default 1)
    attempts: dict[int, int] = field(default_factory=dict)
    #: the items themselves (default: "item-<index>")
    items: list[Any] | None = None
    #: "continue" keeps going after a failure; "fail_fast" skips the rest and fails the node
    error_handling: str = "continue"
    #: only the first ``recorded`` items were recorded and the node never finished
    interrupted_after: int | None = None
    overhead_ms: float = 0.5


def plain(node_id: str, duration_ms: float, **kwargs: Any) -> PlainSpec:
    return PlainSpec(node_id, duration_ms, **kwargs)


def batch(node_id: str, durations_ms: list[float], **kwargs: Any) -> BatchSpec:
    return BatchSpec(node_id, list(durations_ms), **kwargs)


def _hex(seed: int, width: int) -> str:
    """A stable, random-looking lowercase hex id (trace ids are 32 digits, span ids 16)."""
    return hashlib.sha256(str(seed).encode()).hexdigest()[:width]


def _cap(values: list[Any]) -> list[Any]:
    if len(values) <= SNAPSHOT_LIST_LIMIT:
        return list(values)
    return [*values[:SNAPSHOT_LIST_LIMIT], f"<{len(values) - SNAPSHOT_LIST_LIMIT} more items>"]


def _snapshot(value: Any) -> Any:
    """The shared store as the runtime's snapshot writes it: long lists capped."""
    if isinstance(value, dict):
        return {key: _snapshot(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_snapshot(inner) for inner in _cap(value)]
    return value


def _simulate(spec: BatchSpec) -> tuple[list[dict[str, Any]], float, bool]:
    """Item records (sorted by index), the batch wall time, and whether a fail_fast stop hit.

    Like the runtime: after a fail_fast failure no further item starts, and items that never
    ran have no record at all; an interrupted batch keeps only the items that finished.
    """
    durations = spec.durations_ms
    lanes = min(spec.max_concurrent, len(durations)) if spec.parallel else 1
    free = [(0.0, lane) for lane in range(max(lanes, 1))]
    heapq.heapify(free)
    records = []
    wall = 0.0
    stopped = False
    limit = len(durations) if spec.interrupted_after is None else spec.interrupted_after
    items = spec.items
    failures = spec.failures
    attempts = spec.attempts
    for index in range(limit):
        start, lane = heapq.heappop(free)
        duration = durations[index]
        end = start + duration
        heapq.heappush(free, (end, lane))
        wall = max(wall, end)
        error = failures.get(index)
        records.append(
            {
                "index": index,
                "item": f"item-{index}" if items is None else str(items[index])[:60],
                "status": "failed" if error is not None else "success",
                "attempts": attempts.get(index, 1),
                "duration_ms": duration,
                "start_offset_ms": round(start, 3),
                "worker": lane,
                "error": error,
                "span_id": _hex(index + 1000, 16),
            }
        )
        if error is not None and spec.error_handling == "fail_fast":
            stopped = True
            break
    return records, wall + spec.overhead_ms, stopped


def _batch_output(spec: BatchSpec, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``shared_after[node_id]`` of a batch node, shaped like runtime/batch.py writes it."""
    errors = [
        {"index": r["index"], "item": r["item"], "error": r["error"]}
        for r in records
        if r["status"] == "failed"
    ]
    results: list[Any] = [None] * len(spec.durations_ms)
    for r in records:
        if r["status"] == "success":
            results[r["index"]] = f"result-{r['index']}"
    return {
        "results": _cap(results),
        "count": len(spec.durations_ms),
        "success_count": sum(1 for r in records if r["status"] == "success"),
        "error_count": len(errors),
        "errors": _cap(errors) or None,
        "batch_metadata": {
            "parallel": spec.parallel,
            "max_concurrent": spec.max_concurrent if spec.parallel else None,
            "max_retries": spec.max_retries,
            "retry_wait": 0.0,
            "execution_mode": "parallel" if spec.parallel else "sequential",
            "timing": _timing(records),
        },
    }


def _timing(records: list[dict[str, Any]]) -> dict[str, float]:
    return timing_stats([r["duration_ms"] for r in records if r["status"] != "skipped"])


def make_trace(
    nodes: list[PlainSpec | BatchSpec],
    *,
    workflow_name: str = "demo",
    final_status: str | None = None,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    format_version: str = "1.2.0",
    otel: bool = True,
) -> dict[str, Any]:
    """A trace in our format; the final status follows from the nodes unless given."""
    shared: dict[str, Any] = {}
    events = []
    offset = 0.0
    nodes_failed = 0
    failed_node = None
    run_error = None
    degraded = False
    interrupted = False
    for position, spec in enumerate(nodes):
        before = _snapshot(shared)
        event: dict[str, Any] = {"node_id": spec.node_id, "node_type": spec.node_type}
        if isinstance(spec, PlainSpec):
            duration = spec.duration_ms
            success = spec.success
            error = spec.error if not success else None
            if not success and error is None:
                error = "failed"
            if success:
                shared[spec.node_id] = spec.output
        else:
            records, duration, stopped = _simulate(spec)
            # The runtime writes the batch output even when the batch stops early.
            shared[spec.node_id] = _batch_output(spec, records)
            success, error = True, None
            if spec.interrupted_after is not None:
                interrupted = True
                success, error = False, "interrupted"
            elif stopped:
                first = next(r for r in records if r["status"] == "failed")
                success, error = False, f"item {first['index']} failed: {first['error']}"
            elif any(r["status"] == "failed" for r in records):
                degraded = True
            event["batch_items"] = records
        event.update(
            duration_ms=round(duration, 3),
            success=success,
            shared_before=before,
            shared_after=_snapshot(shared),
            mutations={
                "added": [spec.node_id] if spec.node_id in shared else [],
                "removed": [],
                "modified": [],
            },
            timestamp=(start + timedelta(milliseconds=offset + duration)).isoformat(),
            start_offset_ms=round(offset, 3),
            template_resolutions={},
            span_id=_hex(seed * 100 + position, 16),
        )
        if error is not None:
            event["error"] = error
        if not success:
            nodes_failed += 1
            if interrupted:
                run_error = "interrupted"
            elif failed_node is None:
                failed_node = spec.node_id
                run_error = error
        events.append(event)
        offset += duration + NODE_GAP_MS
        if not success:
            break
    if final_status is None:
        if interrupted:
            final_status = "interrupted"
        elif failed_node is not None:
            final_status = "failed"
        elif degraded:
            final_status = "degraded"
        else:
            final_status = "success"
    duration_ms = round(offset, 3)
    trace: dict[str, Any] = {
        "format_version": format_version,
        "generator": "pflow-trace 0.1.0",
        "execution_id": f"exec-{seed:04d}",
        "workflow_name": workflow_name,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(milliseconds=duration_ms)).isoformat(),
        "duration_ms": duration_ms,
        "final_status": final_status,
        "nodes_executed": len(events),
        "nodes_failed": nodes_failed,
        "error": run_error,
        "failed_node": failed_node,
    }
    if otel:
        trace["otel"] = {
            "trace_id": _hex(seed, 32),
            "span_id": _hex(seed + 7, 16),
            "parent_span_id": None,
            "service_name": "pflow-trace",
            "start_time_unix_nano": int(start.timestamp() * 1e9),
        }
    trace["nodes"] = events
    return trace


def write_trace(path: Path, trace: dict[str, Any], *, indent: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace, indent=indent), encoding="utf-8")
    return path


# -- the five runs the issue asks for -----------------------------------------------------------


def sequential_trace(seed: int = 1) -> dict[str, Any]:
    return make_trace(
        [
            plain("fetch", 12.5),
            batch("summarise", [10.0, 30.0, 20.0, 40.0], parallel=False),
            plain("write", 3.0, node_type="write-file"),
        ],
        workflow_name="sequential",
        seed=seed,
    )


def parallel_trace(seed: int = 2) -> dict[str, Any]:
    durations = [100.0 + (i * 37) % 23 for i in range(20)]
    return make_trace(
        [
            plain("list", 2.0),
            batch("work", durations, parallel=True, max_concurrent=4, attempts={3: 2, 7: 3}),
        ],
        workflow_name="parallel",
        seed=seed,
    )


def continue_with_failures_trace(seed: int = 3) -> dict[str, Any]:
    failures = {i: "HTTP 503: service unavailable" for i in (1, 4, 7)}
    failures.update({2: "timeout after 5s", 9: "HTTP 404: not found"})
    failures.update({i: f"odd failure {i}" for i in (10, 11, 12, 13, 14, 15)})
    return make_trace(
        [
            batch(
                "fetch_pages",
                [5.0 + i for i in range(16)],
                parallel=True,
                max_concurrent=3,
                failures=failures,
                error_handling="continue",
            ),
            plain("report", 1.0),
        ],
        workflow_name="continue",
        seed=seed,
    )


def failed_trace(seed: int = 4) -> dict[str, Any]:
    return make_trace(
        [
            plain("prepare", 4.0),
            batch(
                "convert",
                [2.0, 3.0, 4.0, 5.0],
                failures={1: "cannot convert 'b'"},
                error_handling="fail_fast",
            ),
            plain("never", 1.0),
        ],
        workflow_name="failing",
        seed=seed,
    )


def interrupted_trace(seed: int = 5) -> dict[str, Any]:
    return make_trace(
        [
            plain("prepare", 4.0),
            batch("slow", [50.0] * 10, parallel=True, max_concurrent=2, interrupted_after=3),
        ],
        workflow_name="interrupted",
        seed=seed,
    )


def large_trace(count: int = 100_000, seed: int = 6) -> dict[str, Any]:
    """A parallel batch of ``count`` items with a few failures and retries."""
    durations = [1.0 + ((i * 7919) % 1000) / 100 for i in range(count)]
    failures = {i: f"error kind {i % 3}" for i in range(0, count, 997)}
    attempts = {i: 2 for i in range(0, count, 101)}
    return make_trace(
        [
            plain("make_items", 5.0, output=[f"item-{i}" for i in range(count)]),
            batch(
                "crunch",
                durations,
                parallel=True,
                max_concurrent=8,
                failures=failures,
                attempts=attempts,
            ),
        ],
        workflow_name="large",
        seed=seed,
    )
