"""One in-memory list of replayable spans, whichever trace file it came from.

Every exporter (OTLP replay, Jaeger JSON, OTLP/JSON, Chrome) renders this model and nothing
else, so they cannot disagree about ids, times or parents. It lives in ``tracefile`` rather
than ``replay`` because the trace file's span table decodes straight into it
(:mod:`pflow_trace.tracefile.spantable_decode`), and ``tracefile`` sits below ``replay``.

Times are absolute Unix nanoseconds. Ids are lower-case hex, as in the trace file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import DEFAULT_SERVICE_NAME

#: Span status codes, numbered as OTLP numbers them; the span table stores these numbers too.
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2
STATUS_NAMES = {STATUS_UNSET: "UNSET", STATUS_OK: "OK", STATUS_ERROR: "ERROR"}


@dataclass(slots=True)
class ReplayEvent:
    """A span event (a retry, say): its name, absolute time and attributes."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class ReplaySpan:
    """One span as a backend should see it. Every span is INTERNAL and sampled, with no links."""

    name: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = STATUS_UNSET
    status_message: str | None = None
    events: list[ReplayEvent] = field(default_factory=list)
    #: The worker lane (0-based) of a batch item span; ``None`` for every other span.
    lane: int | None = None

    @property
    def layer(self) -> Any:
        """The span's ``pflow.layer`` (workflow, instrumented, batch, batch.item, ...)."""
        return self.attributes.get(conv.ATTR_LAYER)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class ReplayTrace:
    """The spans of one run plus what every span shares: trace id, resource, scope."""

    source: str
    source_format: str
    trace_id: str
    spans: list[ReplaySpan]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str | None
    #: True when the tree was built from a pflow trace's timings rather than recorded spans.
    synthesized: bool = False
    #: What the reader and decoder changed or noticed (escaped text, times out of range).
    warnings: list[str] = field(default_factory=list)
    _span_ids: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def service_name(self) -> str:
        """The resource's ``service.name``, or the default a backend would otherwise show."""
        name = self.resource.get("service.name")
        return name if isinstance(name, str) and name else DEFAULT_SERVICE_NAME

    @property
    def start_ns(self) -> int:
        """The earliest span start: the origin the file formats count their times from."""
        return min((span.start_ns for span in self.spans), default=0)

    def has_remote_parent(self, span: ReplaySpan) -> bool:
        """True when the span's parent lives outside this trace (a joined ``TRACEPARENT``)."""
        if span.parent_span_id is None:
            return False
        if self._span_ids is None:
            self._span_ids = frozenset(s.span_id for s in self.spans)
        return span.parent_span_id not in self._span_ids
