"""One in-memory list of replayable spans, whichever trace file it came from.

Every exporter (OTLP replay, Jaeger JSON, OTLP/JSON, Chrome) renders this model and nothing
else, so they cannot disagree about ids, times or parents. Two sources feed it:

* **our trace files** keep the run's spans verbatim in ``otel.spans`` (written by
  :mod:`pflow_trace.tracefile.spantable`); they are rebuilt exactly: ids, parents,
  nanosecond timestamps, status, attributes, events, resource and scope;
* **pflow's traces** (1.2.0 JSON and JSON lines) carry no spans, so a tree is *synthesized*
  from their timings: workflow → node (``instrumented``) → ``batch`` → ``batch.item``, with the
  same ``pflow.*`` attributes the runtime emits. Ids are hashed from the execution id, so
  exporting one file twice gives the same ids and a backend stores the run once.

Times are absolute Unix nanoseconds. Ids are lower-case hex, as in the trace file.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pflow_trace import __version__
from pflow_trace.errors import TraceReadError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import DEFAULT_SERVICE_NAME
from pflow_trace.report.stats import preview
from pflow_trace.tracefile.model import ITEM_FAILED, ITEM_SKIPPED, BatchInfo, BatchItem, TraceRun
from pflow_trace.tracefile.readers import FORMAT_OURS, read_trace

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2
STATUS_NAMES = {STATUS_UNSET: "UNSET", STATUS_OK: "OK", STATUS_ERROR: "ERROR"}

#: The workflow format's default ``batch.max_concurrent``; used when a pflow trace omits it.
DEFAULT_MAX_CONCURRENT = 10

_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAILED_RUN_STATUSES = frozenset({"failed", "interrupted"})


@dataclass(slots=True)
class ReplayEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class ReplaySpan:
    """One span as a backend should see it. Every span is INTERNAL and sampled, with no links."""

    name: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = STATUS_UNSET
    status_message: str | None = None
    events: list[ReplayEvent] = field(default_factory=list)
    #: The worker lane (0-based) of a batch item span; ``None`` for every other span.
    lane: int | None = None

    @property
    def layer(self) -> Any:
        return self.attributes.get(conv.ATTR_LAYER)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class ReplayTrace:
    """The spans of one run plus what every span shares: trace id, resource, scope."""

    source: str
    source_format: str
    trace_id: str
    spans: list[ReplaySpan]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str | None
    #: True when the tree was built from a pflow trace's timings rather than recorded spans.
    synthesized: bool = False
    _span_ids: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def service_name(self) -> str:
        name = self.resource.get("service.name")
        return name if isinstance(name, str) and name else DEFAULT_SERVICE_NAME

    @property
    def start_ns(self) -> int:
        return min((span.start_ns for span in self.spans), default=0)

    def has_remote_parent(self, span: ReplaySpan) -> bool:
        """True when the span's parent lives outside this trace (a joined ``TRACEPARENT``)."""
        if span.parent_span_id is None:
            return False
        if self._span_ids is None:
            self._span_ids = frozenset(s.span_id for s in self.spans)
        return span.parent_span_id not in self._span_ids


def load_replay_trace(path: str | os.PathLike[str], service_name: str | None = None) -> ReplayTrace:
    """Read any supported trace file into replayable spans.

    ``service_name`` names the service of a synthesized (pflow) tree; a recorded span table
    keeps the resource it was recorded with.
    """
    name = os.fspath(path)
    run = read_trace(name)
    if run.format == FORMAT_OURS:
        recorded = _from_span_table(name, run)
        if recorded is not None:
            return recorded
    return synthesize(run, service_name or DEFAULT_SERVICE_NAME)


# -- our trace files: the recorded span table ---------------------------------------------------


def _from_span_table(name: str, run: TraceRun) -> ReplayTrace | None:
    otel = run.otel
    table = otel.get("spans") if isinstance(otel, dict) else None
    if not isinstance(table, dict) or not table.get("rows"):
        return None  # no recorded spans: the tree is synthesized from the node records
    trace_id = otel.get("trace_id")
    if not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id):
        raise TraceReadError(f"{name}: otel.trace_id is not 32 lower-case hex digits")
    origin_ns = _origin_ns(name, run.start_time, otel)
    try:
        spans = _decode_rows(table, origin_ns)
    except _BadRow as exc:
        raise TraceReadError(f"{name}: otel.spans {exc}") from None
    scope = table.get("scope") if isinstance(table.get("scope"), dict) else {}
    resource = table.get("resource") if isinstance(table.get("resource"), dict) else {}
    if "service.name" not in resource and isinstance(otel.get("service_name"), str):
        resource = {**resource, "service.name": otel["service_name"]}
    return ReplayTrace(
        source=name,
        source_format=FORMAT_OURS,
        trace_id=trace_id,
        spans=spans,
        resource=dict(resource),
        scope_name=str(scope.get("name") or conv.INSTRUMENTATION_NAME),
        scope_version=scope.get("version") if isinstance(scope.get("version"), str) else None,
    )


