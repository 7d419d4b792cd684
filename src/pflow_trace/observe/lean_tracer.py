"""A lean OpenTelemetry tracer for runs whose spans go only to the trace file.

The OpenTelemetry *API* is what the runtime and any instrumentation inside a node talk to;
the SDK is one implementation of it. With no exporter configured (the default), nothing needs
the SDK's span objects, processors, locks and bounded-attribute proxies: the trace file's span
table wants a handful of ids, times and attributes per span. :class:`LeanTracerProvider`
makes spans that hold exactly that and, when they end, hand those fields to a
:class:`SpanSink` (the trace file's span recorder) — one call, no copies.

What stays the same as the SDK, so the span table is identical whichever path made it:
random 64-bit span ids and 128-bit trace ids, parenting from the current context (also a
``TRACEPARENT`` parent), the parent-based always-on sampler (a parent that is not sampled makes
a non-recording child), the resource (``Resource.create``, which reads ``OTEL_RESOURCE_*``),
the instrumentation scope, status rules (OK is final; UNSET is ignored), the default limits of
128 attributes and 128 events per span, and attribute value cleaning for values that are not
plain strings or numbers. Settings that change the SDK's behaviour beyond that (a sampler,
span limits, the SDK switched off) make :func:`lean_tracing_allowed` say no, and the SDK is
used instead.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.context import Context, get_current
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)

from pflow_trace.observe.lean_export import ExportQueue

#: The SDK's default span limits (``SpanLimits``): attributes and events per span.
MAX_ATTRIBUTES = 128
MAX_EVENTS = 128

#: Environment variables that make the SDK behave differently from what this tracer does.
_SDK_ONLY_ENV_PREFIXES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_SPAN_",
    "OTEL_ATTRIBUTE_",
    "OTEL_EVENT_",
    "OTEL_LINK_",
)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_BIT = TraceFlags.SAMPLED
_PLAIN_TYPES = (str, int, float, bool)
_getrandbits = random.getrandbits
_time_ns = time.time_ns
_get_current_span = trace.get_current_span
_get_current_context = get_current


#: The context key the API keeps the current span under, read off the public API: the one
#: key ``set_span_in_context`` adds to an empty context (None, and unused, if that changes).
_KEYS = list(trace.set_span_in_context(trace.INVALID_SPAN, Context()))
_SPAN_KEY = _KEYS[0] if len(_KEYS) == 1 else None
_UNSET, _ERROR = StatusCode.UNSET, StatusCode.ERROR
_OK_CODE = StatusCode.OK.value
_PLAIN_TYPE_SET = frozenset(_PLAIN_TYPES)
_new_tuple = tuple.__new__


def _new_span_context(trace_id: int, span_id: int, trace_state: Any) -> SpanContext:
    """A sampled local span context. Ids here are always valid (non-zero, in range), so the
    tuple is made directly, skipping ``SpanContext.__new__``'s checks on the hot path."""
    return _new_tuple(SpanContext, (trace_id, span_id, False, _SAMPLED, trace_state, True))


def _tuple_layout_is_known() -> bool:
    """Whether ``SpanContext`` is still the tuple this module reads and writes by position;
    if a later API changes it, :func:`lean_tracing_allowed` says no and the SDK is used."""
    probe = SpanContext(2, 3, True, _SAMPLED, DEFAULT_TRACE_STATE)
    made = _new_span_context(2, 3, DEFAULT_TRACE_STATE)
    return tuple(probe) == (2, 3, True, _SAMPLED, DEFAULT_TRACE_STATE, True) and (
        made.trace_id,
        made.span_id,
        made.is_remote,
        made.trace_flags,
        made.is_valid,
    ) == (2, 3, False, _SAMPLED, True)


_TUPLE_LAYOUT_KNOWN = _tuple_layout_is_known()


class SpanSink(Protocol):
    """Where ended spans go: the trace file's span recorder implements this."""

    def set_origin(
        self, resource_attributes: Mapping[str, Any], scope_name: str, scope_version: str | None
    ) -> None: ...

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
    ) -> None: ...


def lean_tracing_allowed(env: Mapping[str, str] | None = None) -> bool:
    """False when an ``OTEL_*`` setting asks for SDK behaviour this tracer does not have."""
    env = os.environ if env is None else env
    return _TUPLE_LAYOUT_KNOWN and not any(name.startswith(_SDK_ONLY_ENV_PREFIXES) for name in env)


def _clean(value: Any) -> Any:
    """The SDK's attribute value rules, paid only for values that are not plain scalars."""
    if value is None or isinstance(value, _PLAIN_TYPES):
        return value
    return _clean_attribute_value(value, None)


