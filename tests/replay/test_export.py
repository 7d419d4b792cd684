"""``pflow-trace export``: replaying a saved run to OTLP, and the three file formats.

The proof is a round trip: a run exports its spans live to a loopback OTLP receiver
(:mod:`otlp_receiver`), then ``export --to otlp`` replays its trace file to a second receiver,
and the two sets of spans must be equal field for field. The file formats are checked against
those same live spans: OTLP/JSON parses back with opentelemetry-proto's JSON support, Jaeger
JSON has the fields the Jaeger UI reads (microseconds, CHILD_OF references), and the Chrome
trace puts each worker lane on its own track. pflow's own traces (the samples in
``tests/fixtures/``) get a synthesized tree whose ids are the same on every export.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_receiver import GRPC, HTTP, OtlpReceiver, ReceivedSpan, closed_port, flatten
from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE, PFLOW_SAMPLES
from pflow_trace.observe import conventions as conv
from pflow_trace.replay.chrome import lane_tids
from pflow_trace.replay.load import load_replay_trace
from pflow_trace.replay.synthesize import synthesize
from pflow_trace.tracefile.model import BatchInfo, BatchItem, TraceNode, TraceRun
from pflow_trace.tracefile.readers import read_trace
from pflow_trace.tracefile.replay_model import STATUS_ERROR
from pflow_trace.tracefile.schema import validate_trace_document
from pflow_trace.tracefile.timeunits import iso_to_ns
from subprocess_env import clean_env

#: A plain node; a parallel batch on two lanes where item 3 fails after one retry (an event and
#: an error status); a sequential batch with falsy items.
WORKFLOW = {
    "ir_version": "0.1.0",
    "name": "replay-demo",
    "nodes": [
        {"id": "hello", "type": "echo", "params": {"value": "hi"}},
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}", "delay_ms": 5, "fail_if": 3},
            "batch": {
                "items": [1, 2, 3, 4, 5],
                "parallel": True,
                "max_concurrent": 2,
                "max_retries": 2,
                "error_handling": "continue",
            },
        },
        {
            "id": "seq",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": ["a", "", 0]},
        },
    ],
}
TRACEPARENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-4bf92f3577b34da6a3ce929d0e0e4736-{TRACEPARENT_PARENT}-01"


# -- helpers ---------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=60,
        check=False,
    )


def one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def kinds_and_flags(requests: list[ExportTraceServiceRequest]) -> dict[str, tuple[int, int]]:
    return {
        span.span_id.hex(): (span.kind, span.flags)
        for request in requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }


def by_span_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.span_id: span for span in spans}


@dataclass
class LiveRun:
    """A run whose spans were captured live, and its trace file."""

    trace_path: Path
    document: dict[str, Any]
    spans: dict[str, ReceivedSpan]
    kinds_and_flags: dict[str, tuple[int, int]]

    @property
    def origin_ns(self) -> int:
        return int(self.document["otel"]["start_time_unix_nano"])


def run_live(directory: Path, **env: str) -> LiveRun:
    workflow = directory / "workflow.json"
    workflow.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    trace_path = directory / "replay.trace.json"
    with OtlpReceiver(HTTP) as receiver:
        completed = cli(
            "run",
            str(workflow),
            "--trace-file",
            str(trace_path),
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            receiver.endpoint,
            env=clean_env(OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test", **env),
        )
        assert completed.returncode == 0, completed.stderr
        document = json.loads(trace_path.read_text(encoding="utf-8"))
        expected = len(document["otel"]["spans"]["rows"])
        spans = receiver.wait_for_spans(expected)
        requests = receiver.requests
    assert len(spans) == expected
    validate_trace_document(document, str(trace_path))
    return LiveRun(trace_path, document, by_span_id(spans), kinds_and_flags(requests))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    return run_live(tmp_path_factory.mktemp("live"))


@pytest.fixture(scope="module")
def live_joined(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    """The same run joined to a caller's trace through ``TRACEPARENT``."""
    return run_live(tmp_path_factory.mktemp("joined"), TRACEPARENT=TRACEPARENT)


