"""A 5,000-item batch exported live in the linked shape: Jaeger holds a small run trace, and
its batch span's links reach every item, the failed one among those kept in the run's trace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pflow_trace.observe import conventions as conv

from .jaeger_api import WAIT_SECONDS, JaegerApi, spans_by_id, tags_of
from .jaeger_runs import HTTP, run_workflow

ITEMS = 5_000
FAILING = 4_321
WORKFLOW = {
    "ir_version": "0.1.0",
    "name": "jaeger-shape",
    "nodes": [
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": FAILING},
            "batch": {
                "items": list(range(ITEMS)),
                "parallel": True,
                "max_concurrent": 4,
                "error_handling": "continue",
            },
        }
    ],
}
#: The run's trace: workflow, instrumented, batch, and the 100 slowest items plus the failed
#: one, four spans each.
RUN_TRACE_SPANS = 3 + 4 * (100 + 1)


def layer(span: dict[str, Any]) -> Any:
    return tags_of(span).get(conv.ATTR_LAYER)


def chunk_trace(jaeger: JaegerApi, trace_id: str) -> dict[str, dict[str, Any]]:
    """A chunk trace once Jaeger holds all of it: its root says how many items it has."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        fetched = jaeger.fetch(f"/api/traces/{trace_id}")
        roots = [
            span
            for trace in fetched.document.get("data") or []
            for span in trace["spans"]
            if layer(span) == conv.LAYER_BATCH_CHUNK
        ]
        if roots or time.monotonic() > deadline:
            assert roots, f"no chunk root in {trace_id}"
            items = tags_of(roots[0])[conv.ATTR_SHAPE_CHUNK_ITEMS]
            return spans_by_id(jaeger.trace(trace_id, 1 + 4 * items))
        time.sleep(0.1)


def test_a_linked_batch_keeps_the_run_trace_small_and_every_item_reachable(
    jaeger: JaegerApi, tmp_path: Path
) -> None:
    run = run_workflow(tmp_path, jaeger, HTTP, "--trace-shape", "linked", workflow=WORKFLOW)
    assert len(run.replay.spans) == 3 + 4 * ITEMS  # the trace file keeps every span
    run_trace = spans_by_id(jaeger.trace(run.trace_id, RUN_TRACE_SPANS))
    assert len(run_trace) < 10_000
    [batch] = [span for span in run_trace.values() if layer(span) == conv.LAYER_BATCH]
    batch_tags = tags_of(batch)
    assert batch_tags[conv.ATTR_SHAPE_ITEMS_FAILED] == 1
    assert batch_tags[conv.ATTR_SHAPE_ITEMS_SUCCESS] == ITEMS - 1
    failed_here = [
        tags_of(span)[conv.ATTR_BATCH_INDEX]
        for span in run_trace.values()
        if layer(span) == conv.LAYER_BATCH_ITEM and tags_of(span).get("error")
    ]
    assert failed_here == [FAILING]  # zero hops
    found = {
        tags_of(span)[conv.ATTR_BATCH_INDEX]
        for span in run_trace.values()
        if layer(span) == conv.LAYER_BATCH_ITEM
    }
    chunk_ids = [
        ref["traceID"]
        for ref in batch["references"]
        if ref["refType"] == "FOLLOWS_FROM" and ref["traceID"] != run.trace_id
    ]
    assert len(chunk_ids) == batch_tags[conv.ATTR_SHAPE_CHUNKS] == 5
    for trace_id in chunk_ids:  # one hop
        spans = chunk_trace(jaeger, trace_id)
        [root] = [span for span in spans.values() if layer(span) == conv.LAYER_BATCH_CHUNK]
        assert {(ref["traceID"], ref["spanID"]) for ref in root["references"]} == {
            (run.trace_id, batch["spanID"])
        }
        items = [span for span in spans.values() if layer(span) == conv.LAYER_BATCH_ITEM]
        assert all(
            ref["spanID"] == root["spanID"]
            for item in items
            for ref in item["references"]
            if ref["refType"] == "CHILD_OF"
        )
        found |= {tags_of(item)[conv.ATTR_BATCH_INDEX] for item in items}
    assert found == set(range(ITEMS))