def _origin_ns(name: str, start_time: str | None, otel: dict[str, Any]) -> int:
    """The run start in Unix ns: exact when the file has it, else from ``start_time`` (µs)."""
    exact = otel.get("start_time_unix_nano")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    text = start_time
    if isinstance(text, str):
        parsed = iso_to_ns(text)
        if parsed is not None:
            return parsed
    raise TraceReadError(f"{name}: no usable start time (otel.start_time_unix_nano, start_time)")


class _BadRow(Exception):
    pass


_REQUIRED_COLUMNS = ("kind", "span_id", "parent_span_id", "start_offset_ns", "duration_ns")


def _decode_rows(table: dict[str, Any], origin_ns: int) -> list[ReplaySpan]:
    """Rows to spans; columns are found by name, so a reader survives a column added later."""
    columns = table.get("columns")
    kinds = table.get("kinds")
    rows = table.get("rows")
    if not isinstance(columns, list) or not isinstance(kinds, list) or not isinstance(rows, list):
        raise _BadRow("needs 'columns', 'kinds' and 'rows' lists")
    at = {column: index for index, column in enumerate(columns)}
    missing = [column for column in _REQUIRED_COLUMNS if column not in at]
    if missing:
        raise _BadRow(f"has no column {', '.join(repr(column) for column in missing)}")
    i_kind, i_id, i_parent = at["kind"], at["span_id"], at["parent_span_id"]
    i_start, i_duration = at["start_offset_ns"], at["duration_ns"]
    i_code, i_message = at.get("status_code"), at.get("status_message")
    i_attributes, i_events = at.get("attributes"), at.get("events")
    spans: list[ReplaySpan] = []
    for number, row in enumerate(rows):
        try:
            kind = kinds[row[i_kind]]
            span_id, parent = row[i_id], row[i_parent]
            valid_parent = parent is None or _SPAN_ID.fullmatch(parent)
            if not _SPAN_ID.fullmatch(span_id) or not valid_parent:
                raise ValueError("a span id is not 16 lower-case hex digits")
            start_ns = origin_ns + int(row[i_start])
            attributes = dict(kind["attributes"])
            varying = row[i_attributes] if i_attributes is not None else None
            if varying:
                attributes.update(varying)
            code = int(row[i_code] or 0) if i_code is not None else STATUS_UNSET
            message = row[i_message] if i_message is not None else None
            raw_events = row[i_events] if i_events is not None else None
            events = [
                ReplayEvent(str(event_name), origin_ns + int(offset), dict(event_attributes or {}))
                for event_name, offset, event_attributes in raw_events or ()
            ]
            span = ReplaySpan(
                name=str(kind["name"]),
                span_id=span_id,
                parent_span_id=parent,
                start_ns=start_ns,
                end_ns=start_ns + int(row[i_duration]),
                attributes=attributes,
                status_code=code if code in STATUS_NAMES else STATUS_UNSET,
                status_message=message if isinstance(message, str) else None,
                events=events,
            )
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise _BadRow(f"row {number} is malformed ({exc})") from None
        if span.layer == conv.LAYER_BATCH_ITEM:
            worker = attributes.get(conv.ATTR_BATCH_WORKER)
            span.lane = worker if isinstance(worker, int) and not isinstance(worker, bool) else 0
        spans.append(span)
    return spans


# -- pflow's traces: a tree synthesized from timings --------------------------------------------


