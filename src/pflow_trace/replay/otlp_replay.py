"""Replays a saved run to an OTLP backend, as if its spans were being exported live.

The spans are rebuilt as SDK :class:`ReadableSpan` objects carrying their original trace id,
span ids, parents, timestamps, status, attributes, events, resource and scope, and handed to
the OTLP exporter the ``run`` command uses (our wire encoder and sender,
:func:`~pflow_trace.observe.otlp_send.make_wire_exporter`, or the stock exporter when the
environment asks for what only it does; wrapped in :class:`GuardedExporter`). So the
endpoint rules, the protocols and the short timeout are the same as ``run``'s,
and a down backend costs one timeout and one error line, not a hang. The spans take the shape
``run`` would have exported (``--trace-shape``, :mod:`pflow_trace.observe.trace_shape`): they
are fed to the shaper children first, as a live run ends them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from pflow_trace.errors import ExportError
from pflow_trace.observe.export_settings import ExportSettings
from pflow_trace.observe.otel import GuardedExporter, make_otlp_exporter
from pflow_trace.observe.otlp_send import make_wire_exporter
from pflow_trace.observe.trace_shape import ShapePolicy, TraceShaper, post_order
from pflow_trace.tracefile.replay_model import STATUS_ERROR, STATUS_OK, ReplaySpan, ReplayTrace

#: Spans per OTLP request: well under common 4 MiB request limits for our span sizes.
SPANS_PER_REQUEST = 2048
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True)
class ReplayResult:
    """What the command reports after a replay: how many spans went where, under which trace."""

    span_count: int
    endpoint: str
    protocol: str
    trace_id: str


def to_readable_spans(trace: ReplayTrace) -> list[ReadableSpan]:
    """SDK spans with the original ids and times; one resource and scope object shared by all."""
    resource = Resource(dict(trace.resource))
    scope = InstrumentationScope(trace.scope_name, trace.scope_version)
    trace_id = int(trace.trace_id, 16)
    return [_readable(span, trace, trace_id, resource, scope) for span in trace.spans]


def _readable(
    span: ReplaySpan,
    trace: ReplayTrace,
    trace_id: int,
    resource: Resource,
    scope: InstrumentationScope,
) -> ReadableSpan:
    """One SDK span; its parent is marked remote when it lives outside the trace (TRACEPARENT)."""
    parent = None
    if span.parent_span_id is not None:
        parent = SpanContext(
            trace_id,
            int(span.parent_span_id, 16),
            is_remote=trace.has_remote_parent(span),
            trace_flags=_SAMPLED,
        )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(trace_id, int(span.span_id, 16), is_remote=False, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=dict(span.attributes),
        events=[Event(event.name, dict(event.attributes), event.time_ns) for event in span.events],
        kind=SpanKind.INTERNAL,
        status=_status(span),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=scope,
    )


def _status(span: ReplaySpan) -> Status:
    """The SDK status for the span's code; only an error keeps its message (as in the SDK)."""
    if span.status_code == STATUS_ERROR:
        return Status(StatusCode.ERROR, span.status_message)
    if span.status_code == STATUS_OK:
        return Status(StatusCode.OK)
    return Status(StatusCode.UNSET)


def shape_spans(spans: list[ReadableSpan], shape: str) -> list[ReadableSpan]:
    """The spans to send in ``shape``: as they are for ``inline``, else shaped as a live run's."""
    if shape == "inline" or not spans:
        return spans
    shaper = TraceShaper(ShapePolicy(shape), spans[0].resource, spans[0].instrumentation_scope)
    return shaper.take(post_order(spans)) + shaper.finish()


def _chunks(spans: Sequence[ReadableSpan], size: int) -> Iterator[Sequence[ReadableSpan]]:
    """Consecutive slices of at most ``size`` spans, one per OTLP request."""
    for start in range(0, len(spans), size):
        yield spans[start : start + size]


def _exporter(settings: ExportSettings, spans: Sequence[ReadableSpan]) -> SpanExporter:
    """The exporter ``run`` uses: our wire encoder and sender (a 2xx or gRPC OK is success,
    anything else, a redirect included, a failure), else the stock exporter when the
    environment asks for what only it does."""
    resource = spans[0].resource if spans else Resource({})
    scope = InstrumentationScope("pflow-trace")
    if spans and spans[0].instrumentation_scope is not None:
        scope = spans[0].instrumentation_scope
    wire = make_wire_exporter(settings, resource, scope, os.environ)
    return wire if wire is not None else make_otlp_exporter(settings)


def replay_to_otlp(trace: ReplayTrace, settings: ExportSettings) -> ReplayResult:
    """Send every span; raise :class:`ExportError` (one line) when the backend does not take them.

    The first failed request stops the replay (the guard drops the rest at once), and each
    request has a deadline of ``settings.timeout_s`` whatever the backend does, so an
    unreachable, refusing or trickling endpoint costs about that much.
    """
    # The exporters log their own tracebacks on failure; the one error line is ours to print.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    endpoint = settings.endpoint or ""
    spans = shape_spans(to_readable_spans(trace), settings.trace_shape)
    guard = GuardedExporter(_exporter(settings, spans), endpoint, settings.timeout_s)
    try:
        for chunk in _chunks(spans, SPANS_PER_REQUEST):
            guard.export(chunk)
            if guard.failure is not None:
                break
    finally:
        guard.shutdown()
    if guard.failure is not None:
        sent = (
            f" ({guard.exported_spans} of {len(spans)} spans sent)" if guard.exported_spans else ""
        )
        raise ExportError(
            f"could not export {trace.source} to {endpoint} ({settings.protocol}): "
            f"{guard.failure}{sent}"
        )
    return ReplayResult(len(spans), endpoint, settings.protocol, trace.trace_id)
