"""Keeps every finished span of a run, compactly, so the trace file can replay them exactly.

A :class:`SpanProcessor` like any exporter's: it sees the same spans Jaeger would. Spans that
share a name share their static attributes (layer, node id, node type), so each span is stored
as a short tuple: its *kind* (name plus static attributes, stored once), ids, times relative
to the run's start, status, the attributes that differ from its kind's, and its events. The
trace file's ``otel.spans`` table is this, serialised; ``pflow-trace export`` rebuilds real
spans from it with their original ids and timestamps
(:mod:`pflow_trace.tracefile.spantable_decode`). Both sides take the column names from
:mod:`pflow_trace.tracefile.spantable_format`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from pflow_trace.observe import conventions as conv
from pflow_trace.tracefile.spantable_format import COLUMNS, STATUS_CODE_BY_NAME
from pflow_trace.tracefile.spool import Spool, TextBlocks, encode_json

#: Attributes that vary per span of the same name; everything else is part of the kind.
_VARYING = frozenset(
    {
        conv.ATTR_BATCH_INDEX,
        conv.ATTR_BATCH_ATTEMPTS,
        conv.ATTR_BATCH_ITEM_PREVIEW,
        conv.ATTR_BATCH_WORKER,
        conv.ATTR_BATCH_HOST,
        conv.ATTR_BATCH_PID,
        conv.ATTR_BATCH_WORKER_ADDRESS,
        conv.ATTR_BATCH_TIME_ATTEMPTS_US,
        conv.ATTR_BATCH_TIME_RETRY_WAIT_US,
        conv.ATTR_BATCH_TIME_PROVIDER_US,
        conv.ATTR_BATCH_SIZE,
        conv.ATTR_BATCH_SUCCESS_COUNT,
        conv.ATTR_BATCH_ERROR_COUNT,
        conv.ATTR_EXECUTION_ID,
        conv.ATTR_FINAL_STATUS,
        *conv.GEN_AI_VARYING_ATTRIBUTES,
    }
)

_VARYING_ORDER = tuple(sorted(_VARYING))

#: A row as :meth:`SpanRecorder.on_end` keeps it until :meth:`SpanRecorder.table` encodes it:
#: (kind, span id, parent id or 0, start ns, end ns, status code, status message, varying
#: attributes or None, events as (name, time ns, attributes) or None).
RawRow = tuple[Any, ...]

#: Rows encoded and spooled together: big enough that encoding is one tight loop, small
#: enough that a 1,000,000-item run never holds more than a few blocks of raw rows.
ROWS_PER_BLOCK = 4096


class SpanRecorder(SpanProcessor):
    """Records ended spans as rows of the trace file's span table; thread-safe and cheap."""

    def __init__(self, spool: Spool | None = None) -> None:
        self._kinds: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = {}
        #: span name -> (kind, attributes) for kinds whose spans carry no varying attribute.
        self._plain_kinds: dict[str, tuple[int, dict[str, Any]]] = {}
        #: span name -> (kind, its attributes, the keys of its usual shape, that shape's
        #: varying keys in row order) for kinds whose spans add varying attributes.
        self._mixed_kinds: dict[str, tuple[int, dict[str, Any], set[str], tuple[str, ...]]] = {}
        #: Kinds in index order; appended under the lock, read by :meth:`table`.
        self.kinds: list[dict[str, Any]] = []
        #: Rows not yet encoded: a block's worth at most once the run's start is known.
        #: A deque: lanes append and a flush pops, both atomic, so neither takes a lock.
        self._rows: deque[RawRow] = deque()
        #: Rows in their trace-file form (JSON text), in the spool as blocks fill up.
        self.rows = TextBlocks(spool)
        #: The run's start: rows store times relative to it (None until the run starts).
        self._origin_ns: int | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one block encoded at a time, rows kept in order
        self.resource_attributes: dict[str, Any] = {}
        self.scope: dict[str, str | None] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        """An SDK span (exporter configured, or extra processors): its fields, then a row."""
        if not self.scope and span.instrumentation_scope is not None:
            self.set_origin(
                span.resource.attributes,
                span.instrumentation_scope.name,
                span.instrumentation_scope.version,
            )
        # The SDK's attributes are a read-only proxy over a BoundedAttributes over a plain dict;
        # reading that dict directly avoids three layers of the Mapping protocol per key. If
        # the SDK's internals change, the public (slower) mapping is used instead.
        raw: Mapping[str, Any] | None = getattr(getattr(span, "_attributes", None), "_dict", None)
        if not isinstance(raw, dict):
            raw = dict(span.attributes or {})
        events = (
            [(event.name, event.timestamp, dict(event.attributes or {})) for event in span.events]
            if span.events
            else None
        )
        parent = span.parent
        status = span.status
        self.record(
            span.name,
            raw,
            span.context.span_id,
            parent.span_id if parent is not None else 0,
            span.start_time or 0,
            span.end_time or 0,
            STATUS_CODE_BY_NAME.get(status.status_code.name, 0),
            status.description,
            events,
        )

    def set_origin(
        self, resource_attributes: Mapping[str, Any], scope_name: str, scope_version: str | None
    ) -> None:
        """The resource and instrumentation scope every span of the run shares."""
        with self._lock:
            if not self.scope:
                self.resource_attributes = dict(resource_attributes)
                self.scope = {"name": scope_name, "version": scope_version}

    def record(
        self,
        name: str,
        attributes: dict[str, Any],
        span_id: int,
        parent_span_id: int,
        start_ns: int,
        end_ns: int,
        status_code: int,
        status_description: str | None,
        events: list[tuple[str, int, dict[str, Any]]] | None,
    ) -> None:
        """One ended span, from the SDK (:meth:`on_end`) or the lean tracer, as a raw row."""
        varying = None
        # Fast path: most spans (namespaced, template, node) carry exactly their kind's
        # attributes, and comparing two small dicts is one C call.
        plain = self._plain_kinds.get(name)
        if plain is not None and attributes == plain[1]:
            kind = plain[0]
        else:
            # Second fast path (batch items, the root): the kind's attributes are all there
            # and every other key is a varying one; set operations on dict views, in C.
            # Its usual shape (the same keys as the last span of this name) skips the set
            # difference and the sort.
            mixed = self._mixed_kinds.get(name)
            if mixed is None or not mixed[1].items() <= attributes.items():
                kind, varying = self._kind_of(name, attributes)
            elif attributes.keys() == mixed[2]:
                kind = mixed[0]
                varying = {attr: attributes[attr] for attr in mixed[3]}
            else:
                extra = attributes.keys() - mixed[1].keys()
                if extra <= _VARYING:
                    kind = mixed[0]
                    order = tuple(sorted(extra))
                    varying = {attr: attributes[attr] for attr in order} if order else None
                    self._mixed_kinds[name] = (kind, mixed[1], set(attributes), order)
                else:
                    kind, varying = self._kind_of(name, attributes)
        # Rows hold only numbers and strings in the common case, so the garbage collector
        # stops tracking them: a long batch must not make every collection walk its spans.
        row = (
            kind,
            span_id,
            parent_span_id,
            start_ns,
            end_ns,
            status_code,
            status_description,
            varying,
            events,
        )
        rows = self._rows
        rows.append(row)
        if len(rows) >= ROWS_PER_BLOCK and self._origin_ns is not None:
            self._flush()

    def start(self, origin_ns: int) -> None:
        """The run started at ``origin_ns``: from now on full blocks of rows are spooled."""
        self._origin_ns = origin_ns

    def _flush(self) -> None:
        """Encode the rows waiting (on the thread that filled the block) and spool them."""
        origin_ns = self._origin_ns
        if origin_ns is None:
            return
        with self._flush_lock:
            rows = self._rows
            pending = [rows.popleft() for _ in range(len(rows))]  # in the order they ended
            if pending:
                text = ", ".join([encode_row(raw, origin_ns) for raw in pending])
                self.rows.append_block(text, len(pending))

    def _kind_of(self, name: str, attributes: dict[str, Any]) -> tuple[int, Any]:
        """The slow path: the span's kind (added when new) and its varying attributes."""
        key = (name, tuple(item for item in attributes.items() if item[0] not in _VARYING))
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._add_kind(key)
        if len(attributes) > len(key[1]):
            order = tuple(attr for attr in _VARYING_ORDER if attr in attributes)
            if name not in self._mixed_kinds:
                self._mixed_kinds[name] = (kind, dict(key[1]), set(attributes), order)
            return kind, {attr: attributes[attr] for attr in order}
        if name not in self._plain_kinds:
            self._plain_kinds[name] = (kind, dict(attributes))
        return kind, None

    def _add_kind(self, key: tuple[str, tuple[tuple[str, Any], ...]]) -> int:
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                kind = self._kinds[key] = len(self.kinds)
                attributes = {
                    name: list(value) if isinstance(value, tuple) else value
                    for name, value in key[1]
                }
                self.kinds.append({"name": key[0], "attributes": attributes})
            return kind

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def table(self, origin_ns: int) -> dict[str, Any]:
        """The ``otel.spans`` table: kinds once, then one row per span, times from ``origin_ns``.

        The rows are a :class:`~pflow_trace.tracefile.spool.TextBlocks` (most of them in the
        spool); the spans that ended since the last full block are encoded now. A later call
        (a run built mid-way, then finished) adds only the spans that ended since.
        """
        if self._origin_ns is None:
            self._origin_ns = origin_ns
        self._flush()
        with self._lock:
            kinds = list(self.kinds)
        return {
            "resource": self.resource_attributes,
            "scope": self.scope,
            "kinds": kinds,
            "columns": list(COLUMNS),
            "rows": self.rows,
        }


