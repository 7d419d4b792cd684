"""The shape of the trace file's ``otel.spans`` table, written down once for both directions.

The encoder (:mod:`pflow_trace.tracefile.spantable`, which needs the OpenTelemetry SDK) and the
decoder (:mod:`pflow_trace.tracefile.spantable_decode`, which must not pay for importing it)
both read their column names from here, so a change to the table's format is made in one place.

A table is ``{"resource", "scope", "kinds", "columns", "rows"}``; each row is a list in
:data:`COLUMNS` order. Readers find columns by name, so a column added later does not break
an older reader, and a writer must never drop or rename one of :data:`REQUIRED_COLUMNS`.
"""

from __future__ import annotations

from pflow_trace.tracefile.replay_model import STATUS_NAMES

#: Index into the table's ``kinds`` (span name plus the attributes its spans share).
COL_KIND = "kind"
#: 16 lower-case hex digits.
COL_SPAN_ID = "span_id"
#: 16 lower-case hex digits, or null for the root.
COL_PARENT_SPAN_ID = "parent_span_id"
#: Nanoseconds from the run's start (``otel.start_time_unix_nano``).
COL_START_OFFSET_NS = "start_offset_ns"
COL_DURATION_NS = "duration_ns"
#: 0 unset, 1 OK, 2 error (OTLP's numbers); :data:`STATUS_CODE_BY_NAME`.
COL_STATUS_CODE = "status_code"
COL_STATUS_MESSAGE = "status_message"
#: The attributes that differ from the kind's, or null.
COL_ATTRIBUTES = "attributes"
#: ``[[name, offset_ns, attributes], ...]`` or null.
COL_EVENTS = "events"

#: Every column, in the order the encoder writes a row.
COLUMNS = (
    COL_KIND,
    COL_SPAN_ID,
    COL_PARENT_SPAN_ID,
    COL_START_OFFSET_NS,
    COL_DURATION_NS,
    COL_STATUS_CODE,
    COL_STATUS_MESSAGE,
    COL_ATTRIBUTES,
    COL_EVENTS,
)

#: Columns a reader cannot place a span without; the others default when absent.
REQUIRED_COLUMNS = (
    COL_KIND,
    COL_SPAN_ID,
    COL_PARENT_SPAN_ID,
    COL_START_OFFSET_NS,
    COL_DURATION_NS,
)

#: The SDK's status code name (``StatusCode.name``) -> the number a row stores.
STATUS_CODE_BY_NAME = {name: code for code, name in STATUS_NAMES.items()}