def replay(
    trace: Path, protocol: str = HTTP, *args: str
) -> tuple[
    subprocess.CompletedProcess[str], list[ReceivedSpan], list[ExportTraceServiceRequest], int
]:
    with OtlpReceiver(protocol) as receiver:
        completed = cli(
            "export",
            str(trace),
            "--to",
            "otlp",
            "--protocol",
            protocol,
            "--endpoint",
            receiver.endpoint,
            *args,
        )
        count = len(load_replay_trace(trace).spans)
        spans = receiver.wait_for_spans(count)
        requests = receiver.requests
    assert completed.returncode == 0, completed.stderr
    return completed, spans, requests, count


def export_file(trace: Path, file_format: str, output: Path, *args: str) -> Any:
    completed = cli("export", str(trace), "--format", file_format, "-o", str(output), *args)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().startswith("wrote ")
    return json.loads(output.read_text(encoding="utf-8"))


def otlp_json_to_request(document: dict[str, Any]) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON with protobuf's JSON support.

    The OTLP JSON encoding writes trace and span ids as hex, where protobuf's JSON mapping
    expects base64 for bytes; the OTLP spec says so, so the ids are converted first.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: base64.b64encode(bytes.fromhex(item)).decode()
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(item, str)
                else convert(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return json_format.Parse(json.dumps(convert(document)), ExportTraceServiceRequest())


def assert_properly_nested(events: list[dict[str, Any]]) -> None:
    """On every track, complete events nest: each starts and ends inside the one it is in."""
    tolerance_us = 0.002
    tracks: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        tracks.setdefault(event["tid"], []).append(event)
    for tid, track in tracks.items():
        open_ends: list[float] = []
        for event in sorted(track, key=lambda e: (e["ts"], -e["dur"])):
            while open_ends and open_ends[-1] <= event["ts"] + tolerance_us:
                open_ends.pop()
            end = event["ts"] + event["dur"]
            if open_ends:
                assert end <= open_ends[-1] + tolerance_us, (tid, event["name"], event["ts"])
            open_ends.append(end)


# -- the replay round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_replayed_spans_equal_the_spans_exported_live(protocol: str, live: LiveRun) -> None:
    completed, spans, requests, count = replay(live.trace_path, protocol)

    replayed = by_span_id(spans)
    assert len(spans) == count == len(live.spans)
    assert replayed.keys() == live.spans.keys()
    for span_id, original in live.spans.items():
        # Every field: name, trace id, ids, parent, ns times, attributes, status, events,
        # resource and scope.
        assert replayed[span_id] == original, original.name
    assert kinds_and_flags(requests) == live.kinds_and_flags
    assert {kind for kind, _ in live.kinds_and_flags.values()} == {1}  # SPAN_KIND_INTERNAL
    summary = completed.stdout.strip()
    assert summary.startswith(
        f"exported {count} spans of trace {live.document['otel']['trace_id']}"
    )
    assert summary.endswith(f"({protocol})")
    # The run really had the interesting parts: a failed item with a retry event, and the
    # resource from OTEL_RESOURCE_ATTRIBUTES.
    failed = [s for s in spans if s.layer == conv.LAYER_BATCH_ITEM and s.status_code == "ERROR"]
    assert len(failed) == 1
    assert [event.name for event in failed[0].events] == [conv.EVENT_RETRY]
    assert {s.resource["deployment.environment"] for s in spans} == {"test"}


def test_a_run_that_joined_a_traceparent_replays_its_remote_parent(live_joined: LiveRun) -> None:
    _, spans, requests, _ = replay(live_joined.trace_path)

    replayed = by_span_id(spans)
    assert replayed == live_joined.spans
    assert kinds_and_flags(requests) == live_joined.kinds_and_flags
    (root,) = [span for span in spans if span.layer == conv.LAYER_WORKFLOW]
    assert root.parent_span_id == TRACEPARENT_PARENT
    assert root.trace_id == TRACEPARENT.split("-")[1]
    # The root's parent is remote (flags bit 9), every other parent is local.
    flags = kinds_and_flags(requests)
    assert flags[root.span_id][1] & 0x300 == 0x300
    assert all(
        flag & 0x300 == 0x100 for span_id, (_, flag) in flags.items() if span_id != root.span_id
    )


@pytest.mark.no_trace_validation  # the copy lacks a field on purpose
def test_the_exact_start_is_used_and_start_time_is_the_fallback(
    live: LiveRun, tmp_path: Path
) -> None:
    document = json.loads(json.dumps(live.document))
    del document["otel"]["start_time_unix_nano"]
    fallback = tmp_path / "no-exact-start.trace.json"
    fallback.write_text(json.dumps(document), encoding="utf-8")

    exact = {span.span_id: span.start_ns for span in load_replay_trace(live.trace_path).spans}
    parsed = {span.span_id: span.start_ns for span in load_replay_trace(fallback).spans}
    assert exact == {span_id: span.start_ns for span_id, span in live.spans.items()}
    # start_time is rounded to microseconds, so the fallback is off by less than one.
    assert all(abs(exact[span_id] - parsed[span_id]) < 1000 for span_id in exact)


def test_a_trace_of_ours_without_a_span_table_gets_a_synthesized_tree(
    live: LiveRun, tmp_path: Path
) -> None:
    document = json.loads(json.dumps(live.document))
    del document["otel"]["spans"]
    path = tmp_path / "no-spans.trace.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    trace = load_replay_trace(path)
    assert trace.synthesized
    layers = [span.layer for span in trace.spans]
    assert {layer: layers.count(layer) for layer in set(layers)} == {
        conv.LAYER_WORKFLOW: 1,
        conv.LAYER_INSTRUMENTED: 3,
        conv.LAYER_BATCH: 2,
        conv.LAYER_BATCH_ITEM: 8,
    }

    def key(span: Any) -> tuple[Any, ...]:
        return (
            span.layer,
            span.attributes.get(conv.ATTR_NODE_ID),
            span.attributes.get(conv.ATTR_BATCH_INDEX),
        )

    originals = {key(s): s for s in live.spans.values()}
    # Node offsets (ms, three decimals) place node spans within a microsecond of the live ones;
    # two roundings to the microsecond can add up to one more.
    for span in trace.spans:
        if span.layer == conv.LAYER_INSTRUMENTED:
            assert abs(span.start_ns - originals[key(span)].start_ns) <= 2000, key(span)
    # Item offsets count from the batch's first item, so the gaps between items are kept, and
    # every item is on its recorded worker lane.
    for node_id in ("fan", "seq"):
        items = [
            s for s in trace.spans if s.layer == conv.LAYER_BATCH_ITEM and key(s)[1] == node_id
        ]
        first = min(items, key=lambda s: s.start_ns)
        first_original = originals[key(first)]
        for item in items:
            original = originals[key(item)]
            gap = (item.start_ns - first.start_ns) - (original.start_ns - first_original.start_ns)
            assert abs(gap) <= 2000, key(item)
            assert item.lane == original.attributes[conv.ATTR_BATCH_WORKER]


# -- file formats ----------------------------------------------------------------------------------


def test_otlp_json_parses_back_into_the_same_spans(live: LiveRun, tmp_path: Path) -> None:
    document = export_file(live.trace_path, "otlp-json", tmp_path / "run.otlp.json")

    # Spec details protobuf would not enforce: hex ids, string nanos, integer enums.
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
    assert isinstance(span["startTimeUnixNano"], str) and isinstance(span["kind"], int)
    request = otlp_json_to_request(document)
    assert by_span_id(flatten(request)) == live.spans
    assert kinds_and_flags([request]) == live.kinds_and_flags


def test_otlp_json_is_what_an_otlp_http_endpoint_accepts(live: LiveRun, tmp_path: Path) -> None:
    """The file is posted as-is with Content-Type: application/json (the receiver here speaks
    protobuf, so the test checks the body decodes into the request the receiver would get)."""
    output = tmp_path / "run.otlp.json"
    export_file(live.trace_path, "otlp-json", output)
    request = otlp_json_to_request(json.loads(output.read_bytes()))
    assert len(flatten(request)) == len(live.spans)


def test_jaeger_json_has_every_field_in_microseconds_with_parent_references(
    live: LiveRun, tmp_path: Path
) -> None:
    document = export_file(live.trace_path, "jaeger-json", tmp_path / "run.jaeger.json")

    (trace,) = document["data"]
    assert trace["traceID"] == live.document["otel"]["trace_id"]
    assert trace["processes"]["p1"]["serviceName"] == "pflow-trace"
    assert {"key": "deployment.environment", "type": "string", "value": "test"} in (
        trace["processes"]["p1"]["tags"]
    )
    assert len(trace["spans"]) == len(live.spans)
    for span in trace["spans"]:
        original = live.spans[span["spanID"]]
        assert span["traceID"] == trace["traceID"]
        assert span["operationName"] == original.name
        assert span["processID"] == "p1"
        assert span["startTime"] == original.start_ns // 1000
        assert span["duration"] == (original.end_ns - original.start_ns) // 1000
        assert isinstance(span["startTime"], int) and isinstance(span["duration"], int)
        if original.parent_span_id is None:
            assert span["references"] == []
        else:
            assert span["references"] == [
                {
                    "refType": "CHILD_OF",
                    "traceID": trace["traceID"],
                    "spanID": original.parent_span_id,
                }
            ]
        tags = {tag["key"]: tag for tag in span["tags"]}
        for key, value in original.attributes.items():
            assert tags[key]["value"] == value
        assert tags[conv.ATTR_LAYER]["type"] == "string"
        if conv.ATTR_BATCH_INDEX in original.attributes:
            assert tags[conv.ATTR_BATCH_INDEX]["type"] == "int64"
        if original.status_code == "ERROR":
            assert tags["error"] == {"key": "error", "type": "bool", "value": True}
            assert tags["otel.status_description"]["value"] == original.status_message
        else:
            assert "error" not in tags
        assert [log["timestamp"] for log in span["logs"]] == [
            event.time_ns // 1000 for event in original.events
        ]
        for log, event in zip(span["logs"], original.events, strict=True):
            fields = {field["key"]: field["value"] for field in log["fields"]}
            assert fields == {"event": event.name, **event.attributes}


def test_chrome_trace_puts_each_worker_lane_on_its_own_track(live: LiveRun, tmp_path: Path) -> None:
    document = export_file(live.trace_path, "chrome", tmp_path / "run.chrome.json")

    events = document["traceEvents"]
    complete = [event for event in events if event["ph"] == "X"]
    assert {event["pid"] for event in events} == {1}
    assert len(complete) == len(live.spans)
    by_id = {event["args"]["span_id"]: event for event in complete}
    origin = live.origin_ns
    for span_id, span in live.spans.items():
        event = by_id[span_id]
        assert event["ts"] == pytest.approx((span.start_ns - origin) / 1000, abs=0.001)
        assert event["dur"] == pytest.approx((span.end_ns - span.start_ns) / 1000, abs=0.001)
    # Tracks: node-level spans on 0; each item (and everything under it) on its lane + 1.
    items = [s for s in live.spans.values() if s.layer == conv.LAYER_BATCH_ITEM]
    for item in items:
        assert by_id[item.span_id]["tid"] == item.attributes[conv.ATTR_BATCH_WORKER] + 1
    for span in live.spans.values():
        if span.layer in (conv.LAYER_WORKFLOW, conv.LAYER_INSTRUMENTED, conv.LAYER_BATCH):
            assert by_id[span.span_id]["tid"] == 0
        if span.layer == conv.LAYER_NAMESPACED and span.parent_span_id in by_id:
            assert by_id[span.span_id]["tid"] == by_id[span.parent_span_id]["tid"]
    fan_tids = {by_id[i.span_id]["tid"] for i in items if i.attributes[conv.ATTR_NODE_ID] == "fan"}
    seq_tids = {by_id[i.span_id]["tid"] for i in items if i.attributes[conv.ATTR_NODE_ID] == "seq"}
    assert fan_tids == {1, 2}  # max_concurrent 2: two lanes side by side
    assert seq_tids == {1}
    names = {
        e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names == {0: "workflow", 1: "worker 0", 2: "worker 1"}
    assert_properly_nested(complete)
    (retry,) = [
        event for event in events if event["ph"] == "i" and event["name"] == conv.EVENT_RETRY
    ]
    assert retry["tid"] in fan_tids


def test_dash_writes_the_document_to_stdout_and_the_summary_to_stderr(live: LiveRun) -> None:
    completed = cli("export", str(live.trace_path), "--format", "jaeger-json", "-o", "-")

    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)["data"][0]["spans"]) == len(live.spans)
    # Only the summary: the run's own recorded warning (a batch item failed) is not repeated.
    assert completed.stderr.strip() == f"wrote {len(live.spans)} spans (jaeger-json) to stdout"