class _Ids:
    """Deterministic ids: sha256 of the run's seed and a path naming the span in the tree."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def _digest(self, path: str) -> bytes:
        return hashlib.sha256(f"{self.seed}\x00{path}".encode()).digest()

    def trace_id(self) -> str:
        return _nonzero(self._digest("trace")[:16])

    def span_id(self, path: str) -> str:
        return _nonzero(self._digest(path)[:8])


def _nonzero(raw: bytes) -> str:
    """An all-zero id is invalid in OTLP; the chance is nil, but the rule costs one line."""
    return raw.hex() if any(raw) else (b"\x00" * (len(raw) - 1) + b"\x01").hex()


def synthesize(run: TraceRun, service_name: str = DEFAULT_SERVICE_NAME) -> ReplayTrace:
    """Build workflow → node → batch → item spans from a run's recorded timings.

    Placement, most exact first: a recorded start offset; a node's end ``timestamp`` minus its
    duration; else nodes laid end to end. Items without offsets run back to back (sequential)
    or greedily on ``max_concurrent`` lanes in index order (parallel).
    """
    ids = _Ids(run.execution_id or f"{run.workflow_name}@{run.start_time}@{run.source}")
    run_start = _run_start_ns(run)
    run_end = run_start + ms_to_ns(run.duration_ms) if run.duration_ms is not None else None
    root_id = ids.span_id("workflow")
    spans: list[ReplaySpan] = []
    cursor = run_start
    for position, node in enumerate(run.nodes):
        duration = ms_to_ns(node.duration_ms) if node.duration_ms is not None else None
        end_stamp = iso_to_ns(node.timestamp) if node.timestamp else None
        if node.start_offset_ms is not None:
            start = run_start + ms_to_ns(node.start_offset_ms)
        elif not node.finished and end_stamp is not None:
            start = end_stamp  # a node that never finished: its timestamp is its start
        elif end_stamp is not None and duration is not None:
            start = end_stamp - duration
        else:
            start = cursor
        if duration is None:
            # Never finished: it lasted until the run's end, or the last end the trace knows.
            duration = max(0, (run_end if run_end is not None else cursor) - start)
        end = start + duration
        cursor = max(cursor, end)
        node_attributes = {
            conv.ATTR_NODE_ID: node.node_id,
            conv.ATTR_NODE_TYPE: node.node_type,
        }
        status, message = (
            (STATUS_ERROR, node.error or "node failed")
            if not node.success
            else (STATUS_UNSET, None)
        )
        path = f"node/{position}/{node.node_id}"
        node_span_id = ids.span_id(path)
        spans.append(
            ReplaySpan(
                name=conv.span_name(conv.LAYER_INSTRUMENTED, node.node_id),
                span_id=node_span_id,
                parent_span_id=root_id,
                start_ns=start,
                end_ns=end,
                attributes={conv.ATTR_LAYER: conv.LAYER_INSTRUMENTED, **node_attributes},
                status_code=status,
                status_message=message,
            )
        )
        if node.batch is not None:
            batch_id = ids.span_id(f"{path}/batch")
            spans.append(
                ReplaySpan(
                    name=conv.span_name(conv.LAYER_BATCH, node.node_id),
                    span_id=batch_id,
                    parent_span_id=node_span_id,
                    start_ns=start,
                    end_ns=end,
                    attributes={
                        conv.ATTR_LAYER: conv.LAYER_BATCH,
                        **node_attributes,
                        **_batch_attributes(node.batch),
                    },
                    status_code=status,
                    status_message=message,
                )
            )
            spans.extend(
                _item_spans(node.batch, start, batch_id, f"{path}/item", ids, node_attributes)
            )
    root_end = max([run_end or run_start, *(span.end_ns for span in spans)])
    root_start = min([run_start, *(span.start_ns for span in spans)])
    root_attributes: dict[str, Any] = {
        conv.ATTR_LAYER: conv.LAYER_WORKFLOW,
        conv.ATTR_WORKFLOW_NAME: run.workflow_name or "workflow",
    }
    if run.execution_id:
        root_attributes[conv.ATTR_EXECUTION_ID] = run.execution_id
    if run.final_status:
        root_attributes[conv.ATTR_FINAL_STATUS] = run.final_status
    failed = run.final_status in _FAILED_RUN_STATUSES
    root = ReplaySpan(
        name=conv.span_name(conv.LAYER_WORKFLOW, run.workflow_name),
        span_id=root_id,
        parent_span_id=None,
        start_ns=root_start,
        end_ns=root_end,
        attributes=root_attributes,
        status_code=STATUS_ERROR if failed else STATUS_UNSET,
        status_message=(run.error or run.final_status) if failed else None,
    )
    return ReplayTrace(
        source=run.source,
        source_format=run.format,
        trace_id=ids.trace_id(),
        spans=[root, *spans],
        resource={"service.name": service_name},
        scope_name=conv.INSTRUMENTATION_NAME,
        scope_version=__version__,
        synthesized=True,
    )


def _run_start_ns(run: TraceRun) -> int:
    if run.start_time:
        parsed = iso_to_ns(run.start_time)
        if parsed is not None:
            return parsed
    for node in run.nodes:
        stamp = iso_to_ns(node.timestamp) if node.timestamp else None
        if stamp is not None:
            return stamp - (ms_to_ns(node.duration_ms) if node.duration_ms is not None else 0)
    raise TraceReadError(f"{run.source}: no start time, so its spans cannot be placed in time")


def _batch_attributes(batch: BatchInfo) -> dict[str, Any]:
    """The batch span's attributes, as the runtime sets them, for what the trace recorded."""
    attributes: dict[str, Any] = {}
    size = (
        batch.count
        if batch.count is not None
        else (len(batch.items) if batch.items is not None else None)
    )
    if size is not None:
        attributes[conv.ATTR_BATCH_SIZE] = size
    if batch.parallel is not None:
        attributes[conv.ATTR_BATCH_PARALLEL] = batch.parallel
        attributes[conv.ATTR_BATCH_MAX_CONCURRENT] = (
            (batch.max_concurrent or DEFAULT_MAX_CONCURRENT) if batch.parallel else 1
        )
    if batch.execution_mode is not None:
        attributes[conv.ATTR_BATCH_EXECUTION_MODE] = batch.execution_mode
    if batch.success_count is not None:
        attributes[conv.ATTR_BATCH_SUCCESS_COUNT] = batch.success_count
    if batch.error_count is not None:
        attributes[conv.ATTR_BATCH_ERROR_COUNT] = batch.error_count
    return attributes


