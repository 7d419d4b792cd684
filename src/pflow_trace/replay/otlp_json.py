"""OTLP/JSON: a run as one ``ExportTraceServiceRequest`` in the OTLP JSON encoding.

Any OTLP/HTTP endpoint accepts the file as it is (``POST /v1/traces`` with
``Content-Type: application/json``). Built by hand, following the OTLP specification's JSON
rules, which differ from the plain Protobuf JSON mapping in one place:

* ``traceId``, ``spanId`` and ``parentSpanId`` are hex strings (not base64);
* field names are lowerCamelCase; enums (``kind``, ``status.code``) are integers;
* 64-bit integers (``startTimeUnixNano``, ``intValue`` ...) are decimal strings;
* attribute values are ``AnyValue`` objects: ``{"stringValue": ...}``, ``{"intValue": "3"}``,
  ``{"arrayValue": {"values": [...]}}`` and so on.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from pflow_trace.tracefile.replay_model import ReplaySpan, ReplayTrace

#: ``Span.SpanKind.SPAN_KIND_INTERNAL``: every pflow-trace span is internal.
SPAN_KIND_INTERNAL = 1
#: ``SpanFlags`` bit 8: whether bit 9 (the parent is remote) is known. Set as the SDK's OTLP
#: exporter sets them, so the file and a live export carry the same ``flags``; like the SDK,
#: the low byte (W3C trace flags) is left 0.
FLAGS_HAS_IS_REMOTE = 0x100
FLAGS_IS_REMOTE = 0x200


def any_value(value: Any) -> dict[str, Any]:
    """One attribute value as an OTLP/JSON ``AnyValue``."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        special = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return {"doubleValue": special}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    return {"stringValue": str(value)}


def key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributes as OTLP/JSON's list of ``KeyValue`` objects, in their order."""
    return [{"key": str(key), "value": any_value(value)} for key, value in attributes.items()]


def _span(span: ReplaySpan, trace: ReplayTrace) -> dict[str, Any]:
    """One ``Span`` message, with the ``flags`` the SDK's own exporter would set."""
    flags = FLAGS_HAS_IS_REMOTE
    if trace.has_remote_parent(span):
        flags |= FLAGS_IS_REMOTE
    encoded: dict[str, Any] = {"traceId": trace.trace_id, "spanId": span.span_id}
    if span.parent_span_id is not None:
        encoded["parentSpanId"] = span.parent_span_id
    encoded.update(
        {
            "flags": flags,
            "name": span.name,
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": key_values(span.attributes),
        }
    )
    if span.events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.time_ns),
                "name": event.name,
                "attributes": key_values(event.attributes),
            }
            for event in span.events
        ]
    status: dict[str, Any] = {"code": span.status_code}
    if span.status_message:
        status["message"] = span.status_message
    encoded["status"] = status
    return encoded


def to_otlp_json(trace: ReplayTrace) -> dict[str, Any]:
    """The whole run as one request: one resource, one scope, every span."""
    scope: dict[str, Any] = {"name": trace.scope_name}
    if trace.scope_version:
        scope["version"] = trace.scope_version
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(trace.resource)},
                "scopeSpans": [
                    {"scope": scope, "spans": [_span(span, trace) for span in trace.spans]}
                ],
            }
        ]
    }