# -- pflow's own traces: a synthesized tree --------------------------------------------------------


def assert_synthesized_tree(spans: list[ReceivedSpan]) -> ReceivedSpan:
    """One root; node → batch → item parents, every parent present, children inside roots."""
    parents = {
        conv.LAYER_INSTRUMENTED: conv.LAYER_WORKFLOW,
        conv.LAYER_BATCH: conv.LAYER_INSTRUMENTED,
        conv.LAYER_BATCH_ITEM: conv.LAYER_BATCH,
    }
    by_id = by_span_id(spans)
    assert len(by_id) == len(spans)
    assert len({span.trace_id for span in spans}) == 1
    (root,) = [span for span in spans if span.parent_span_id is None]
    assert root.layer == conv.LAYER_WORKFLOW
    for span in spans:
        assert span.start_ns <= span.end_ns
        assert root.start_ns <= span.start_ns and span.end_ns <= root.end_ns
        if span is not root:
            assert by_id[span.parent_span_id].layer == parents[span.layer], span.name
            assert set(span.attributes) <= set(conv.ALL_ATTRIBUTES)
    return root


@pytest.mark.parametrize("fixture", PFLOW_SAMPLES, ids=lambda path: path.name)
def test_a_pflow_trace_exports_the_same_ids_every_time(fixture: Path) -> None:
    _, first, _, count = replay(fixture)
    _, second, _, _ = replay(fixture, GRPC)

    assert len(first) == count
    assert by_span_id(first) == by_span_id(second)
    root = assert_synthesized_tree(first)
    assert root.attributes[conv.ATTR_EXECUTION_ID] == read_trace(fixture).execution_id
    assert root.trace_id == load_replay_trace(fixture).trace_id
    nodes = [span for span in first if span.layer == conv.LAYER_INSTRUMENTED]
    assert [
        span.attributes[conv.ATTR_NODE_ID] for span in sorted(nodes, key=lambda s: s.start_ns)
    ] == [
        "make_items",
        "work",
        "fail_some",
    ]


