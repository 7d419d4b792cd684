"""The lean tracer (no exporter: spans go only to the trace file) against the SDK.

The trace file's span table must not depend on which path made it: a run with no exporter
(lean tracer) and the same run with an SDK processor attached (the SDK path, as with an OTLP or
console exporter) give the same table — same kinds, attributes, statuses, events and tree —
and the SDK's exported spans say the same thing. What an OTLP backend receives is the span
table, over each transport and over the stock exporter the environment can ask for, and it is
what a run without an exporter records. Ids and times differ between runs, so comparisons
across runs are over the tree with ids and times left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from otlp_receiver import GRPC, HTTP, OtlpReceiver, ReceivedSpan
from pflow_trace import api
from pflow_trace.api import TracedRun, TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.lean_tracer import (
    LeanSpan,
    LeanTracer,
    LeanTracerProvider,
    lean_tracing_allowed,
    moved_copy,
)
from pflow_trace.observe.otel import setup_tracing

SECRET = "s3cr3t-VALUE-42"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
STATUS_NUMBERS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def mixed_workflow() -> dict[str, Any]:
    """Plain, sequential and parallel batches, retries, a failed item, a secret, a failed node."""
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "lean-vs-sdk",
            "inputs": {"api_key": {"type": "string", "sensitive": True}},
            "nodes": [
                {"id": "hello", "type": "echo", "params": {"value": "hi ${api_key}"}},
                {
                    "id": "seq",
                    "type": "echo",
                    "params": {"value": "${item}"},
                    "batch": {"items": [1, 2, 3, 4, 5]},
                },
                {
                    "id": "par",
                    "type": "echo",
                    "params": {"value": "${item}", "fail_if": "bad", "message": "bad: ${item}"},
                    "batch": {
                        "items": ["ok", "bad", {"n": 1}, "${api_key}"],
                        "parallel": True,
                        "max_concurrent": 2,
                        "max_retries": 2,
                        "error_handling": "continue",
                    },
                },
                {"id": "boom", "type": "echo", "params": {"fail": True, "message": "it broke"}},
            ],
            "edges": [
                {"from": "hello", "to": "seq"},
                {"from": "seq", "to": "par"},
                {"from": "par", "to": "boom"},
            ],
        }
    )


def run_once(tmp_path: Path, name: str, processors: list[Any]) -> TracedRun:
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(tmp_path / f"{name}.json"),
        extra_processors=processors,
    )
    return api.run(mixed_workflow(), {"api_key": SECRET}, options)


def canonical(node: dict[str, Any], children: dict[str, list[dict[str, Any]]], key: str) -> Any:
    """A span and its subtree with ids and times left out; siblings in a fixed order."""
    below = sorted(
        json.dumps(canonical(child, children, key), sort_keys=True)
        for child in children.get(node[key], [])
    )
    return {**{k: v for k, v in node.items() if k not in ("id", "parent")}, "children": below}


#: Attributes that differ between any two runs: the run's id, and the lane a parallel item ran on.
#: Attributes whose values differ from one run to the next (ids, lanes, measured times).
PER_RUN = (
    conv.ATTR_EXECUTION_ID,
    conv.ATTR_BATCH_WORKER,
    conv.ATTR_BATCH_TIME_ATTEMPTS_US,
    conv.ATTR_BATCH_TIME_RETRY_WAIT_US,
)


def tree_of(spans: list[dict[str, Any]]) -> list[Any]:
    for span in spans:
        span["attributes"] = {k: v for k, v in span["attributes"].items() if k not in PER_RUN}
    ids = {span["id"] for span in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent"], []).append(span)
    roots = [span for span in spans if span["parent"] not in ids]
    return [canonical(root, children, "id") for root in roots]


def table_spans(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row of an ``otel.spans`` table as one plain span: name, full attributes, status."""
    columns = table["columns"]
    spans = []
    for values in table["rows"]:
        row = dict(zip(columns, values, strict=True))
        kind = table["kinds"][row["kind"]]
        spans.append(
            {
                "id": row["span_id"],
                "parent": row["parent_span_id"],
                "name": kind["name"],
                "attributes": {**kind["attributes"], **(row["attributes"] or {})},
                "status": [row["status_code"], row["status_message"]],
                "events": [[name, attrs] for name, _, attrs in row["events"] or []],
            }
        )
    return spans


