"""Builds the OpenTelemetry pipeline for one process: provider, resource, processors, exporter.

Exporters are imported only when asked for (the gRPC stack is slow to import). With the lean
tracer, OTLP export uses our own encoder and sender (:mod:`pflow_trace.observe.otlp_send`)
unless the environment asks for something only the stock exporter does; the SDK path, and
that fallback, use the stock OTLP exporter. Either is wrapped in :class:`GuardedExporter`,
which gives the backend one chance per export with a short timeout and, once it has failed,
stops trying: a down collector then costs about one second at exit and yields exactly one
warning line, printed by the caller.

The exporters' own timeouts bound each socket read, not a request: a backend that accepts the
connection and answers one byte at a time would hold them for minutes. So every export, and
the whole shutdown at exit, runs against a deadline on a helper thread; past it the export is
abandoned (the thread is a daemon and dies with the process) and counted as a failure.

Unless the settings' trace shape is ``inline``, the exporter sits behind a
:class:`~pflow_trace.observe.trace_shape.ShapingExporter`, which moves a large batch's items
to linked chunk traces before they are encoded.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pflow_trace.observe.conventions import INSTRUMENTATION_NAME
from pflow_trace.observe.export_settings import ExportSettings
from pflow_trace.observe.lean_export import ExportQueue, ReadableSpanExporter
from pflow_trace.observe.lean_tracer import LeanTracerProvider, SpanSink, lean_tracing_allowed
from pflow_trace.observe.otlp_send import ExportFailed, make_wire_exporter
from pflow_trace.observe.otlp_wire import ATTR_INVALID_TIME, invalid_time_note
from pflow_trace.observe.trace_shape import shaped
from pflow_trace.version import __version__

_QUIET_LOGGERS = (
    "opentelemetry.exporter.otlp",
    "opentelemetry.util.re",  # its warning about a malformed header quotes the header's value
    "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http",
)


#: Extra time the whole shutdown at exit may take beyond one export's deadline.
SHUTDOWN_MARGIN_S = 0.25


def call_with_deadline(function: Callable[[], Any], deadline_s: float) -> tuple[bool, Any]:
    """Run ``function`` on a daemon thread for at most ``deadline_s`` seconds.

    Returns ``(True, its result)``, or ``(False, None)`` when it was still running at the
    deadline (it is left to finish or die with the process). Its exception is re-raised here.
    """
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="pflow-trace-export", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if not outcome:
        return False, None
    ok, value = outcome[0]
    if not ok:
        raise value
    return True, value


class GuardedExporter(SpanExporter):
    """Wraps an exporter: a deadline on each export; remembers the first failure and drops
    later batches at once."""

    def __init__(self, inner: SpanExporter, target: str, deadline_s: float = 1.0) -> None:
        self.inner = inner
        self.target = target
        self.deadline_s = deadline_s
        self.failure: str | None = None
        self.exported_spans = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.failure is not None:
            return SpanExportResult.FAILURE
        reason = "the backend did not accept them (is it running?)"
        try:
            finished, result = call_with_deadline(lambda: self.inner.export(spans), self.deadline_s)
        except ExportFailed as exc:  # our sender's reason, already one safe line
            result, reason = SpanExportResult.FAILURE, str(exc)
        except Exception as exc:  # an exporter bug or transport error must not reach the run
            result = SpanExportResult.FAILURE
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if not finished:
                result = SpanExportResult.FAILURE
                reason = f"the backend did not answer within {self.deadline_s:g}s"
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported_spans += len(spans)
            elif self.failure is None:
                self.failure = reason
        return result

    def shutdown(self) -> None:
        try:
            call_with_deadline(self.inner.shutdown, SHUTDOWN_MARGIN_S)
        except Exception:  # shutting down a broken transport is best effort
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.failure is None


def make_otlp_exporter(settings: ExportSettings) -> SpanExporter:
    """The stock OTLP exporter for the chosen protocol, with our short timeout."""
    if settings.protocol == "grpc":
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        insecure = (settings.endpoint or "").startswith("http://")
        return GrpcExporter(
            endpoint=settings.endpoint, insecure=insecure, timeout=settings.timeout_s
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint, timeout=settings.timeout_s)


def parent_context_from_env(env: Mapping[str, str] | None = None) -> Context | None:
    """The W3C ``TRACEPARENT``/``TRACESTATE`` context to join, when the environment has one."""
    env = os.environ if env is None else env
    traceparent = env.get("TRACEPARENT")
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if env.get("TRACESTATE"):
        carrier["tracestate"] = env["TRACESTATE"]
    return TraceContextTextMapPropagator().extract(carrier)


@dataclass
class Tracing:
    """One configured pipeline: a tracer for the runtime and a clean shutdown for the CLI."""

    #: The SDK's provider, or the lean one when spans go only to the trace file.
    provider: TracerProvider | LeanTracerProvider
    settings: ExportSettings
    guard: GuardedExporter | None = None
    extra_processors: list[SpanProcessor] = field(default_factory=list)

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer(INSTRUMENTATION_NAME, __version__)

    def shutdown(self) -> str | None:
        """Flush and stop every processor; returns the export failure, if any, as one line.

        With an OTLP backend the whole of it has a deadline (one export's, plus a margin),
        whatever the backend does.
        """
        if self.guard is None:
            self.provider.shutdown()  # the lean provider has nothing to flush
            return None
        deadline_s = self.guard.deadline_s + SHUTDOWN_MARGIN_S
        finished, _ = call_with_deadline(self.provider.shutdown, deadline_s)
        if not finished and self.guard.failure is None:
            self.guard.failure = f"the backend did not answer within {self.guard.deadline_s:g}s"
        if self.guard.failure is not None:
            return f"spans were not exported to {self.guard.target}: {self.guard.failure}"
        return None


def setup_tracing(
    settings: ExportSettings,
    extra_processors: Sequence[SpanProcessor] = (),
    resource_attributes: Mapping[str, Any] | None = None,
    span_sink: SpanSink | None = None,
) -> Tracing:
    """A private provider (the global one is left alone) wired to the chosen exporter.

    ``span_sink`` (the trace file's span recorder) receives every ended span. Unless extra SDK
    processors are given or an ``OTEL_*`` setting asks for what only the SDK does, the lean
    provider is used (:mod:`pflow_trace.observe.lean_tracer`), and an exporter, if any, gets
    SDK spans built from its spans off the run's threads (:mod:`pflow_trace.observe.lean_export`).
    Otherwise the SDK makes the spans, with the sink as one more processor.
    """
    attributes = {SERVICE_NAME: settings.service_name, **(resource_attributes or {})}
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES; an explicit service name still wins.
    resource = Resource.create(attributes)
    if not extra_processors and lean_tracing_allowed():
        scope = InstrumentationScope(INSTRUMENTATION_NAME, __version__)
        exporter, guard = _make_exporter(settings, (resource, scope))
        exports = None
        if exporter is not None:
            exporter = shaped(exporter, settings.trace_shape, resource, scope)
            exports = ExportQueue(exporter, resource, scope)
        lean = LeanTracerProvider(span_sink, resource.attributes, exports)
        if span_sink is not None:
            span_sink.set_origin(resource.attributes, INSTRUMENTATION_NAME, __version__)
        return Tracing(lean, settings, guard)
    exporter, guard = _make_exporter(settings)
    # No exit hook: Tracing.shutdown is always called, and a second, unbounded one at exit
    # would wait on a hung backend after all.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if guard is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                shaped(guard, settings.trace_shape, resource),
                max_queue_size=1_000_000,
                max_export_batch_size=4096,
                schedule_delay_millis=1000,
                export_timeout_millis=settings.timeout_s * 1000,
            )
        )
    elif exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(shaped(exporter, settings.trace_shape)))
    processors = list(extra_processors)
    if span_sink is not None:
        processors.append(span_sink)  # type: ignore[arg-type]  # the recorder is a processor
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(provider, settings, guard, processors)


def _make_exporter(
    settings: ExportSettings, lean_origin: tuple[Resource, InstrumentationScope] | None = None
) -> tuple[SpanExporter | None, GuardedExporter | None]:
    """The configured exporter (None for ``none``), and its guard when it is OTLP's.

    With ``lean_origin`` (the run's resource and scope) the exporter takes the export queue's
    lean spans: OTLP goes through our wire encoder and sender when they cover the
    environment's settings (:func:`~pflow_trace.observe.otlp_send.make_wire_exporter`), and any
    stock exporter is given SDK spans built from them (:class:`ReadableSpanExporter`).
    """

    def taking_lean_spans(exporter: SpanExporter) -> SpanExporter:
        return exporter if lean_origin is None else ReadableSpanExporter(exporter, *lean_origin)

    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        console = ConsoleSpanExporter(out=sys.stderr, formatter=console_line)
        return taking_lean_spans(console), None
    if settings.exporter == "otlp":
        _quiet_exporter_logs()
        inner: SpanExporter | None = None
        if lean_origin is not None:
            inner = make_wire_exporter(settings, *lean_origin, os.environ)
        if inner is None:
            inner = taking_lean_spans(make_otlp_exporter(settings))
        guard = GuardedExporter(inner, settings.endpoint or "", settings.timeout_s)
        return guard, guard
    return None, None


def console_line(span: ReadableSpan) -> str:
    """One span as the console exporter prints it; a span the SDK cannot print (an event time
    out of any calendar) is printed with that time left out, never a traceback."""
    try:
        return span.to_json() + os.linesep
    except (OverflowError, ValueError, OSError):
        events = [_printable_event(event, span.start_time) for event in span.events]
        safe = ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=_printable_time(span.start_time),
            end_time=_printable_time(span.end_time),
            instrumentation_scope=span.instrumentation_scope,
        )
        return safe.to_json() + os.linesep


#: Times the SDK can print: up to the year 9999.
_LAST_PRINTABLE_NS = 253_402_300_799 * 10**9


def _printable(time_ns: Any) -> bool:
    return time_ns.__class__ is int and 0 <= time_ns <= _LAST_PRINTABLE_NS


def _printable_time(time_ns: int | None) -> int | None:
    return time_ns if time_ns is None or _printable(time_ns) else None


def _printable_event(event: Event, span_start_ns: int | None) -> Event:
    """The event, or a copy at its span's start noting the time it had."""
    if _printable(event.timestamp):
        return event
    attributes = {**(event.attributes or {}), ATTR_INVALID_TIME: invalid_time_note(event.timestamp)}
    return Event(event.name, attributes, span_start_ns)


def _quiet_exporter_logs() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
