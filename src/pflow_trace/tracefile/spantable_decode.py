"""Rebuilds the spans a run recorded from its trace file's ``otel.spans`` table.

The inverse of :mod:`pflow_trace.tracefile.spantable`: ids, parents, nanosecond timestamps,
status, attributes, events, resource and scope come back exactly as the run exported them
live. Columns are found by name (:mod:`pflow_trace.tracefile.spantable_format`), so a reader
survives a column added later; a table that cannot be read is a :class:`TraceReadError`
naming the file, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pflow_trace.errors import TraceReadError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.otlp_wire import ATTR_INVALID_TIME, invalid_time_note, is_unix_nano
from pflow_trace.tracefile.model import TraceRun
from pflow_trace.tracefile.read_common import FORMAT_OURS
from pflow_trace.tracefile.replay_model import (
    STATUS_NAMES,
    STATUS_UNSET,
    ReplayEvent,
    ReplaySpan,
    ReplayTrace,
)
from pflow_trace.tracefile.spantable_format import (
    COL_ATTRIBUTES,
    COL_DURATION_NS,
    COL_EVENTS,
    COL_KIND,
    COL_PARENT_SPAN_ID,
    COL_SPAN_ID,
    COL_START_OFFSET_NS,
    COL_STATUS_CODE,
    COL_STATUS_MESSAGE,
    REQUIRED_COLUMNS,
)
from pflow_trace.tracefile.timeunits import iso_to_ns

_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def decode_span_table(name: str, run: TraceRun) -> ReplayTrace | None:
    """The run's recorded spans, or ``None`` when the file keeps no span table.

    ``name`` is the file's path, for error messages. Without a table the caller synthesizes a
    tree from the node records instead.
    """
    otel = run.otel
    table = otel.get("spans") if isinstance(otel, dict) else None
    if not isinstance(table, dict) or not table.get("rows"):
        return None
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
    replay = ReplayTrace(
        source=name,
        source_format=FORMAT_OURS,
        trace_id=trace_id,
        spans=spans,
        resource=dict(resource),
        scope_name=str(scope.get("name") or conv.INSTRUMENTATION_NAME),
        scope_version=scope.get("version") if isinstance(scope.get("version"), str) else None,
    )
    moved = sum(
        1 for span in spans for event in span.events if ATTR_INVALID_TIME in event.attributes
    )
    if moved:
        replay.warnings.append(
            f"{name}: {moved} span event{'s' if moved != 1 else ''} had a time that is not a "
            f"Unix time in nanoseconds; placed at the span's start, with {ATTR_INVALID_TIME}"
        )
    return replay


def _origin_ns(name: str, start_time: str | None, otel: dict[str, Any]) -> int:
    """The run start in Unix ns: exact when the file has it, else from ``start_time`` (µs)."""
    exact = otel.get("start_time_unix_nano")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    if isinstance(start_time, str):
        parsed = iso_to_ns(start_time)
        if parsed is not None:
            return parsed
    raise TraceReadError(f"{name}: no usable start time (otel.start_time_unix_nano, start_time)")


class _BadRow(Exception):
    """A table or row that does not decode; the message completes ``"<file>: otel.spans "``."""


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each column sits in a row of this table; ``None`` for an optional column absent."""

    kind: int
    span_id: int
    parent_span_id: int
    start_offset_ns: int
    duration_ns: int
    status_code: int | None
    status_message: int | None
    attributes: int | None
    events: int | None

    @classmethod
    def of(cls, columns: list[Any]) -> _Columns:
        at = {column: index for index, column in enumerate(columns)}
        missing = [column for column in REQUIRED_COLUMNS if column not in at]
        if missing:
            raise _BadRow(f"has no column {', '.join(repr(column) for column in missing)}")
        return cls(
            kind=at[COL_KIND],
            span_id=at[COL_SPAN_ID],
            parent_span_id=at[COL_PARENT_SPAN_ID],
            start_offset_ns=at[COL_START_OFFSET_NS],
            duration_ns=at[COL_DURATION_NS],
            status_code=at.get(COL_STATUS_CODE),
            status_message=at.get(COL_STATUS_MESSAGE),
            attributes=at.get(COL_ATTRIBUTES),
            events=at.get(COL_EVENTS),
        )


