"""``pflow-trace run --exporter otlp`` into a real Jaeger, over OTLP/HTTP and OTLP/gRPC.

What Jaeger's query API returns for the run must be the run: every span the trace file records
(every wrapper layer, every batch item and retry attempt), with the parent links the runtime
made, across worker threads and worker processes, with their attributes, events, error statuses
and the resource's service name. A ``TRACEPARENT`` run must land inside its caller's trace.
"""

from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.observe import conventions as conv
from pflow_trace.replay.jaeger_json import tag
from pflow_trace.tracefile.replay_model import STATUS_ERROR

from .jaeger_api import JaegerApi, parent_of, spans_by_id, tags_of
from .jaeger_runs import GRPC, HTTP, WORKFLOW, Run, run_workflow

#: (protocol, executor) of each live run.
CASES = [(HTTP, "threads"), (GRPC, "threads"), (HTTP, "processes")]
BATCH_SIZES = {
    node["id"]: len(node["batch"]["items"]) for node in WORKFLOW["nodes"] if "batch" in node
}
INNER_LAYERS = [conv.LAYER_NAMESPACED, conv.LAYER_TEMPLATE, conv.LAYER_NODE]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: f"{case[0]}-{case[1]}")
def live(
    request: pytest.FixtureRequest, jaeger: JaegerApi, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, dict[str, Any], str]:
    """A run exported live: (the run, Jaeger's trace document, the executor)."""
    protocol, executor = request.param
    directory = tmp_path_factory.mktemp(f"live-{executor}")
    run = run_workflow(directory, jaeger, protocol, "--executor", executor)
    fetched = jaeger.trace(run.trace_id, len(run.replay.spans))
    [trace] = fetched.document["data"]
    return run, trace, executor


def layer(span: dict[str, Any]) -> Any:
    return tags_of(span).get(conv.ATTR_LAYER)


def children(trace: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]]:
    by_parent: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for span in trace["spans"]:
        by_parent[parent_of(span)].append(span)
    return by_parent


def test_jaeger_holds_every_recorded_span_with_its_parent(
    live: tuple[Run, dict[str, Any], str],
) -> None:
    run, trace, _ = live
    jaeger_spans = {span["spanID"]: span for span in trace["spans"]}
    assert set(jaeger_spans) == {span.span_id for span in run.replay.spans}
    for span in run.replay.spans:
        received = jaeger_spans[span.span_id]
        assert received["traceID"] == run.trace_id
        assert received["operationName"] == span.name
        assert parent_of(received) == span.parent_span_id


def test_the_tree_has_every_layer_and_every_item(live: tuple[Run, dict[str, Any], str]) -> None:
    _, trace, executor = live
    by_parent = children(trace)
    [root] = by_parent[None]
    assert layer(root) == conv.LAYER_WORKFLOW
    assert tags_of(root)[conv.ATTR_WORKFLOW_NAME] == WORKFLOW["name"]
    nodes = by_parent[root["spanID"]]
    assert {tags_of(span)[conv.ATTR_NODE_ID] for span in nodes} == {
        node["id"] for node in WORKFLOW["nodes"]
    }
    assert Counter(layer(span) for span in nodes) == {conv.LAYER_INSTRUMENTED: 3}
    for node in nodes:
        node_id = tags_of(node)[conv.ATTR_NODE_ID]
        [below] = by_parent[node["spanID"]]
        if node_id not in BATCH_SIZES:
            assert_inner_chain(by_parent, below)
            continue
        assert layer(below) == conv.LAYER_BATCH
        items = by_parent[below["spanID"]]
        assert {layer(item) for item in items} == {conv.LAYER_BATCH_ITEM}
        indexes = sorted(tags_of(item)[conv.ATTR_BATCH_INDEX] for item in items)
        assert indexes == list(range(BATCH_SIZES[node_id]))
        for item in items:
            attempts = by_parent[item["spanID"]]
            assert len(attempts) == tags_of(item)[conv.ATTR_BATCH_ATTEMPTS]
            for attempt in attempts:
                assert_inner_chain(by_parent, attempt)
    fan = [tags_of(s) for s in trace["spans"] if tags_of(s).get(conv.ATTR_NODE_ID) == "fan"]
    [batch] = [tags for tags in fan if tags[conv.ATTR_LAYER] == conv.LAYER_BATCH]
    assert batch.get(conv.ATTR_BATCH_EXECUTOR, "threads") == executor
    items = [tags for tags in fan if tags[conv.ATTR_LAYER] == conv.LAYER_BATCH_ITEM]
    workers = {tags[conv.ATTR_BATCH_WORKER] for tags in items}
    assert len(workers) == 2, f"the parallel batch ran on one {executor} worker only"
    if executor == "processes":  # each item names the worker process it ran in
        assert all(isinstance(tags.get(conv.ATTR_BATCH_PID), int) for tags in items)