def exported_spans(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    return [
        {
            "id": f"{span.context.span_id:016x}",
            "parent": f"{span.parent.span_id:016x}" if span.parent else None,
            "name": span.name,
            "attributes": {k: plain(v) for k, v in (span.attributes or {}).items()},
            "status": [span.status.status_code.value, span.status.description],
            "events": [[event.name, dict(event.attributes or {})] for event in span.events],
        }
        for span in spans
    ]


def test_span_table_is_the_same_with_and_without_an_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
    lean = run_once(tmp_path, "lean", [])
    exporter = InMemorySpanExporter()
    sdk = run_once(tmp_path, "sdk", [SimpleSpanProcessor(exporter)])
    assert lean.status == sdk.status == "failed"

    lean_doc = json.loads(Path(str(lean.trace_path)).read_text(encoding="utf-8"))
    sdk_doc = json.loads(Path(str(sdk.trace_path)).read_text(encoding="utf-8"))
    lean_table, sdk_table = lean_doc["otel"]["spans"], sdk_doc["otel"]["spans"]
    for part in ("resource", "scope", "kinds", "columns"):
        assert lean_table[part] == sdk_table[part], part
    assert len(lean_table["rows"]) == len(sdk_table["rows"]) == 52
    lean_tree = tree_of(table_spans(lean_table))
    assert lean_tree == tree_of(table_spans(sdk_table))
    # What the exporter was handed is what the table says.
    assert lean_tree == tree_of(exported_spans(list(exporter.get_finished_spans())))
    # Both joined the caller's trace; the secret reached neither.
    for document in (lean_doc, sdk_doc):
        assert document["otel"]["trace_id"] == TRACE_ID
        assert document["otel"]["parent_span_id"] == PARENT_SPAN_ID
        assert SECRET not in json.dumps(document)
    assert lean_tree[0]["status"] == [2, "node 'boom' failed: it broke"]
    # The lean run's batch_items point at rows of its own span table.
    lean_ids = {row[1] for row in lean_table["rows"]}
    items = [item for event in lean_doc["nodes"] for item in event.get("batch_items", [])]
    assert len(items) == 9 and {item["span_id"] for item in items} <= lean_ids


def test_the_sdk_makes_spans_only_for_extra_processors_or_sdk_only_settings() -> None:
    none = resolve_export_settings("none", env={})
    lean = setup_tracing(none).provider
    assert isinstance(lean, LeanTracerProvider) and lean.exports is None
    with_processor = setup_tracing(none, [SimpleSpanProcessor(InMemorySpanExporter())])
    assert isinstance(with_processor.provider, TracerProvider)
    console = setup_tracing(resolve_export_settings("console", env={})).provider
    assert isinstance(console, LeanTracerProvider) and console.exports is not None
    console.shutdown()
    assert not lean_tracing_allowed({"OTEL_TRACES_SAMPLER": "always_off"})
    assert not lean_tracing_allowed({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "4"})
    assert lean_tracing_allowed({"OTEL_SERVICE_NAME": "x", "PATH": "/bin"})


def received_spans(spans: list[ReceivedSpan]) -> list[dict[str, Any]]:
    return [
        {
            "id": span.span_id,
            "parent": span.parent_span_id,
            "name": span.name,
            "attributes": span.attributes,
            "status": [STATUS_NUMBERS[span.status_code], span.status_message or None],
            "events": [[event.name, event.attributes] for event in span.events],
        }
        for span in spans
    ]


#: (protocol, compression, a setting only the stock exporter knows): our encoder and sender
#: for the first four, the stock exporter for the last two (deflate, or an OTEL_PYTHON_* one).
EXPORT_PATHS = [
    (HTTP, "none", None),
    (HTTP, "gzip", None),
    (GRPC, "none", None),
    (GRPC, "gzip", None),
    (HTTP, "deflate", None),
    (GRPC, "none", "OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES"),
]


@pytest.mark.parametrize(("protocol", "compression", "stock_only"), EXPORT_PATHS)
def test_spans_exported_over_otlp_match_the_span_table(
    protocol: str,
    compression: str,
    stock_only: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
    if compression != "none":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression)
    if stock_only:
        monkeypatch.setenv(stock_only, "UNAVAILABLE")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={SECRET},tenant=a%20b")
    with OtlpReceiver(protocol) as receiver:
        options = TraceOptions(
            export=resolve_export_settings("otlp", receiver.endpoint, protocol, env={}),
            trace_file=str(tmp_path / "otlp.json"),
        )
        outcome = api.run(mixed_workflow(), {"api_key": SECRET}, options)
        spans = receiver.wait_for_spans(52)
        headers = receiver.headers
    assert outcome.export_warning is None
    document = json.loads((tmp_path / "otlp.json").read_text(encoding="utf-8"))
    table = document["otel"]["spans"]
    assert len(spans) == len(table["rows"]) == 52
    # Ids are the same ones here: the exporter got the very spans the table recorded.
    assert sorted(received_spans(spans), key=lambda s: s["id"]) == sorted(
        table_spans(table),
        key=lambda s: s["id"],
    )
    assert {span.trace_id for span in spans} == {TRACE_ID}
    assert spans[0].resource == table["resource"]
    (root,) = [span for span in spans if span.parent_span_id == PARENT_SPAN_ID]
    assert root.name == "workflow lean-vs-sdk"
    stock = compression == "deflate" or stock_only is not None
    for sent in headers:
        assert (sent["x-api-key"], sent["tenant"]) == (SECRET, "a b")
        assert sent["user-agent"].startswith("OTel-OTLP-Exporter" if stock else "pflow-trace/")
        if protocol == HTTP:  # (a gRPC server does not show how a request was compressed)
            encoding = None if compression == "none" else compression
            assert sent.get("content-encoding") == encoding


def test_spans_exported_over_otlp_match_a_run_without_an_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a backend receives is what a run without an exporter records (ids aside)."""
    monkeypatch.setenv("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
    alone = run_once(tmp_path, "alone", [])
    with OtlpReceiver(HTTP) as receiver:
        options = TraceOptions(
            export=resolve_export_settings("otlp", endpoint=receiver.endpoint, env={}),
            trace_file=str(tmp_path / "exported.json"),
        )
        exported = api.run(mixed_workflow(), {"api_key": SECRET}, options)
        spans = receiver.wait_for_spans(52)
    assert exported.export_warning is None and exported.status == alone.status == "failed"
    document = json.loads(Path(str(alone.trace_path)).read_text(encoding="utf-8"))
    expected = tree_of(table_spans(document["otel"]["spans"]))
    assert tree_of(received_spans(spans)) == expected
    assert SECRET not in json.dumps(expected)


def test_instrumentation_inside_a_lean_span_nests_under_it() -> None:
    exporter = InMemorySpanExporter()
    library = TracerProvider()
    library.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = LeanTracer(None)
    http_client = library.get_tracer("http-client")
    with tracer.start_as_current_span("node") as node, http_client.start_as_current_span("GET"):
        pass
    (child,) = exporter.get_finished_spans()
    assert child.parent is not None
    assert child.parent.span_id == node.get_span_context().span_id
    assert child.context.trace_id == node.get_span_context().trace_id


def test_an_unsampled_parent_makes_a_non_recording_child() -> None:
    parent = SpanContext(int(TRACE_ID, 16), int(PARENT_SPAN_ID, 16), True, TraceFlags(0))
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    span = LeanTracer(None).start_span("x", context=context)
    assert not span.is_recording()
    assert span.get_span_context().trace_id == int(TRACE_ID, 16)


def test_lean_span_status_attribute_and_event_rules() -> None:
    shared = {"layer": "node"}
    span = LeanTracer(None).start_span("x", attributes=shared)
    token = otel_context.attach(trace.set_span_in_context(span))
    span.set_attribute("extra", 1)
    span.set_attribute("listed", [1, 2])
    span.set_attribute("", "dropped")
    span.set_status(StatusCode.OK, "ignored for OK")
    span.set_status(Status(StatusCode.ERROR, "too late: OK is final"))
    span.record_exception(ValueError("nope"))
    otel_context.detach(token)
    span.end()
    span.set_attribute("after", "end")
    assert shared == {"layer": "node"}  # the caller's dict is never changed
    assert span.attributes == {"layer": "node", "extra": 1, "listed": (1, 2)}
    assert (span.status_code, span.status_description) == (StatusCode.OK, None)
    ((name, _, attributes),) = span.events or []
    assert name == "exception" and attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "nope"


def test_a_moved_copy_keeps_every_field_but_its_trace_and_parent() -> None:
    tracer = LeanTracer(sink=None)
    parent = tracer.start_span("batch")
    child = tracer.start_span("item", context=trace.set_span_in_context(parent))
    assert isinstance(child, LeanSpan)
    child.set_attribute("pflow.batch.index", 3)
    child.add_event("retry", {"attempt": 1})
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    moved = moved_copy(child, 0xABC, None)
    changed = {"_context", "parent"}
    for name in LeanSpan.__slots__:  # a slot added later must be copied too
        if name not in changed:
            assert getattr(moved, name) == getattr(child, name), name
    assert moved.get_span_context().trace_id == 0xABC
    assert moved.get_span_context().span_id == child.get_span_context().span_id
    assert moved.parent is not None and moved.parent.trace_id == 0xABC
    assert moved.parent.span_id == parent.get_span_context().span_id
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id
