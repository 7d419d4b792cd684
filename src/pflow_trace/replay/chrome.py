"""Chrome Trace Event JSON: a run as tracks in Perfetto (ui.perfetto.dev) or chrome://tracing.

One process (``pid`` 1) for the run and one track (``tid``) per worker lane, so the items of a
parallel batch sit side by side instead of stacked into one unreadable column:

* ``tid`` 0 ("workflow") holds the run and every node-level span (instrumented, batch, and the
  namespaced/template/node layers of plain nodes);
* ``tid`` *lane + 1* ("worker *lane*") holds the batch items run by that worker lane, each with
  the layers nested under it. A sequential batch uses lane 0, so track 1.

Each span is one complete event (``"ph": "X"``) with ``ts`` and ``dur`` in microseconds (with
nanosecond decimals), ``ts`` counted from the run's start; span events (retries) are instant
events (``"ph": "i"``) on the span's track. Metadata events name the process and the tracks.
"""

from __future__ import annotations

from typing import Any

from pflow_trace.observe import conventions as conv
from pflow_trace.tracefile.replay_model import STATUS_NAMES, ReplaySpan, ReplayTrace

PID = 1
WORKFLOW_TID = 0


def lane_tids(trace: ReplayTrace) -> dict[str, int]:
    """Span id → track: a batch item's lane + 1, inherited by everything under it; else 0.

    A span whose parents form a cycle (no lane on it) goes on the workflow track.
    """
    by_id = {span.span_id: span for span in trace.spans}
    tids: dict[str, int] = {}
    for span in trace.spans:
        chain: list[str] = []
        on_chain: set[str] = set()
        current: ReplaySpan | None = span
        tid = WORKFLOW_TID
        # ``on_chain`` ends a walk that comes back to itself: a damaged or hand-made trace can
        # name a span as its own parent, or close a cycle of parents.
        while current is not None and current.span_id not in on_chain:
            known = tids.get(current.span_id)
            if known is not None:
                tid = known
                break
            chain.append(current.span_id)
            on_chain.add(current.span_id)
            if current.lane is not None:
                tid = current.lane + 1
                break
            parent = current.parent_span_id
            current = by_id.get(parent) if parent is not None else None
        for span_id in chain:
            tids[span_id] = tid
    return tids


def _us(offset_ns: int) -> float:
    """Nanoseconds as the format's microseconds, keeping the nanoseconds as decimals."""
    return round(offset_ns / 1000, 3)


def to_chrome_trace(trace: ReplayTrace) -> dict[str, Any]:
    """The whole run as one Trace Event document: track names first, then every span."""
    origin = trace.start_ns
    tids = lane_tids(trace)
    events: list[dict[str, Any]] = []
    for span in sorted(trace.spans, key=lambda s: (s.start_ns, -s.duration_ns)):
        events.extend(_span_events(span, tids[span.span_id], origin))
    return {
        "traceEvents": _metadata_events(trace, tids) + events,
        "displayTimeUnit": "ms",
        "otherData": {
            "trace_id": trace.trace_id,
            "source": trace.source,
            "start_time_unix_nano": origin,
        },
    }


def _span_events(span: ReplaySpan, tid: int, origin: int) -> list[dict[str, Any]]:
    """The span as one complete event, followed by an instant event per span event."""
    complete = {
        "name": span.name,
        "cat": str(span.layer or "span"),
        "ph": "X",
        "ts": _us(span.start_ns - origin),
        "dur": _us(span.duration_ns),
        "pid": PID,
        "tid": tid,
        "args": _span_args(span),
    }
    instants = [
        {
            "name": event.name,
            "cat": "event",
            "ph": "i",
            "s": "t",
            "ts": _us(event.time_ns - origin),
            "pid": PID,
            "tid": tid,
            "args": dict(event.attributes),
        }
        for event in span.events
    ]
    return [complete, *instants]


def _span_args(span: ReplaySpan) -> dict[str, Any]:
    """What the UI shows for a selected span: its attributes, ids and status."""
    args: dict[str, Any] = dict(span.attributes)
    args["span_id"] = span.span_id
    if span.parent_span_id is not None:
        args["parent_span_id"] = span.parent_span_id
    args["status"] = STATUS_NAMES[span.status_code]
    if span.status_message:
        args["status_message"] = span.status_message
    return args


def _metadata_events(trace: ReplayTrace, tids: dict[str, int]) -> list[dict[str, Any]]:
    """Names the process after the service and workflow, and each track after its lane."""
    metadata: list[dict[str, Any]] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": PID,
            "tid": WORKFLOW_TID,
            "args": {"name": f"{trace.service_name}: {_workflow_name(trace) or 'workflow'}"},
        }
    ]
    for tid in sorted(set(tids.values())):
        name = "workflow" if tid == WORKFLOW_TID else f"worker {tid - 1}"
        metadata.append(
            {"name": "thread_name", "ph": "M", "pid": PID, "tid": tid, "args": {"name": name}}
        )
        metadata.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": PID,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
    return metadata


def _workflow_name(trace: ReplayTrace) -> Any:
    """The workflow span's ``pflow.workflow.name``; ``None`` when there is no workflow span."""
    return next(
        (
            span.attributes.get(conv.ATTR_WORKFLOW_NAME)
            for span in trace.spans
            if span.layer == conv.LAYER_WORKFLOW
        ),
        None,
    )
