"""Spans made in another process travel back to the run as plain rows and rejoin its pipeline.

A batch item run on a worker process (a local pool or a Dask cluster) creates its item span and
every layer span inside it *there*, as children of the batch span whose W3C context came with
the task. The worker's tracer records finished spans as :data:`SpanRow` tuples (numbers,
strings and small dicts: cheap to pickle, nothing process-bound such as locks). The driver
rebuilds each row as an SDK :class:`ReadableSpan` with the run's own resource and
instrumentation scope and hands it to the run's span processors, so the trace file's span
table, the OTLP exporter and any test exporter see it exactly like a span ended locally.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, Tracer

from pflow_trace.observe.conventions import INSTRUMENTATION_NAME
from pflow_trace.observe.lean_tracer import LeanTracer
from pflow_trace.version import __version__

#: (name, span id, parent span id or 0, start ns, end ns, status code value, status message,
#: attributes, events as (name, time ns, attributes) tuples).
SpanRow = tuple[str, int, int, int, int, int, str | None, dict[str, Any], tuple[Any, ...]]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SCOPE = InstrumentationScope(INSTRUMENTATION_NAME, __version__)
_STATUS_CODES = {code.value: code for code in StatusCode}


def span_to_row(span: ReadableSpan) -> SpanRow:
    """The row a worker ships for one finished span (the trace id is the run's: not kept)."""
    parent = span.parent
    status = span.status
    events = tuple(
        (event.name, event.timestamp, dict(event.attributes or {})) for event in span.events
    )
    return (
        span.name,
        span.context.span_id,
        parent.span_id if parent is not None else 0,
        span.start_time or 0,
        span.end_time or 0,
        status.status_code.value,
        status.description,
        dict(span.attributes or {}),
        events,
    )


def row_to_span(row: SpanRow, trace_id: int, resource: Any, scope: Any) -> ReadableSpan:
    """An SDK span equal to the one the worker ended, carrying the driver's resource and scope."""
    name, span_id, parent_id, start, end, code, message, attributes, events = row
    parent = SpanContext(trace_id, parent_id, False, _SAMPLED) if parent_id else None
    return ReadableSpan(
        name,
        context=SpanContext(trace_id, span_id, False, _SAMPLED),
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=[Event(event_name, attrs, at) for event_name, at, attrs in events],
        status=Status(_STATUS_CODES.get(code, StatusCode.UNSET), message),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def adopt_span_rows(tracer: Tracer, trace_id: int, rows: Iterable[SpanRow]) -> int:
    """End the shipped spans in ``tracer``'s pipeline, as if they had ended here.

    Uses the SDK tracer's own processor chain (the object its spans end through), so
    every sink configured for the run receives them. Returns how many spans were handed on;
    0 for a tracer that records nothing (the no-op tracer of an untraced run).
    """
    if isinstance(tracer, LeanTracer):
        return _adopt_into_lean(tracer, trace_id, rows)
    processor = getattr(tracer, "span_processor", None)
    if processor is None:
        return 0
    resource = getattr(tracer, "resource", None)
    scope = getattr(tracer, "_instrumentation_scope", None) or _SCOPE
    count = 0
    for row in rows:
        processor.on_end(row_to_span(row, trace_id, resource, scope))
        count += 1
    return count


def _adopt_into_lean(tracer: LeanTracer, trace_id: int, rows: Iterable[SpanRow]) -> int:
    """The lean tracer's two sinks: the span table row, and the exporter's queue if any."""
    sink, exports = tracer.sink, tracer.exports
    count = 0
    for row in rows:
        name, span_id, parent_id, start, end, code, message, attributes, events = row
        if sink is not None:
            sink.record(
                name, attributes, span_id, parent_id, start, end, code, message,
                list(events) or None,
            )  # fmt: skip
        if exports is not None:
            exports.append(row_to_span(row, trace_id, exports.resource, exports.scope))
        count += 1
    return count


class RowCollector(SpanProcessor):
    """A worker's span sink: every span ended on a thread goes into that thread's open list."""

    def __init__(self) -> None:
        self._local = threading.local()

    def begin(self) -> None:
        """Start collecting this thread's spans (one item's)."""
        self._local.rows = []

    def take(self) -> list[SpanRow]:
        """This thread's rows since :meth:`begin`, in the order the spans ended."""
        rows: list[SpanRow] = getattr(self._local, "rows", None) or []
        self._local.rows = None
        return rows

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        rows = getattr(self._local, "rows", None)
        if rows is not None:
            rows.append(span_to_row(span))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_worker_lock = threading.Lock()
_worker_pipeline: tuple[Tracer, RowCollector] | None = None


def worker_tracing() -> tuple[Tracer, RowCollector]:
    """The worker process's tracer and the collector its spans end in (made once per process)."""
    global _worker_pipeline
    with _worker_lock:
        if _worker_pipeline is None:
            collector = RowCollector()
            provider = TracerProvider()
            provider.add_span_processor(collector)
            _worker_pipeline = (provider.get_tracer(INSTRUMENTATION_NAME, __version__), collector)
        return _worker_pipeline
