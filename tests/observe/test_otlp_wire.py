"""Our OTLP wire encoder against the stock one: the same spans must give the same request.

The stock encoder (``encode_spans``) is the reference: for any batch of spans, the bytes
:class:`TraceRequestEncoder` writes must parse to the very ``ExportTraceServiceRequest`` the
stock encoder builds from the same spans as SDK spans — and, since both write fields in field
number order, be the same bytes. The spans come from a real run (lean spans, a worker
process's shipped SDK spans, a ``TRACEPARENT`` caller with a trace state, a failed item, events,
attributes of every type set by a node), from the SDK directly (kinds, links, dropped counts,
several resources and scopes), and from generated attribute values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import otlp_wire
from pflow_trace.observe.lean_export import ExportQueue, as_readable
from pflow_trace.observe.lean_tracer import LeanSpan, LeanTracer, LeanTracerProvider
from pflow_trace.observe.otel import parent_context_from_env
from pflow_trace.observe.otlp_wire import TraceRequestEncoder
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import run_workflow

RESOURCE = Resource.create({"service.name": "wire-test", "team": "observability", "n": 3})
SCOPE = InstrumentationScope("pflow_trace", "9.9.9")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

#: Attributes of every type a span can hold, set on the node's span by the node's own code.
TYPED_ATTRIBUTES = """
from opentelemetry import trace
span = trace.get_current_span()
span.set_attributes({
    "t.str": "é ☃ \\n", "t.empty": "", "t.true": True, "t.false": False, "t.int": x,
    "t.negative": -42, "t.min": -2**63, "t.max": 2**63 - 1, "t.too_big": 2**64,
    "t.float": 2.5, "t.negative_zero": -0.0, "t.inf": float("inf"), "t.strs": ["a", ""],
    "t.ints": [1, -2, 2**40], "t.floats": [0.5, -1.25], "t.bools": [True, False],
    "t.empty_list": [],
})
span.add_event("checkpoint", {"n": x, "ok": True, "where": [1.5]})
try:
    raise ValueError("recorded, not raised")
except ValueError as exc:
    span.record_exception(exc)
result = x
"""


def assert_same_as_stock(
    spans: Sequence[Any], encoder: TraceRequestEncoder | None = None
) -> ExportTraceServiceRequest:
    encoder = encoder or TraceRequestEncoder(RESOURCE, SCOPE)
    ours = encoder.encode(spans)
    stock = encode_spans([as_readable(span, RESOURCE, SCOPE) for span in spans])
    assert ExportTraceServiceRequest.FromString(ours) == stock
    assert ours == stock.SerializeToString()
    return stock


def real_run_spans() -> list[Any]:
    """Every span a run hands its export queue: lean spans and a worker process's SDK spans."""
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "wire",
            "nodes": [
                {
                    "id": "typed",
                    "type": "code",
                    "params": {"code": TYPED_ATTRIBUTES, "inputs": {"x": 5}},
                },
                {
                    "id": "items",
                    "type": "echo",
                    "params": {"value": "${item}", "fail_if": 2, "message": "two is bad"},
                    "batch": {"items": [1, 2, 3], "error_handling": "continue"},
                },
                {
                    "id": "far",
                    "type": "code",
                    "params": {"code": TYPED_ATTRIBUTES, "inputs": {"x": "${item}"}},
                    "batch": {"items": [1, 2], "parallel": True, "executor": "processes"},
                },
            ],
            "edges": [{"from": "typed", "to": "items"}, {"from": "items", "to": "far"}],
        }
    )
    received = InMemorySpanExporter()
    queue = ExportQueue(received, RESOURCE, SCOPE)
    provider = LeanTracerProvider(None, RESOURCE.attributes, queue)
    parent = parent_context_from_env({"TRACEPARENT": TRACEPARENT, "TRACESTATE": "v=opaque,w=2"})
    result = run_workflow(workflow, run=RunContext(tracer=provider._tracer), parent_context=parent)
    provider.shutdown()
    assert result.status == "degraded", result.record.error
    return list(received.get_finished_spans())


def test_a_real_runs_spans_encode_as_the_stock_encoder_does() -> None:
    spans = real_run_spans()
    shipped = [span for span in spans if isinstance(span, ReadableSpan)]
    assert len(shipped) == 8 and len(spans) == 29  # two items of four spans from the workers
    stock = assert_same_as_stock(spans)

    (resource_spans,) = stock.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    encoded = list(scope_spans.spans)
    (root,) = [span for span in encoded if span.flags == 0x300]  # its parent is remote
    assert root.parent_span_id.hex() == "00f067aa0ba902b7" and root.trace_state == "v=opaque,w=2"
    typed = [span for span in encoded if any(a.key == "t.negative" for a in span.attributes)]
    assert len(typed) == 3 and all(len(span.events) == 2 for span in typed)
    keys = {attribute.key for attribute in typed[0].attributes}
    assert "t.too_big" not in keys and {"t.min", "t.bools", "t.empty_list"} <= keys
    errors = [span for span in encoded if span.status.message == "two is bad"]
    assert errors and all(span.status.code == 2 for span in errors)