def _decode_rows(table: dict[str, Any], origin_ns: int) -> list[ReplaySpan]:
    """Rows to spans, in row order."""
    columns = table.get("columns")
    kinds = table.get("kinds")
    rows = table.get("rows")
    if not isinstance(columns, list) or not isinstance(kinds, list) or not isinstance(rows, list):
        raise _BadRow("needs 'columns', 'kinds' and 'rows' lists")
    at = _Columns.of(columns)
    spans: list[ReplaySpan] = []
    for number, row in enumerate(rows):
        try:
            span = _decode_row(row, at, kinds, origin_ns)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise _BadRow(f"row {number} is malformed ({exc})") from None
        spans.append(span)
    return spans


def _event(
    name: str, origin_ns: int, offset: Any, attributes: dict[str, Any], span_start_ns: int
) -> ReplayEvent:
    """One event; a time that cannot be a Unix time in ns (a node's ``time_unix_nano`` of
    ``10**30`` or ``-5``, or not a number) puts the event at its span's start and says what
    the time was (:data:`~pflow_trace.observe.otlp_wire.ATTR_INVALID_TIME`): every exporter
    then takes the span, and only that value is changed."""
    try:
        time_ns: int | None = origin_ns + int(offset)
    except (TypeError, ValueError, OverflowError):
        time_ns = None
    if time_ns is not None and is_unix_nano(time_ns):
        return ReplayEvent(name, time_ns, attributes)
    attributes[ATTR_INVALID_TIME] = invalid_time_note(time_ns if time_ns is not None else offset)
    return ReplayEvent(name, span_start_ns, attributes)


def _decode_row(row: list[Any], at: _Columns, kinds: list[Any], origin_ns: int) -> ReplaySpan:
    """One row as a span: the kind's attributes overlaid with the row's own.

    Raises IndexError, KeyError, TypeError or ValueError on a malformed row.
    """
    kind = kinds[row[at.kind]]
    span_id, parent = row[at.span_id], row[at.parent_span_id]
    valid_parent = parent is None or _SPAN_ID.fullmatch(parent)
    if not _SPAN_ID.fullmatch(span_id) or not valid_parent:
        raise ValueError("a span id is not 16 lower-case hex digits")
    start_ns = origin_ns + int(row[at.start_offset_ns])
    attributes = dict(kind["attributes"])
    varying = row[at.attributes] if at.attributes is not None else None
    if varying:
        attributes.update(varying)
    code = int(row[at.status_code] or 0) if at.status_code is not None else STATUS_UNSET
    message = row[at.status_message] if at.status_message is not None else None
    raw_events = row[at.events] if at.events is not None else None
    events = [
        _event(str(event_name), origin_ns, offset, dict(event_attributes or {}), start_ns)
        for event_name, offset, event_attributes in raw_events or ()
    ]
    span = ReplaySpan(
        name=str(kind["name"]),
        span_id=span_id,
        parent_span_id=parent,
        start_ns=start_ns,
        end_ns=start_ns + int(row[at.duration_ns]),
        attributes=attributes,
        status_code=code if code in STATUS_NAMES else STATUS_UNSET,
        status_message=message if isinstance(message, str) else None,
        events=events,
    )
    if span.layer == conv.LAYER_BATCH_ITEM:
        worker = attributes.get(conv.ATTR_BATCH_WORKER)
        span.lane = worker if isinstance(worker, int) and not isinstance(worker, bool) else 0
    return span


def item_retry_offsets_ms(run: TraceRun) -> dict[str, list[float]]:
    """span id -> when each failed attempt of that span ended, in ms after the span started.

    The HTML report draws a retried batch item as one segment per attempt; the boundaries are
    the item span's ``pflow.retry`` events, which only the span table keeps. Only rows with
    events are looked at, and a table that does not decode gives no marks (the report then
    shows the attempts count alone) rather than an error: the marks are a detail of a view.
    """
    otel = run.otel
    table = otel.get("spans") if isinstance(otel, dict) else None
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        return {}
    try:
        at = _Columns.of(table.get("columns") or [])
    except _BadRow:
        return {}
    if at.events is None:
        return {}
    events_at, start_at, span_at = at.events, at.start_offset_ns, at.span_id
    offsets_ms: dict[str, list[float]] = {}
    for row in table["rows"]:
        try:
            events = row[events_at]
            if not events:
                continue
            start_ns = int(row[start_at])
            marks = [
                (int(offset) - start_ns) / 1e6
                for name, offset, _ in events
                if name == conv.EVENT_RETRY
            ]
        except (IndexError, TypeError, ValueError):
            continue
        if marks:
            offsets_ms[str(row[span_at])] = marks
    return offsets_ms