def assert_inner_chain(by_parent: dict[str | None, list[dict[str, Any]]], top: Any) -> None:
    """``top`` is a namespaced span with one template span under it, and one node span under
    that (the node span may have nothing below it)."""
    chain = [top]
    while by_parent[chain[-1]["spanID"]]:
        [below] = by_parent[chain[-1]["spanID"]]
        chain.append(below)
    assert [layer(span) for span in chain] == INNER_LAYERS


def test_attributes_events_and_statuses_arrive(live: tuple[Run, dict[str, Any], str]) -> None:
    run, trace, _ = live
    jaeger_spans = {span["spanID"]: span for span in trace["spans"]}
    for span in run.replay.spans:
        received = jaeger_spans[span.span_id]
        tags = tags_of(received)
        for key, value in span.attributes.items():
            assert tags[key] == tag(key, value)["value"], (span.name, key)
        logs = [tags_of(log, "fields") for log in received["logs"]]
        assert [log["event"] for log in logs] == [event.name for event in span.events]
        if span.status_code == STATUS_ERROR:
            assert tags["error"] is True
            assert tags["otel.status_code"] == "ERROR"
            assert tags["otel.status_description"] == span.status_message
        else:
            assert "error" not in tags
    failed = [s for s in run.replay.spans if s.layer == "batch.item" and s.status_code]
    [item] = failed
    assert "failed on demand for value 3" in str(item.status_message)
    [retry] = [tags_of(log, "fields") for log in jaeger_spans[item.span_id]["logs"]]
    assert retry["event"] == conv.EVENT_RETRY and retry[conv.ATTR_RETRY_ATTEMPT] == 1


def test_the_resource_is_the_process_and_names_the_service(
    live: tuple[Run, dict[str, Any], str], jaeger: JaegerApi
) -> None:
    run, trace, _ = live
    [process] = trace["processes"].values()
    assert process["serviceName"] == run.service
    assert tags_of(process)["deployment.environment"] == "jaeger-test"
    assert {span["processID"] for span in trace["spans"]} == set(trace["processes"])
    assert run.service in jaeger.services()
    assert jaeger.trace_ids_of(run.service) == {run.trace_id}


def test_a_traceparent_run_is_a_child_of_the_callers_span(
    jaeger: JaegerApi, tmp_path: Path
) -> None:
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    run = run_workflow(tmp_path, jaeger, TRACEPARENT=f"00-{caller_trace}-{caller_span}-01")
    assert run.trace_id == caller_trace
    fetched = jaeger.trace(caller_trace, len(run.replay.spans))
    spans = spans_by_id(fetched)
    roots = [span for span in spans.values() if parent_of(span) not in spans]
    [root] = roots
    assert layer(root) == conv.LAYER_WORKFLOW
    assert root["references"] == [
        {"refType": "CHILD_OF", "traceID": caller_trace, "spanID": caller_span}
    ]
