"""Writes spans as an OTLP ``ExportTraceServiceRequest`` straight into protobuf's wire format.

The stock encoder (``encode_spans`` in opentelemetry-exporter-otlp-proto-common) builds a
protobuf message object for every span, attribute and value, in Python: about 40 µs a span, on
the export thread, holding the interpreter lock the run's threads are waiting for. The bytes a
backend receives are simple to write by hand, and most of them repeat from span to span (the
same node id, layer and type on every item of a batch, the same trace id, the same few names),
so :class:`TraceRequestEncoder` keeps the encoded form of repeated names and scalar attributes
(bounded caches) and writes the rest with ``struct`` and ``bytes.join``.

Input: the lean tracer's spans (:class:`~pflow_trace.observe.lean_tracer.LeanSpan`) and SDK
:class:`ReadableSpan`\\ s (those a worker process shipped back, see
:mod:`pflow_trace.observe.worker_spans`), in any mix. The output parses to the very message
the stock encoder builds for the same spans turned into SDK spans: spans grouped by resource,
then instrumentation scope, in order of first appearance; ids, parent ids, kind, times,
attributes of every type, events, links, status, flags, trace state and dropped counts.
``tests/observe/test_otlp_wire.py`` holds it to that. Field numbers are those of
opentelemetry-proto's ``trace.proto``, ``common.proto`` and ``resource.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pflow_trace.observe import conventions as conv
from pflow_trace.text import escape_surrogates, safe_repr

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from pflow_trace.observe.lean_tracer import LeanSpan

#: Entries each cache may hold before it starts over (names, attributes, trace fields).
CACHE_LIMIT = 8192
#: Longer string values are encoded each time rather than kept.
CACHED_STRING_MAX_CHARS = 256

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_FIELD_1 = b"\x0a"  # fields 1 to 3, length-delimited, of many messages (key, value, id...)
_FIELD_2 = b"\x12"
_FIELD_3 = b"\x1a"
_SPAN_TRACE_STATE = b"\x1a"
_SPAN_NAME = b"\x2a"
_SPAN_ATTRIBUTE = b"\x4a"
_SPAN_DROPPED_ATTRIBUTES = b"\x50"
_SPAN_EVENT = b"\x5a"
_SPAN_DROPPED_EVENTS = b"\x60"
_SPAN_LINK = b"\x6a"
_SPAN_DROPPED_LINKS = b"\x70"
_SPAN_STATUS = b"\x7a"
_SPAN_FLAGS = b"\x85\x01"  # field 16, fixed32
_EVENT_ATTRIBUTE = b"\x1a"
_EVENT_DROPPED_ATTRIBUTES = b"\x20"
_LINK_ATTRIBUTE = b"\x22"
_LINK_DROPPED_ATTRIBUTES = b"\x28"
_LINK_FLAGS = b"\x35"
_STATUS_MESSAGE = b"\x12"
_STATUS_CODE = b"\x18"
_VALUE_BOOL_TRUE = b"\x10\x01"
_VALUE_BOOL_FALSE = b"\x10\x00"
_VALUE_INT = b"\x18"
_VALUE_DOUBLE = b"\x21"
_VALUE_ARRAY = b"\x2a"
_VALUE_KVLIST = b"\x32"
_VALUE_BYTES = b"\x3a"

#: ``SpanFlags``: the parent's is-remote bit is known (always), and set (a remote parent).
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64_MASK = (1 << 64) - 1
_KINDS = {kind: kind.value + 1 for kind in SpanKind}  # the API's INTERNAL is 0, OTLP's is 1
_INTERNAL = _KINDS[SpanKind.INTERNAL]

_pack_double = struct.Struct("<d").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_id_field = struct.Struct(">BBQ").pack  # tag, length 8, a 64-bit id (big-endian bytes)
_pack_kind_and_times = struct.Struct("<BBBQBQ").pack  # kind, start and end time
_SMALL_VARINTS = tuple(bytes((number,)) for number in range(128))


#: The attribute an event gets when its time was not a Unix time in nanoseconds (a node's
#: ``llm_usage.retries[].time_unix_nano`` of ``10**30``, ``-5`` or ``"soon"``): the event is
#: sent without a time (the backend uses the span's) and this says what the time was.
ATTR_INVALID_TIME = conv.ATTR_INVALID_TIME


def is_unix_nano(value: Any) -> bool:
    """Whether ``value`` can be a protobuf ``fixed64`` time: an int in [0, 2**64)."""
    return value.__class__ is int and 0 <= value <= _UINT64_MASK


def invalid_time_note(value: Any) -> str:
    """What :data:`ATTR_INVALID_TIME` holds: the value, short enough for any backend."""
    text = safe_repr(value) if not isinstance(value, int) or value.bit_length() < 256 else ""
    return text[:64] if text else f"<{type(value).__name__} of {value.bit_length()} bits>"


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate escaped (:func:`~pflow_trace.text.escape_surrogates`)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return escape_surrogates(text).encode()


def _varint(number: int) -> bytes:
    if number < 128:
        return _SMALL_VARINTS[number]
    if number < 16384:  # most lengths: a span, a long attribute
        return bytes((number & 0x7F | 0x80, number >> 7))
    out = bytearray()
    while number > 127:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _int64(number: int) -> bytes:
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"{number} does not fit a 64-bit integer")
    return _varint(number & _UINT64_MASK)


def any_value(value: Any) -> bytes:
    """The body of an ``AnyValue`` message, with the stock encoder's choice of type.

    Raises for a value it cannot encode (an integer beyond 64 bits, an unknown type); the
    attribute holding it is then left out, as the stock encoder does. A string that is not
    valid Unicode is escaped (:func:`utf8`).
    """
    if value is None:
        return b""
    if isinstance(value, bool):
        return _VALUE_BOOL_TRUE if value else _VALUE_BOOL_FALSE
    if isinstance(value, str):
        return _field(_FIELD_1, utf8(value))
    if isinstance(value, int):
        return _VALUE_INT + _int64(value)
    if isinstance(value, float):
        return _VALUE_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_VALUE_BYTES, value)
    if isinstance(value, Sequence):
        values = b"".join([_field(_FIELD_1, any_value(item)) for item in value])
        return _field(_VALUE_ARRAY, values)
    if isinstance(value, Mapping):
        pairs = [_field(_FIELD_1, key_value(str(k), v)) for k, v in value.items()]
        return _field(_VALUE_KVLIST, b"".join(pairs))
    raise TypeError(f"cannot encode a {type(value).__name__} attribute value")


def key_value(key: str, value: Any) -> bytes:
    """The body of a ``KeyValue`` message (an empty key is left out, as proto3 does)."""
    key_field = _field(_FIELD_1, utf8(key)) if key else b""
    return key_field + _field(_FIELD_2, any_value(value))


def attribute_fields(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """One ``KeyValue`` field per attribute that can be encoded."""
    fields = []
    for key, value in (attributes or {}).items():
        try:
            fields.append(_field(tag, key_value(key, value)))
        except (TypeError, ValueError):  # left out, not fatal
            continue
    return fields


def _optional_string(tag: bytes, text: str | None) -> bytes:
    return _field(tag, utf8(text)) if text else b""


def _optional_varint(tag: bytes, number: int | None) -> bytes:
    return tag + _varint(number) if number else b""


def _trace_state_text(trace_state: Any) -> str:
    if trace_state is None:
        return ""
    return ",".join([f"{key}={value}" for key, value in trace_state.items()])


def _status_and_flags(code: int, message: str | None, remote_parent: bool) -> bytes:
    status = _optional_string(_STATUS_MESSAGE, message) + _optional_varint(_STATUS_CODE, code)
    flags = _FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE if remote_parent else 0)
    return _field(_SPAN_STATUS, status) + _SPAN_FLAGS + _pack_fixed32(flags)


def _times(kind: int, start_ns: int | None, end_ns: int | None) -> bytes:
    start_ns = start_ns if is_unix_nano(start_ns) else None
    end_ns = end_ns if is_unix_nano(end_ns) else None
    if start_ns and end_ns:
        return _pack_kind_and_times(0x30, kind, 0x39, start_ns, 0x41, end_ns)
    kind_field = b"\x30" + _varint(kind)
    start = b"\x39" + _pack_fixed64(start_ns) if start_ns else b""
    return kind_field + start + (b"\x41" + _pack_fixed64(end_ns) if end_ns else b"")


def _event(name: str, time_ns: int | None, attributes: Any, dropped: int) -> bytes:
    """One event; a time that is not a Unix time in ns is left out and noted on the event
    (:data:`ATTR_INVALID_TIME`), so one bad value never costs the span or its batch."""
    if time_ns is not None and not is_unix_nano(time_ns):
        attributes = {**(attributes or {}), ATTR_INVALID_TIME: invalid_time_note(time_ns)}
        time_ns = None
    body = [b"\x09" + _pack_fixed64(time_ns) if time_ns else b"", _optional_string(b"\x12", name)]
    body += attribute_fields(_EVENT_ATTRIBUTE, attributes)
    body.append(_optional_varint(_EVENT_DROPPED_ATTRIBUTES, dropped))
    return _field(_SPAN_EVENT, b"".join(body))


def _link(link: Any) -> bytes:
    context = link.context
    body = [
        _field(_FIELD_1, context.trace_id.to_bytes(16, "big")),
        _pack_id_field(0x12, 8, context.span_id),
        *attribute_fields(_LINK_ATTRIBUTE, link.attributes),
        _optional_varint(_LINK_DROPPED_ATTRIBUTES, link.dropped_attributes),
        _LINK_FLAGS + _pack_fixed32(_FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE * context.is_remote)),
    ]
    return _field(_SPAN_LINK, b"".join(body))


def _scope_message(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return b"".join(
        [
            _optional_string(_FIELD_1, scope.name),
            _optional_string(_FIELD_2, scope.version),
            *attribute_fields(_FIELD_3, getattr(scope, "attributes", None)),
        ]
    )


def _resource_spans(resource: Resource, scopes: dict[Any, list[bytes]]) -> bytes:
    """One ``ResourceSpans``: the resource, then a ``ScopeSpans`` per scope with its spans."""
    body = [_field(_FIELD_1, b"".join(attribute_fields(_FIELD_1, resource.attributes)))]
    for scope, spans in scopes.items():
        scope_spans = [_field(_FIELD_1, _scope_message(scope)), *spans]
        scope_spans.append(_optional_string(_FIELD_3, scope.schema_url if scope else None))
        body.append(_field(_FIELD_2, b"".join(scope_spans)))
    body.append(_optional_string(_FIELD_3, resource.schema_url))
    return _field(_FIELD_1, b"".join(body))


class TraceRequestEncoder:
    """Encodes batches of ended spans for one run; lean spans carry ``resource`` and ``scope``.

    One encoder serves one export queue (batches are encoded one at a time); its caches live
    as long as the run, each bounded by :data:`CACHE_LIMIT` entries.
    """

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        self.resource = resource
        self.scope = scope
        #: Encoded span attribute fields by (key, value), one table per value type: ``True``,
        #: ``1`` and ``1.0`` are equal as dict keys but not on the wire. Floats are not kept
        #: (``-0.0 == 0.0``, and NaN never matches).
        self._attributes: dict[type, dict[tuple[str, Any], bytes]] = {str: {}, int: {}, bool: {}}
        self._names: dict[str, bytes] = {}
        self._tails: dict[tuple[int, bool], bytes] = {}
        self._trace_key: tuple[int, Any] | None = None
        self._trace_fields = (b"", b"")

    def encode(self, spans: Sequence[LeanSpan | ReadableSpan]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` for ``spans``."""
        groups: dict[Any, dict[Any, list[bytes]]] = {}  # resource -> scope -> encoded spans
        by_identity: dict[tuple[int, int], list[bytes]] = {}
        lean_spans: list[bytes] | None = None
        for span in spans:
            if isinstance(span, ReadableSpan):
                resource, scope = span.resource, span.instrumentation_scope or None
                encoded = by_identity.get((id(resource), id(scope)))
                if encoded is None:
                    encoded = groups.setdefault(resource, {}).setdefault(scope, [])
                    by_identity[(id(resource), id(scope))] = encoded
                self._add_readable(span, encoded)
            else:
                if lean_spans is None:
                    lean_spans = groups.setdefault(self.resource, {}).setdefault(self.scope, [])
                self._add_lean(span, lean_spans)
        return b"".join([_resource_spans(resource, scopes) for resource, scopes in groups.items()])

    def _add_lean(self, span: LeanSpan, out: list[bytes]) -> None:
        """Appends one lean span's ``spans`` field to ``out``: the hot path of an export.

        Span contexts are read by position, as the lean tracer does (it is used only while
        ``SpanContext`` keeps that layout): 0 trace id, 1 span id, 2 is remote, 4 trace state.
        """
        context = span.get_span_context()
        trace_id_field, trace_state_field = self._trace(context[0], context[4])
        parent = span.parent
        code = span._code  # the status code's number (the lean span keeps it so)
        message = span.status_description if code == 2 else None  # as the SDK's Status
        remote = parent is not None and bool(parent[2])
        if message:
            tail = _status_and_flags(code, message, remote)
        else:
            tail = self._tails.get((code, remote)) or self._tail(code, remote)
        parts = [trace_id_field, _pack_id_field(0x12, 8, context[1])]
        if trace_state_field:
            parts.append(trace_state_field)
        if parent is not None:
            parts.append(_pack_id_field(0x22, 8, parent[1]))
        parts.append(self._names.get(span.name) or self._name(span.name))
        start_ns, end_ns = span.start_ns, span.end_ns
        if start_ns and end_ns:
            parts.append(_pack_kind_and_times(0x30, _INTERNAL, 0x39, start_ns, 0x41, end_ns))
        else:
            parts.append(_times(_INTERNAL, start_ns, end_ns))
        self._add_attributes(span.attributes, parts)
        for name, time_ns, attributes in span.events or ():
            parts.append(_event(name, time_ns, attributes, 0))
        parts.append(tail)
        out.append(_FIELD_2 + _varint(sum(map(len, parts))))
        out += parts

    def _add_readable(self, span: ReadableSpan, out: list[bytes]) -> None:
        """Appends one SDK span's ``spans`` field to ``out`` (spans a worker process ended)."""
        context = span.get_span_context()
        assert context is not None
        trace_id_field, trace_state_field = self._trace(context.trace_id, context.trace_state)
        parent = span.parent
        parts = [trace_id_field, _pack_id_field(0x12, 8, context.span_id), trace_state_field]
        if parent is not None:
            parts.append(_pack_id_field(0x22, 8, parent.span_id))
        parts.append(_optional_string(_SPAN_NAME, span.name))
        parts.append(_times(_KINDS[span.kind], span.start_time, span.end_time))
        self._add_attributes(span.attributes, parts)
        parts.append(_optional_varint(_SPAN_DROPPED_ATTRIBUTES, span.dropped_attributes))
        for event in span.events:
            parts.append(
                _event(event.name, event.timestamp, event.attributes, event.dropped_attributes)
            )
        parts.append(_optional_varint(_SPAN_DROPPED_EVENTS, span.dropped_events))
        parts += [_link(link) for link in span.links]
        parts.append(_optional_varint(_SPAN_DROPPED_LINKS, span.dropped_links))
        status = span.status
        remote = parent is not None and parent.is_remote
        parts.append(_status_and_flags(status.status_code.value, status.description, remote))
        out.append(_FIELD_2 + _varint(sum(map(len, parts))))
        out += parts

    def _add_attributes(self, attributes: Mapping[str, Any] | None, parts: list[bytes]) -> None:
        """Appends a span's attribute fields, from the caches where the value is a scalar."""
        if not attributes:
            return
        caches = self._attributes
        for key, value in attributes.items():
            cache = caches.get(type(value))
            encoded = cache.get((key, value)) if cache is not None else None
            if encoded is None:
                try:
                    encoded = _field(_SPAN_ATTRIBUTE, key_value(key, value))
                except (TypeError, ValueError):  # left out, as the stock encoder does
                    continue
                if cache is not None and (
                    type(value) is not str or len(value) <= CACHED_STRING_MAX_CHARS
                ):
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[(key, value)] = encoded
            parts.append(encoded)

    def _trace(self, trace_id: int, trace_state: Any) -> tuple[bytes, bytes]:
        """The trace id and trace state fields; a run's spans all share one pair."""
        known = self._trace_key
        if known is None or known[0] != trace_id or known[1] is not trace_state:
            self._trace_key = (trace_id, trace_state)
            self._trace_fields = (
                _field(_FIELD_1, trace_id.to_bytes(16, "big")),
                _optional_string(_SPAN_TRACE_STATE, _trace_state_text(trace_state)),
            )
        return self._trace_fields

    def _name(self, name: str) -> bytes:
        encoded = _optional_string(_SPAN_NAME, name)
        if len(self._names) >= CACHE_LIMIT:
            self._names.clear()
        self._names[name] = encoded
        return encoded

    def _tail(self, code: int, remote_parent: bool) -> bytes:
        """Status (without a message) and flags, kept per (code, remote parent)."""
        tail = self._tails[(code, remote_parent)] = _status_and_flags(code, None, remote_parent)
        return tail
