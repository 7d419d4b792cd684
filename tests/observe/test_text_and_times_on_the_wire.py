"""The OTLP wire encoder and the console exporter with values we did not write: text that is
not valid Unicode, and event times that are not Unix times in nanoseconds. Each is cleaned per
value; no span, and no batch, is lost to one."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

from loopback import serving
from pflow_trace.observe.otel import console_line
from pflow_trace.observe.otlp_send import ExportFailed, HttpSender
from pflow_trace.observe.otlp_wire import ATTR_INVALID_TIME, TraceRequestEncoder

START_NS = 1_700_000_000_000_000_000


def span(name: str, events: list[Event], attributes: dict[str, object]) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1)),
        resource=Resource({"service.name": "s"}),
        attributes=attributes,
        events=events,
        start_time=START_NS,
        end_time=START_NS + 1000,
        instrumentation_scope=InstrumentationScope("t"),
    )


def decode(body: bytes) -> list:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def encoder() -> TraceRequestEncoder:
    return TraceRequestEncoder(Resource({}), InstrumentationScope("t"))


def test_lone_surrogates_are_escaped_not_dropped() -> None:
    body = encoder().encode([span("node\udcff", [], {"pflow.node.id": "n\ud800", "k\udcfe": "v"})])
    (decoded,) = decode(body)
    assert decoded.name == "node\\udcff"
    attributes = {kv.key: kv.value.string_value for kv in decoded.attributes}
    assert attributes == {"pflow.node.id": "n\\ud800", "k\\udcfe": "v"}


def test_an_event_time_out_of_range_is_left_out_and_noted() -> None:
    events = [
        Event("retry", {"attempt": 1}, 10**30),
        Event("retry", {"attempt": 2}, -5),
        Event("retry", {"attempt": 3}, START_NS + 10),
    ]
    (decoded,) = decode(encoder().encode([span("n", events, {})]))
    assert len(decoded.events) == 3
    first, second, third = decoded.events
    assert first.time_unix_nano == 0 and second.time_unix_nano == 0
    notes = [
        {kv.key: kv.value.string_value for kv in e.attributes}.get(ATTR_INVALID_TIME)
        for e in decoded.events
    ]
    assert notes == [str(10**30), "-5", None]
    assert third.time_unix_nano == START_NS + 10


def test_the_console_prints_a_span_whose_event_time_no_calendar_holds() -> None:
    line = console_line(span("n", [Event("retry", {"attempt": 1}, 10**30)], {}))
    printed = json.loads(line)
    (event,) = printed["events"]
    assert event["attributes"][ATTR_INVALID_TIME] == str(10**30)


class _Redirecting(BaseHTTPRequestHandler):
    """Answers every POST with a 307 to ``/elsewhere`` and counts what reached there."""

    reached_elsewhere = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/elsewhere":
            type(self).reached_elsewhere += 1
            self.send_response(200)
        else:
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    with serving(_Redirecting) as base:
        sender = HttpSender(f"{base}/v1/traces", {}, timeout_s=5.0)
        with pytest.raises(ExportFailed, match=r"HTTP 307 .*redirects are not followed"):
            sender.send(b"")
        sender.shutdown()
    assert _Redirecting.reached_elsewhere == 0