def test_the_caches_never_change_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm caches, caches that start over, and values equal as keys but not on the wire."""
    spans = real_run_spans()
    encoder = TraceRequestEncoder(RESOURCE, SCOPE)
    assert_same_as_stock(spans, encoder)
    assert_same_as_stock(spans, encoder)  # everything from the caches now
    monkeypatch.setattr(otlp_wire, "CACHE_LIMIT", 3)
    assert_same_as_stock(spans, TraceRequestEncoder(RESOURCE, SCOPE))
    lean = lean_spans([{"k": value} for value in (True, 1, 1.0, 1, True, 0, False, 0.0, -0.0)])
    assert_same_as_stock(lean, encoder)


def lean_spans(attribute_sets: Sequence[dict[str, Any]]) -> list[LeanSpan]:
    """One ended lean span per attribute set, each also with an event carrying the set."""
    ended: list[Any] = []
    tracer = LeanTracer(None, ended)  # type: ignore[arg-type]  # a list takes appends too
    for attributes in attribute_sets:
        span = tracer.start_span("generated", attributes={"fixed": "kept"})
        span.set_attributes(attributes)
        span.add_event("values", attributes)
        span.end()
    return ended


def test_sdk_spans_of_every_kind_with_links_dropped_counts_and_several_origins() -> None:
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1)
    other_resource = Resource.create({"service.name": "other"})
    spans: list[Any] = []
    for resource in (RESOURCE, other_resource):
        provider = TracerProvider(resource=resource, span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for scope_name in ("first", "second"):
            tracer = provider.get_tracer(scope_name, "1.0", schema_url=f"https://s/{scope_name}")
            for kind in SpanKind:
                with tracer.start_as_current_span("outer") as outer:
                    link = Link(outer.get_span_context(), {"link.n": 1, "link.s": "x"})
                    inner = tracer.start_span(
                        f"inner {kind.name}",
                        context=set_span_in_context(outer),
                        kind=kind,
                        links=[link, link],
                        attributes={"a": 1, "b": 2.0, "c": "dropped"},
                    )
                    inner.add_event("first", {"x": 1, "y": "dropped"}, timestamp=7)
                    inner.add_event("second")
                    inner.set_status(Status(StatusCode.ERROR, "broken"))
                    inner.end()
    spans = list(exporter.get_finished_spans())
    # Copies of the resource and scope, equal but not the same objects, group with the originals.
    resource, scope = Resource(RESOURCE.attributes), InstrumentationScope("pflow_trace", "9.9.9")
    copy = ReadableSpan("copy", spans[0].context, resource=resource, instrumentation_scope=scope)
    mixed = [*lean_spans([{"lean": 1}]), *spans, copy, *lean_spans([{"lean": 2}])]
    stock = assert_same_as_stock(mixed)
    assert [len(group.scope_spans) for group in stock.resource_spans] == [3, 2]
    first_scope = stock.resource_spans[0].scope_spans[0]
    assert [span.name for span in first_scope.spans] == ["generated", "copy", "generated"]
    dropped = [span for span in stock.resource_spans[0].scope_spans[1].spans if span.links]
    assert dropped[0].dropped_attributes_count == 1 and dropped[0].dropped_links_count == 1


SCALARS = st.one_of(
    st.text(max_size=12),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.text(max_size=5), max_size=4),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4),
    st.lists(st.floats(allow_nan=False), max_size=4),
    st.lists(st.booleans(), max_size=4),
)
ATTRIBUTES = st.dictionaries(st.text(max_size=8), VALUES, max_size=6)
#: What only an SDK span handed over as it is can hold: bytes, None in a list, nested maps.
RAW_VALUES = st.recursive(
    st.one_of(SCALARS, st.binary(max_size=6), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(ATTRIBUTES, min_size=1, max_size=4), st.dictionaries(st.text(max_size=6), RAW_VALUES)
)
def test_generated_attribute_values_encode_as_the_stock_encoder_does(
    attribute_sets: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    lean = lean_spans(attribute_sets)
    shipped = ReadableSpan("raw", lean[0].get_span_context(), attributes=raw, resource=RESOURCE)
    assert_same_as_stock([*lean, shipped])
