"""``--trace-shape`` end to end: ``run`` and ``export --to otlp`` into a loopback OTLP receiver.

A batch of 300 quick items in the linked shape: the run's trace keeps the 100 slowest items and
the rest (200) go to one chunk trace, whose root links back to the batch span; the batch span
links to it. The trace file keeps every span either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from otlp_receiver import GRPC, HTTP, OtlpReceiver, ReceivedSpan
from pflow_trace.observe import conventions as conv
from pflow_trace.replay.load import load_replay_trace
from subprocess_env import clean_env

ITEMS = 300
WORKFLOW = {
    "ir_version": "0.1.0",
    "name": "shape-demo",
    "nodes": [
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": list(range(ITEMS))},
        }
    ],
}
#: workflow + instrumented + batch, and four spans (item, namespaced, template, node) per item.
ALL_SPANS = 3 + 4 * ITEMS


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )


def run_into(receiver: OtlpReceiver, directory: Path, *options: str) -> Path:
    workflow = directory / "workflow.json"
    workflow.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    trace = directory / "run.trace.json"
    completed = cli(
        "run",
        str(workflow),
        "--trace-file",
        str(trace),
        "--exporter",
        "otlp",
        "--otlp-protocol",
        receiver.protocol,
        "--otlp-endpoint",
        receiver.endpoint,
        *options,
    )
    assert completed.returncode == 0, completed.stderr
    return trace


def links_by_span(receiver: OtlpReceiver) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Each received span's links: (trace id, span id, attributes), by the span's id."""
    links: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for request in receiver.requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    links[span.span_id.hex()] = [
                        (
                            link.trace_id.hex(),
                            link.span_id.hex(),
                            {kv.key: kv.value.string_value for kv in link.attributes},
                        )
                        for link in span.links
                    ]
    return links


def assert_linked(spans: list[ReceivedSpan], receiver: OtlpReceiver) -> None:
    [batch] = [span for span in spans if span.layer == conv.LAYER_BATCH]
    [root] = [span for span in spans if span.layer == conv.LAYER_BATCH_CHUNK]
    run_trace = [span for span in spans if span.trace_id == batch.trace_id]
    chunk_trace = [span for span in spans if span.trace_id == root.trace_id]
    assert root.trace_id != batch.trace_id
    assert Counter(span.layer for span in run_trace)[conv.LAYER_BATCH_ITEM] == 100
    assert Counter(span.layer for span in chunk_trace)[conv.LAYER_BATCH_ITEM] == 200
    assert len(chunk_trace) == 1 + 4 * 200
    items = [span for span in spans if span.layer == conv.LAYER_BATCH_ITEM]
    assert sorted(span.attributes[conv.ATTR_BATCH_INDEX] for span in items) == list(range(ITEMS))
    assert batch.attributes[conv.ATTR_SHAPE_ITEMS_SUCCESS] == ITEMS
    assert batch.attributes[conv.ATTR_SHAPE_ITEMS_LINKED] == 200
    links = links_by_span(receiver)
    assert links[batch.span_id] == [(root.trace_id, root.span_id, {conv.ATTR_SHAPE_LINK: "chunk"})]
    assert links[root.span_id] == [(batch.trace_id, batch.span_id, {conv.ATTR_SHAPE_LINK: "batch"})]


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_run_exports_a_linked_batch_and_the_trace_file_keeps_every_span(
    protocol: str, tmp_path: Path
) -> None:
    with OtlpReceiver(protocol) as receiver:
        trace = run_into(receiver, tmp_path, "--trace-shape", "linked")
        spans = receiver.wait_for_spans(ALL_SPANS + 1)
        assert len(spans) == ALL_SPANS + 1  # one chunk root
        assert_linked(spans, receiver)
    assert len(load_replay_trace(trace).spans) == ALL_SPANS


def test_auto_keeps_a_batch_under_its_threshold_inline(tmp_path: Path) -> None:
    with OtlpReceiver(HTTP) as receiver:
        run_into(receiver, tmp_path)
        spans = receiver.wait_for_spans(ALL_SPANS)
    assert len(spans) == ALL_SPANS
    assert len({span.trace_id for span in spans}) == 1
    assert not any(links_by_span(receiver).values())


def test_export_to_otlp_replays_in_the_linked_shape(tmp_path: Path) -> None:
    with OtlpReceiver(HTTP) as receiver:
        trace = run_into(receiver, tmp_path, "--trace-shape", "inline")
    with OtlpReceiver(HTTP) as receiver:
        completed = cli(
            "export", str(trace), "--to", "otlp", "--endpoint", receiver.endpoint,
            "--trace-shape", "linked",
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        assert f"exported {ALL_SPANS + 1} spans" in completed.stdout
        spans = receiver.wait_for_spans(ALL_SPANS + 1)
        assert_linked(spans, receiver)


@pytest.mark.parametrize(
    "arguments",
    [
        ["run", "workflow.json", "--trace-shape", "flat"],
        ["export", "t.json", "--format", "chrome", "-o", "x.json", "--trace-shape", "linked"],
    ],
)
def test_a_bad_trace_shape_is_one_line_and_exit_two(arguments: list[str]) -> None:
    completed = cli(*arguments)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "--trace-shape" in completed.stderr