@pytest.mark.parametrize("fixture", PFLOW_SAMPLES, ids=lambda path: path.name)
def test_a_pflow_trace_converts_to_identical_files_every_time(
    fixture: Path, tmp_path: Path
) -> None:
    for file_format in ("otlp-json", "jaeger-json", "chrome"):
        first = export_file(fixture, file_format, tmp_path / f"a.{file_format}.json")
        second = export_file(fixture, file_format, tmp_path / f"b.{file_format}.json")
        assert first == second, file_format
    request = otlp_json_to_request(json.loads((tmp_path / "a.otlp-json.json").read_text()))
    assert_synthesized_tree(flatten(request))


def test_the_pflow_jsonl_fixture_becomes_items_on_lanes_with_their_failures() -> None:
    trace = load_replay_trace(PFLOW_JSONL_SAMPLE)

    assert trace.synthesized
    items = [span for span in trace.spans if span.layer == conv.LAYER_BATCH_ITEM]
    work = [s for s in items if s.attributes[conv.ATTR_NODE_ID] == "work"]
    fail_some = [s for s in items if s.attributes[conv.ATTR_NODE_ID] == "fail_some"]
    assert len(work) == len(fail_some) == 8
    assert {span.lane for span in work} == {0, 1, 2, 3}  # parallel, max_concurrent 4
    assert {span.lane for span in fail_some} == {0}  # sequential
    failed = sorted(
        s.attributes[conv.ATTR_BATCH_INDEX] for s in fail_some if s.status_code == STATUS_ERROR
    )
    assert failed == [0, 2, 4, 6]
    assert all("exit code 3" in (s.status_message or "") for s in fail_some if s.status_code)
    batch = next(
        s
        for s in trace.spans
        if s.layer == conv.LAYER_BATCH and s.attributes[conv.ATTR_NODE_ID] == "work"
    )
    assert batch.attributes[conv.ATTR_BATCH_MAX_CONCURRENT] == 4
    assert batch.attributes[conv.ATTR_BATCH_SIZE] == 8
    tids = lane_tids(trace)
    assert {tids[s.span_id] for s in work} == {1, 2, 3, 4}
    # Sequential items run back to back.
    ordered = sorted(fail_some, key=lambda s: s.attributes[conv.ATTR_BATCH_INDEX])
    assert all(a.end_ns == b.start_ns for a, b in pairwise(ordered))


