"""``pflow-trace export`` against a real Jaeger: ``--to otlp`` replays a trace file (ours, and
pflow's own JSON-lines trace) into Jaeger, and ``--format jaeger-json`` writes the document
Jaeger's query API returns for that trace, ``/api/traces/<id>``.

The two documents are compared whole, after :func:`normalised` removes only what may
legitimately differ (each step says why). Anything else that differs is a bug in our Jaeger
JSON, or a change in Jaeger.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.replay.load import load_replay_trace

from .jaeger_api import JaegerApi, parent_of, spans_by_id
from .jaeger_runs import GRPC, HTTP, PFLOW_TRACE, export_jaeger_json, export_to, run_workflow


def _sorted_tags(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tags, key=lambda tag: tag["key"])


def _process(process: dict[str, Any]) -> dict[str, Any]:
    return {"serviceName": process["serviceName"], "tags": _sorted_tags(process["tags"])}


def _orphan_warning(span: dict[str, Any], span_ids: set[str]) -> list[str] | None:
    """The warning Jaeger puts on a span whose parent it does not hold, if it is just that."""
    parent = parent_of(span)
    if parent is None or parent in span_ids:
        return None
    return [f"invalid parent span IDs={parent}; skipping clock skew adjustment"]


def _span(span: dict[str, Any], processes: dict[str, Any], span_ids: set[str]) -> dict[str, Any]:
    warnings = span["warnings"]
    if warnings is not None and warnings == _orphan_warning(span, span_ids):
        # 5. A run that joined a TRACEPARENT has a root whose parent (the caller's span) is not
        #    in the trace. Jaeger's clock-skew adjuster notes that on the span when it answers
        #    a query; a file written without asking the backend cannot know it. Only exactly
        #    this warning, naming exactly that parent, is removed.
        warnings = None
    logs = [
        {"timestamp": log["timestamp"], "fields": _sorted_tags(log["fields"])}
        for log in span["logs"]
    ]
    return {
        **span,
        # 2. Tags: Jaeger sorts them by key, the ones it derives (span.kind, otel.*, error)
        #    included; we keep the span's own order. Order carries no meaning in Jaeger JSON.
        "tags": _sorted_tags(span["tags"]),
        # 3. Logs: Jaeger sorts a span's events by name (then fields by key); we keep them in
        #    the order they happened. Sorted here by time, then by content.
        "logs": sorted(logs, key=lambda log: (log["timestamp"], str(log["fields"]))),
        # 4. processID is only a label for an entry of "processes" ("p1" in both today);
        #    the span is compared with the process itself.
        "processID": _process(processes[span["processID"]]),
        "warnings": warnings,
    }


def normalised(document: dict[str, Any]) -> dict[str, Any]:
    """A Jaeger JSON document with only the meaningless differences taken out."""
    [trace] = document["data"]
    processes = trace["processes"]
    span_ids = {span["spanID"] for span in trace["spans"]}
    spans = [_span(span, processes, span_ids) for span in trace["spans"]]
    return {
        **document,
        "data": [
            {
                **trace,
                # 1. Span order: Jaeger returns spans in the order it stored them (as they
                #    arrived), we write them in the trace file's order (as they ended).
                "spans": sorted(spans, key=lambda span: span["spanID"]),
                "processes": sorted(
                    (_process(process) for process in processes.values()), key=json.dumps
                ),
            }
        ],
    }


def assert_same_document(ours: dict[str, Any], jaegers: dict[str, Any]) -> None:
    mine, theirs = normalised(ours), normalised(jaegers)
    assert mine.keys() == theirs.keys()
    for key in mine:
        if key != "data":
            assert mine[key] == theirs[key], key
    trace, received = mine["data"][0], theirs["data"][0]
    assert trace.keys() == received.keys()
    assert trace["processes"] == received["processes"]
    assert [span["spanID"] for span in trace["spans"]] == [
        span["spanID"] for span in received["spans"]
    ]
    for span, arrived in zip(trace["spans"], received["spans"], strict=True):
        assert span == arrived, span["operationName"]
    assert mine == theirs


def test_a_live_run_is_what_our_jaeger_json_says(jaeger: JaegerApi, tmp_path: Path) -> None:
    run = run_workflow(tmp_path, jaeger)
    fetched = jaeger.trace(run.trace_id, len(run.replay.spans))
    ours = export_jaeger_json(run.trace_path, tmp_path / "run.jaeger.json")
    assert_same_document(ours, fetched.document)


def test_a_traceparent_run_is_what_our_jaeger_json_says(jaeger: JaegerApi, tmp_path: Path) -> None:
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    run = run_workflow(tmp_path, jaeger, GRPC, TRACEPARENT=traceparent)
    fetched = jaeger.trace(run.trace_id, len(run.replay.spans))
    ours = export_jaeger_json(run.trace_path, tmp_path / "run.jaeger.json")
    assert_same_document(ours, fetched.document)


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_replaying_our_trace_file(jaeger: JaegerApi, tmp_path: Path, protocol: str) -> None:
    """A run that exported nothing, replayed: Jaeger gets every span, with its parent; the
    document matches our Jaeger JSON; replaying it again adds no second copy."""
    run = run_workflow(tmp_path, None)
    assert jaeger.fetch(f"/api/traces/{run.trace_id}").document["data"] == []
    export_to(jaeger, run.trace_path, protocol)
    fetched = jaeger.trace(run.trace_id, len(run.replay.spans))
    spans = spans_by_id(fetched)
    assert {span_id: parent_of(span) for span_id, span in spans.items()} == {
        span.span_id: span.parent_span_id for span in run.replay.spans
    }
    ours = export_jaeger_json(run.trace_path, tmp_path / "run.jaeger.json")
    assert_same_document(ours, fetched.document)
    export_to(jaeger, run.trace_path, GRPC if protocol == HTTP else HTTP)
    again = jaeger.trace(run.trace_id, len(run.replay.spans))
    assert normalised(again.document) == normalised(fetched.document)


def test_replaying_a_live_run_adds_no_second_copy(jaeger: JaegerApi, tmp_path: Path) -> None:
    """The replay sends the very spans the live export sent, so Jaeger keeps one of each."""
    run = run_workflow(tmp_path, jaeger, GRPC)
    live = jaeger.trace(run.trace_id, len(run.replay.spans))
    export_to(jaeger, run.trace_path, HTTP)
    replayed = jaeger.trace(run.trace_id, len(run.replay.spans))
    assert normalised(replayed.document) == normalised(live.document)


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_replaying_pflows_own_trace(jaeger: JaegerApi, tmp_path: Path, protocol: str) -> None:
    """pflow's JSON-lines trace gets a synthesized tree; Jaeger stores it as our Jaeger JSON
    describes it. Its ids are the same on every export, so the trace may already be there
    from an earlier export (this test's other protocol, or an earlier session): Jaeger still
    holds one copy of each span."""
    trace_file = tmp_path / PFLOW_TRACE.name
    shutil.copyfile(PFLOW_TRACE, trace_file)
    replay = load_replay_trace(trace_file)
    assert replay.synthesized
    export_to(jaeger, trace_file, protocol)
    fetched = jaeger.trace(replay.trace_id, len(replay.spans))
    ours = export_jaeger_json(trace_file, tmp_path / "pflow.jaeger.json")
    assert_same_document(ours, fetched.document)
