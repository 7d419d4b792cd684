"""Hands a lean tracer's ended spans to an exporter, in batches, off the run's threads.

With an exporter configured the lean tracer still makes its spans (the span table is built
the same way either way); each ended span is also appended to an :class:`ExportQueue`. A
worker thread wakes every ``delay_s`` (or as soon as a full batch is waiting) and calls the
exporter with batches of at most ``batch_size`` spans: the lean spans themselves, and the SDK
:class:`ReadableSpan`\\ s that worker processes shipped back. The run's threads only append.

For OTLP the exporter is :class:`~pflow_trace.observe.otlp_send.WireExporter`, which encodes
both kinds of span straight into OTLP's wire format. An exporter that takes only SDK spans (the
stock OTLP exporters, used when the environment asks for what ours does not do, and the
console exporter) is wrapped in :class:`ReadableSpanExporter`, which builds SDK span objects
with the same ids, times, attributes, status and events. ``shutdown`` exports what is left;
:class:`~pflow_trace.observe.otel.Tracing` puts a deadline on it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode

_STATUSES = {code.value: Status(code) for code in StatusCode}


class ExportQueue:
    """Ended spans waiting for the exporter; ``append`` is the only hot-path call.

    ``exporter`` receives lean spans and ``ReadableSpan``\\ s in the order they ended.
    ``resource`` and ``scope`` are the run's: shipped spans are rebuilt with them.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        resource: Resource,
        scope: InstrumentationScope,
        batch_size: int = 4096,
        delay_s: float = 1.0,
    ) -> None:
        self.exporter = exporter
        self.resource = resource
        self.scope = scope
        self.batch_size = batch_size
        self.delay_s = delay_s
        #: Ended spans not yet exported; swapped out whole by the worker.
        self.pending: list[Any] = []
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()  # one export at a time: worker or shutdown
        self._worker = threading.Thread(
            target=self._work, name="pflow-trace-span-export", daemon=True
        )
        self._worker.start()

    def append(self, span: Any) -> None:
        pending = self.pending
        pending.append(span)
        if len(pending) >= self.batch_size:
            self._wake.set()

    def _work(self) -> None:
        while not self._stopping:
            self._wake.wait(self.delay_s)
            self._wake.clear()
            if not self._stopping:
                self._export_pending()

    def _export_pending(self) -> None:
        with self._lock:
            spans, self.pending = self.pending, []
            for start in range(0, len(spans), self.batch_size):
                self.exporter.export(spans[start : start + self.batch_size])

    def shutdown(self) -> None:
        """Stop the worker, export everything still waiting, then shut the exporter down."""
        self._stopping = True
        self._wake.set()
        self._export_pending()
        self.exporter.shutdown()

    def force_flush(self) -> None:
        self._export_pending()


def as_readable(span: Any, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """The SDK's view of one ended lean span (an SDK span, shipped back, is returned as is)."""
    if isinstance(span, ReadableSpan):
        return span
    code = span._code
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=resource,
        attributes=dict(span.attributes),
        events=[Event(name, attrs, time) for name, time, attrs in span.events or ()],
        kind=SpanKind.INTERNAL,
        status=_STATUSES[code] if code != 2 else Status(StatusCode.ERROR, span.status_description),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=scope,
    )


class ReadableSpanExporter(SpanExporter):
    """Gives an exporter that takes only SDK spans the queue's lean spans as SDK spans."""

    def __init__(
        self, inner: SpanExporter, resource: Resource, scope: InstrumentationScope
    ) -> None:
        self.inner = inner
        self.resource = resource
        self.scope = scope

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        resource, scope = self.resource, self.scope
        return self.inner.export([as_readable(span, resource, scope) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