def test_the_pflow_json_fixture_has_no_item_records_so_no_item_spans() -> None:
    trace = load_replay_trace(PFLOW_JSON_SAMPLE)

    assert not [span for span in trace.spans if span.layer == conv.LAYER_BATCH_ITEM]
    batches = [span for span in trace.spans if span.layer == conv.LAYER_BATCH]
    assert {span.attributes[conv.ATTR_NODE_ID] for span in batches} == {"work", "fail_some"}
    fail_some = next(s for s in batches if s.attributes[conv.ATTR_NODE_ID] == "fail_some")
    assert fail_some.attributes[conv.ATTR_BATCH_ERROR_COUNT] == 4


def _run(nodes: list[TraceNode], **fields: Any) -> TraceRun:
    defaults: dict[str, Any] = {
        "source": "memory",
        "format": "pflow",
        "format_version": "1.2.0",
        "workflow_name": "w",
        "final_status": "success",
        "start_time": "2026-01-01T00:00:00",
        "duration_ms": 100.0,
        "execution_id": "exec-1",
    }
    defaults.update(fields)
    return TraceRun(nodes=nodes, **defaults)


def _batch_node(
    parallel: bool, durations_ms: list[float], max_concurrent: int | None = 2
) -> TraceNode:
    items = [
        BatchItem(index, index, "success", duration) for index, duration in enumerate(durations_ms)
    ]
    batch = BatchInfo(
        count=len(items), parallel=parallel, max_concurrent=max_concurrent, items=items
    )
    return TraceNode("b", "echo", True, 60.0, timestamp="2026-01-01T00:00:00.070", batch=batch)