class LeanSpan(trace.Span):
    """A recording span that keeps its fields in slots and reports them once, when it ends."""

    __slots__ = (
        "_code",
        "_context",
        "_owned",
        "_tracer",
        "attributes",
        "end_ns",
        "events",
        "name",
        "parent",
        "start_ns",
        "status_description",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start_ns: int,
        attributes: dict[str, Any],
        tracer: LeanTracer,
    ) -> None:
        self.name = name
        self._context = context
        #: The parent's context (remote for a ``TRACEPARENT`` parent), or None for a root.
        self.parent = parent
        self.start_ns = start_ns
        self.end_ns = 0
        #: The caller's dict until this span changes it (copy on write: layers pass theirs).
        self.attributes = attributes
        self._owned = False
        self.events: list[tuple[str, int, dict[str, Any]]] | None = None
        self._code = 0  # StatusCode's value: the span table stores the number
        self.status_description: str | None = None
        self._tracer = tracer

    @property
    def status_code(self) -> StatusCode:
        return StatusCode(self._code)

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self.end_ns == 0

    def set_attribute(self, key: str, value: Any) -> None:
        if self.end_ns or not key:
            return
        if not self._owned:
            self.attributes = dict(self.attributes)
            self._owned = True
        if key not in self.attributes and len(self.attributes) >= MAX_ATTRIBUTES:
            return
        value = _clean(value)
        if value is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self.end_ns:
            return
        if self.events is None:
            self.events = []
        if len(self.events) >= MAX_EVENTS:
            return
        cleaned = {key: _clean(value) for key, value in (attributes or {}).items() if key}
        when = timestamp if timestamp is not None else _time_ns()
        self.events.append((name, when, {k: v for k, v in cleaned.items() if v is not None}))

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        return None  # the span table has no links; the SDK path keeps them for exporters

    def update_name(self, name: str) -> None:
        if not self.end_ns:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_ns or self._code == _OK_CODE:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
            description = description if code is _ERROR else None
        if code is _UNSET:
            return
        self._code, self.status_description = code.value, description

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        import traceback

        kind = type(exception)
        module = kind.__module__
        described = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", described, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns:
            return
        self.end_ns = end_time if end_time is not None else _time_ns()
        tracer = self._tracer
        sink = tracer.sink
        if sink is not None:
            parent = self.parent
            sink.record(
                self.name,
                self.attributes,
                self._context[1],  # span_id (SpanContext is a tuple; see _new_span_context)
                parent[1] if parent is not None else 0,
                self.start_ns,
                self.end_ns,
                self._code,
                self.status_description,
                self.events,
            )
        if tracer.exports is not None:
            tracer.exports.append(self)

    def __repr__(self) -> str:
        return f"LeanSpan({self.name!r}, span_id={self._context.span_id:016x})"


class LeanTracer(Tracer):
    """Starts :class:`LeanSpan`\\ s; parent-based always-on sampling, as the SDK's default."""

    def __init__(self, sink: SpanSink | None, exports: ExportQueue | None = None) -> None:
        self.sink = sink
        #: With an exporter configured: where ended spans wait to be exported.
        self.exports = exports

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        # Almost always one of our spans: read straight from the context (get_current_span's
        # work, minus two calls and an ABC isinstance check).
        current = (context if context is not None else _get_current_context()).get(_SPAN_KEY)
        if current.__class__ is LeanSpan:
            parent = current._context
        else:
            parent = _get_current_span(context).get_span_context()
        span_id = _getrandbits(64) or 1
        # Tuple fields (trace_id, span_id, is_remote, flags, state, is_valid): the properties
        # cost a Python call each, and this runs for every span.
        if parent[5]:
            if not parent[3] & _SAMPLED_BIT:
                return NonRecordingSpan(
                    SpanContext(
                        parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
                    )
                )
            span_context = _new_span_context(parent[0], span_id, parent[4])
            parent_context: SpanContext | None = parent
        else:
            span_context = _new_span_context(_getrandbits(128) or 1, span_id, DEFAULT_TRACE_STATE)
            parent_context = None
        if attributes is None:
            owned: dict[str, Any] = {}
        elif type(attributes) is dict and _PLAIN_TYPE_SET.issuperset(
            map(type, attributes.values())
        ):
            owned = attributes  # copied on the span's first change, never mutated here
        else:
            owned = {key: _clean(value) for key, value in attributes.items() if key}
            owned = {key: value for key, value in owned.items() if value is not None}
        return LeanSpan(
            name,
            span_context,
            parent_context,
            start_time if start_time is not None else _time_ns(),
            owned,
            self,
        )

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(TracerProvider):
    """One tracer per run for the default case (trace file only, no exporter)."""

    def __init__(
        self,
        sink: SpanSink | None,
        resource_attributes: Mapping[str, Any],
        exports: ExportQueue | None = None,
    ) -> None:
        self.sink = sink
        self.resource_attributes = dict(resource_attributes)
        self.exports = exports
        self._tracer = LeanTracer(sink, exports)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> Tracer:
        return self._tracer

    def shutdown(self) -> None:
        """Export what is still waiting (with an exporter); nothing to do otherwise."""
        if self.exports is not None:
            self.exports.shutdown()


def moved_copy(span: LeanSpan, trace_id: int, parent: SpanContext | None) -> LeanSpan:
    """A copy of an ended span in trace ``trace_id``, its span id kept, under ``parent`` (or
    its own parent's span id in that trace): how the linked export shape moves a batch item's
    spans to a chunk trace (``observe/trace_shape.py``) without building SDK spans."""
    # Field by field, not a loop over ``__slots__`` with getattr/setattr: every span of a
    # batch item passes here when the linked shape is exported (a test checks every slot).
    copy = _new_lean_span(LeanSpan)
    context = span._context
    copy._context = _new_span_context(trace_id, context[1], context[4])
    if parent is None and span.parent is not None:
        parent = _new_span_context(trace_id, span.parent[1], context[4])
    copy.parent = parent
    copy._code = span._code
    copy._owned = span._owned
    copy._tracer = span._tracer
    copy.attributes = span.attributes
    copy.end_ns = span.end_ns
    copy.events = span.events
    copy.name = span.name
    copy.start_ns = span.start_ns
    copy.status_description = span.status_description
    return copy


_new_lean_span = LeanSpan.__new__