#: CPython's C encoder made once, without the circular-reference check: row values are
#: cleaned span attributes and events (scalars and tuples of them), which cannot hold a cycle.
#: Calling it directly skips ``JSONEncoder.encode``'s Python wrapper, half the cost of a small
#: dict. None where the C encoder is missing.
_C_ENCODE = (
    c_make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, False)
    if c_make_encoder is not None
    else None
)


def _json(value: Any) -> str:
    """A row's value as the trace writer writes it; what the fast encoder refuses (NaN,
    infinity, an int too long to print) goes the writer's own way (``spool.encode_json``)."""
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(value, 0))
        except (TypeError, ValueError, RecursionError):
            pass
    return encode_json(value)


#: A row with a parent and nothing but ids, times and a status code.
_PLAIN_ROW = '[%d, "%016x", "%016x", %d, %d, %d, null, null, null]'


def encode_row(raw: RawRow, origin_ns: int) -> str:
    """One row as JSON text, in :data:`~pflow_trace.tracefile.spantable_format.COLUMNS` order,
    times made relative to ``origin_ns`` and ids made hex; exactly the text ``json.dumps``
    gives for the row as a list (a test compares them)."""
    kind, span_id, parent, start, end, code, description, varying, events = raw
    if parent and description is None and varying is None and not events:
        # Three of an item's four spans: one C-level format (about 0.3 µs less than below).
        return _PLAIN_ROW % (kind, span_id, parent, start - origin_ns, end - start, code)
    parent_text = f'"{parent:016x}"' if parent else "null"
    if description is None and not events:  # most spans: at most the varying attributes
        tail = "null, null, null" if varying is None else f"null, {_json(varying)}, null"
    else:
        timed = [[name, at - origin_ns, attrs] for name, at, attrs in events] if events else None
        tail = f"{_json(description)}, {_json(varying)}, {_json(timed)}"
    return (
        f'[{kind}, "{span_id:016x}", {parent_text}, {start - origin_ns}, {end - start}, '
        f"{code}, {tail}]"
    )