def test_parallel_items_are_placed_greedily_on_max_concurrent_lanes() -> None:
    trace = synthesize(_run([_batch_node(True, [30.0, 10.0, 10.0, 5.0])]))

    items = sorted(
        (s for s in trace.spans if s.layer == conv.LAYER_BATCH_ITEM),
        key=lambda s: s.attributes[conv.ATTR_BATCH_INDEX],
    )
    node_start = iso_to_ns("2026-01-01T00:00:00.010")
    offsets_ms = [((s.start_ns - node_start) / 1e6, s.lane) for s in items]
    # 0 → lane 0 [0, 30); 1 → lane 1 [0, 10); 2 → lane 1 [10, 20); 3 → lane 1 [20, 25).
    assert offsets_ms == [(0.0, 0), (0.0, 1), (10.0, 1), (20.0, 1)]


def test_sequential_items_run_back_to_back_and_nodes_without_times_are_laid_end_to_end() -> None:
    plain = TraceNode("first", "echo", True, 10.0)
    failed = TraceNode("second", "echo", False, 5.0, error="boom")
    trace = synthesize(_run([plain, failed], final_status="failed", error="node second failed"))

    root, first, second = trace.spans
    assert first.start_ns == root.start_ns and first.end_ns == second.start_ns
    assert (second.status_code, second.status_message) == (STATUS_ERROR, "boom")
    assert (root.status_code, root.status_message) == (STATUS_ERROR, "node second failed")
    sequential = synthesize(_run([_batch_node(False, [1.0, 2.0, 3.0])]))
    items = [s for s in sequential.spans if s.layer == conv.LAYER_BATCH_ITEM]
    assert [(s.end_ns - s.start_ns) // 1_000_000 for s in items] == [1, 2, 3]
    assert all(a.end_ns == b.start_ns for a, b in pairwise(items))


def test_synthesized_ids_depend_on_the_execution_id_only() -> None:
    nodes = [TraceNode("a", "echo", True, 1.0)]
    one, again = synthesize(_run(nodes)), synthesize(_run(nodes, duration_ms=5.0))
    other = synthesize(_run(nodes, execution_id="exec-2"))

    assert [s.span_id for s in one.spans] == [s.span_id for s in again.spans]
    assert one.trace_id == again.trace_id != other.trace_id
    assert not {s.span_id for s in one.spans} & {s.span_id for s in other.spans}


# -- bad input -------------------------------------------------------------------------------------


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(
        cli("export", str(tmp_path / "nope.json"), "--format", "chrome", "-o", "-")
    )
    assert "no such file" in line


@pytest.mark.parametrize(
    "content",
    ["not json at all", json.dumps(WORKFLOW), "[1, 2]"],
    ids=["text", "workflow", "array"],
)
def test_a_file_that_is_not_a_trace_is_one_line(content: str, tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(content, encoding="utf-8")
    for args in (("--to", "otlp"), ("--format", "jaeger-json", "-o", str(tmp_path / "out.json"))):
        completed = cli("export", str(path), *args)
        assert completed.returncode == 2
        assert str(path) in one_error_line(completed)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.no_trace_validation
def test_a_broken_span_table_is_one_line(live: LiveRun, tmp_path: Path) -> None:
    document = json.loads(json.dumps(live.document))
    document["otel"]["spans"]["rows"][3] = ["x"]
    path = tmp_path / "broken.trace.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    line = one_error_line(cli("export", str(path), "--format", "chrome", "-o", "-"))
    assert "otel.spans row 3 is malformed" in line


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--to", "otlp", "--format", "chrome", "-o", "x.json"),
        ("--format", "chrome"),
        ("--to", "otlp", "-o", "x.json"),
        ("--format", "chrome", "-o", "x.json", "--endpoint", "http://localhost:4318"),
    ],
    ids=["neither", "both", "no-output", "output-with-otlp", "endpoint-with-format"],
)
def test_option_mistakes_are_one_line_usage_errors(args: tuple[str, ...], live: LiveRun) -> None:
    completed = cli("export", str(live.trace_path), *args)
    assert completed.returncode == 2
    one_error_line(completed)


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_a_closed_port_fails_fast_with_one_line(protocol: str, live: LiveRun) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    completed = cli(
        "export",
        str(live.trace_path),
        "--to",
        "otlp",
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
    )

    # cli()'s subprocess timeout is the hang detector; the time taken is not judged here.
    assert completed.returncode == 1
    line = one_error_line(completed)
    assert "could not export" in line and "127.0.0.1" in line


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: the hang a timeout is for."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_a_silent_endpoint_never_hangs_past_the_timeout(
    protocol: str, silent_endpoint: str, live: LiveRun
) -> None:
    timeout_s = 1.0
    started = time.monotonic()
    completed = cli(
        "export",
        str(live.trace_path),
        "--to",
        "otlp",
        "--protocol",
        protocol,
        "--endpoint",
        silent_endpoint,
        "--timeout",
        str(timeout_s),
    )
    elapsed_s = time.monotonic() - started

    assert completed.returncode == 1
    # cli()'s subprocess timeout is the hang detector; the time taken is reported, not judged.
    assert "could not export" in one_error_line(completed)
    print(f"{protocol}: a silent endpoint cost {elapsed_s:.2f}s with --timeout {timeout_s}")


def test_the_endpoint_comes_from_the_environment_like_run(live: LiveRun) -> None:
    with OtlpReceiver(HTTP) as receiver:
        completed = cli(
            "export",
            str(live.trace_path),
            "--to",
            "otlp",
            env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint),
        )
        spans = receiver.wait_for_spans(len(live.spans))
    assert completed.returncode == 0, completed.stderr
    assert f"{receiver.endpoint}/v1/traces (http/protobuf)" in completed.stdout
    assert sorted(span.span_id for span in spans) == sorted(live.spans)
