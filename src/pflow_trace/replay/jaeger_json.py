"""Jaeger JSON: the shape of Jaeger's ``/api/traces`` response, which the Jaeger UI opens
through "Search → Upload → JSON File" (and Grafana's Jaeger data source through "Import trace").

Mapping, the way Jaeger itself translates OTLP spans:

* ``startTime`` and ``duration`` are integer **microseconds** (Unix time for ``startTime``);
* the parent becomes one ``CHILD_OF`` reference; the root has none (or one to the remote
  parent of a run that joined a ``TRACEPARENT``);
* attributes become ``tags`` typed ``string``, ``bool``, ``int64`` or ``float64`` (arrays and
  maps as JSON text); ``span.kind``, ``otel.scope.name``/``version`` and, for a status,
  ``otel.status_code``, ``otel.status_description`` and ``error=true`` are added;
* span events become ``logs`` (microsecond ``timestamp``, an ``event`` field for the name);
* the resource becomes the one process ``p1``: ``serviceName`` plus the other attributes as tags;
* no ``flags``: Jaeger does not carry OTLP span flags over, and its JSON leaves out a zero.

``tests/jaeger/`` checks this against a real Jaeger v2: for the same trace, this document equals
``/api/traces/<id>`` up to the order of spans, tags and logs.
"""

from __future__ import annotations

import json
from typing import Any

from pflow_trace.tracefile.replay_model import (
    STATUS_ERROR,
    STATUS_NAMES,
    STATUS_UNSET,
    ReplaySpan,
    ReplayTrace,
)

PROCESS_ID = "p1"


def tag(key: str, value: Any) -> dict[str, Any]:
    """One typed Jaeger tag; a value Jaeger has no type for is written as JSON text."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {
        "key": key,
        "type": "string",
        "value": json.dumps(value, ensure_ascii=False, default=str),
    }


def us(time_ns: int) -> int:
    """Nanoseconds as the whole microseconds Jaeger JSON counts in (rounded down)."""
    return time_ns // 1000


def _span(span: ReplaySpan, trace: ReplayTrace) -> dict[str, Any]:
    """One span as the Jaeger UI loads it: status and scope as tags, events as logs."""
    tags = [tag(key, value) for key, value in span.attributes.items()]
    tags.append(tag("span.kind", "internal"))
    tags.append(tag("otel.scope.name", trace.scope_name))
    if trace.scope_version:
        tags.append(tag("otel.scope.version", trace.scope_version))
    if span.status_code != STATUS_UNSET:
        tags.append(tag("otel.status_code", STATUS_NAMES[span.status_code]))
    if span.status_code == STATUS_ERROR:
        tags.append(tag("error", True))
        if span.status_message:
            tags.append(tag("otel.status_description", span.status_message))
    references = []
    if span.parent_span_id is not None:
        references.append(
            {"refType": "CHILD_OF", "traceID": trace.trace_id, "spanID": span.parent_span_id}
        )
    return {
        "traceID": trace.trace_id,
        "spanID": span.span_id,
        "operationName": span.name,
        "references": references,
        "startTime": us(span.start_ns),
        "duration": us(span.end_ns - span.start_ns),
        "tags": tags,
        "logs": [
            {
                "timestamp": us(event.time_ns),
                "fields": [
                    tag("event", event.name),
                    *(tag(key, value) for key, value in event.attributes.items()),
                ],
            }
            for event in span.events
        ],
        "processID": PROCESS_ID,
        "warnings": None,
    }


def to_jaeger_json(trace: ReplayTrace) -> dict[str, Any]:
    """The run as the Jaeger query API's response, which the UI's "JSON File" upload reads."""
    process_tags = [
        tag(key, value) for key, value in trace.resource.items() if key != "service.name"
    ]
    return {
        "data": [
            {
                "traceID": trace.trace_id,
                "spans": [_span(span, trace) for span in trace.spans],
                "processes": {
                    PROCESS_ID: {"serviceName": trace.service_name, "tags": process_tags}
                },
                "warnings": None,
            }
        ],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