def _item_spans(
    batch: BatchInfo,
    batch_start: int,
    batch_span_id: str,
    path: str,
    ids: _Ids,
    node_attributes: dict[str, Any],
) -> list[ReplaySpan]:
    """Item spans under the batch span; none when the trace keeps no per-item records."""
    if not batch.items:
        return []
    ran = [
        (position, item) for position, item in enumerate(batch.items) if item.status != ITEM_SKIPPED
    ]
    ran.sort(key=lambda pair: (pair[1].index is None, pair[1].index or 0, pair[0]))
    spans = []
    for (position, item), (start, lane) in zip(ran, _place(ran, batch, batch_start), strict=True):
        duration = ms_to_ns(item.duration_ms) if item.duration_ms is not None else 0
        attributes: dict[str, Any] = {
            conv.ATTR_LAYER: conv.LAYER_BATCH_ITEM,
            **node_attributes,
            conv.ATTR_BATCH_INDEX: item.index if item.index is not None else position,
            conv.ATTR_BATCH_ITEM_PREVIEW: preview(item.item),
        }
        if item.worker is not None:
            attributes[conv.ATTR_BATCH_WORKER] = item.worker
        if item.attempts is not None:
            attributes[conv.ATTR_BATCH_ATTEMPTS] = item.attempts
        failed = item.status == ITEM_FAILED
        key = item.index if item.index is not None else f"p{position}"
        spans.append(
            ReplaySpan(
                name=conv.span_name(conv.LAYER_BATCH_ITEM, str(node_attributes[conv.ATTR_NODE_ID])),
                span_id=ids.span_id(f"{path}/{key}"),
                parent_span_id=batch_span_id,
                start_ns=start,
                end_ns=start + duration,
                attributes=attributes,
                status_code=STATUS_ERROR if failed else STATUS_UNSET,
                status_message=(item.error or "item failed") if failed else None,
                lane=lane,
            )
        )
    return spans


def _place(
    ran: list[tuple[int, BatchItem]], batch: BatchInfo, batch_start: int
) -> list[tuple[int, int]]:
    """``(start_ns, lane)`` per item, in the order given (index order)."""
    items = [item for _, item in ran]
    if all(item.start_offset_ms is not None for item in items):
        return [
            (batch_start + ms_to_ns(item.start_offset_ms or 0.0), item.worker or 0)
            for item in items
        ]
    durations = [
        ms_to_ns(item.duration_ms) if item.duration_ms is not None else 0 for item in items
    ]
    if not batch.parallel:
        placed, cursor = [], batch_start
        for duration in durations:
            placed.append((cursor, 0))
            cursor += duration
        return placed
    lanes = max(1, min(batch.max_concurrent or DEFAULT_MAX_CONCURRENT, len(items)))
    free_at = [(batch_start, lane) for lane in range(lanes)]  # a heap: earliest, then lowest lane
    placed = []
    for duration in durations:
        start, lane = heapq.heappop(free_at)
        placed.append((start, lane))
        heapq.heappush(free_at, (start + duration, lane))
    return placed


# -- units ---------------------------------------------------------------------------------------


def ms_to_ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)


def iso_to_ns(text: str) -> int | None:
    """An ISO 8601 time as exact Unix ns (µs precision); a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
