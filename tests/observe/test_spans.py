"""The span tree a run emits, read through the SDK's in-memory exporter (see docs/spans.md).

Every test compiles and runs a real workflow with :func:`traced_run` (or :func:`run_workflow`
with a tracer of our own) and inspects the finished spans: the exact parent/child shape per
wrapper layer, the attributes, statuses, exception and retry events, redaction, and span names.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pflow_trace import api
from pflow_trace.api import TracedRun, TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.redaction import REDACTED
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import run_workflow

WORKFLOW_NAME = "spans"
ROOT = f"workflow {WORKFLOW_NAME}"


# -- helpers ---------------------------------------------------------------------------------------


def workflow(*nodes: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"ir_version": "0.1.0", "name": WORKFLOW_NAME, "nodes": list(nodes)}
    if inputs:
        document["inputs"] = inputs
    return validate_workflow(document)


def run_traced(
    document: dict[str, Any], inputs: dict[str, Any] | None = None
) -> tuple[TracedRun, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        write_trace_file=False,
        join_env_trace_context=False,  # a TRACEPARENT in the test environment must not leak in
        extra_processors=[SimpleSpanProcessor(exporter)],
    )
    outcome = api.run(document, inputs or {}, options)
    return outcome, list(exporter.get_finished_spans())


def children_by_parent(spans: Iterable[ReadableSpan]) -> dict[int | None, list[ReadableSpan]]:
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        children[span.parent.span_id if span.parent else None].append(span)
    for siblings in children.values():  # items by index (parallel ones finish in any order)
        siblings.sort(key=lambda s: (s.attributes.get(conv.ATTR_BATCH_INDEX, -1), s.start_time))
    return children


def tree(spans: Sequence[ReadableSpan]) -> list[tuple[str, list[Any]]]:
    """The spans as nested ``(name, [children])`` tuples, roots first."""
    children = children_by_parent(spans)

    def build(span: ReadableSpan) -> tuple[str, list[Any]]:
        return (span.name, [build(child) for child in children[span.context.span_id]])

    return [build(root) for root in children[None]]


def chain(node_id: str, *layers: str) -> tuple[str, list[Any]]:
    """``chain("a", "namespaced", "template", "node")`` → the nested tuple for those layers."""
    inner: tuple[str, list[Any]] | None = None
    for layer in reversed(layers):
        inner = (f"{node_id} {layer}", [inner] if inner else [])
    assert inner is not None
    return inner


def item_chain(node_id: str) -> tuple[str, list[Any]]:
    return chain(node_id, "batch.item", "namespaced", "template", "node")


def by_layer(spans: Iterable[ReadableSpan], layer: str) -> list[ReadableSpan]:
    found = [span for span in spans if span.attributes[conv.ATTR_LAYER] == layer]
    return sorted(found, key=lambda s: (s.attributes.get(conv.ATTR_BATCH_INDEX, -1), s.start_time))


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans}
    found = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


def layers_of(spans: Iterable[ReadableSpan]) -> list[str]:
    return [span.attributes[conv.ATTR_LAYER] for span in spans]


# -- the tree --------------------------------------------------------------------------------------


def test_plain_node_has_instrumented_namespaced_template_node() -> None:
    outcome, spans = run_traced(workflow({"id": "greet", "type": "echo", "params": {"value": 1}}))

    assert outcome.result.status == "success"
    assert tree(spans) == [
        (ROOT, [chain("greet", "instrumented", "namespaced", "template", "node")])
    ]
    for span in spans:
        assert span.context.trace_id == spans[0].context.trace_id
        assert span.status.status_code is StatusCode.UNSET


def test_sequential_batch_has_one_item_span_per_item_each_with_its_own_chain() -> None:
    document = workflow(
        {"id": "first", "type": "echo", "params": {"value": 0}},
        {
            "id": "each",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": [0, "", False]},
        },
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "success"
    assert tree(spans) == [
        (
            ROOT,
            [
                chain("first", "instrumented", "namespaced", "template", "node"),
                (
                    "each instrumented",
                    [("each batch", [item_chain("each"), item_chain("each"), item_chain("each")])],
                ),
            ],
        )
    ]
    items = by_layer(spans, conv.LAYER_BATCH_ITEM)
    assert [item.attributes[conv.ATTR_BATCH_INDEX] for item in items] == [0, 1, 2]
    # Sequential: each item starts after the one before it ended.
    for earlier, later in itertools.pairwise(items):
        assert earlier.end_time <= later.start_time


def test_parallel_batch_items_are_children_of_the_batch_span_and_overlap_in_time() -> None:
    document = workflow(
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}", "delay_ms": 150},
            "batch": {"items": ["a", "b", "c", "d"], "parallel": True, "max_concurrent": 4},
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "success"
    assert tree(spans) == [(ROOT, [("fan instrumented", [("fan batch", [item_chain("fan")] * 4)])])]
    (batch,) = by_layer(spans, conv.LAYER_BATCH)
    items = by_layer(spans, conv.LAYER_BATCH_ITEM)
    assert {item.parent.span_id for item in items} == {batch.context.span_id}
    assert {item.context.trace_id for item in items} == {batch.context.trace_id}
    # The real overlap: every item started before any item ended.
    assert max(item.start_time for item in items) < min(item.end_time for item in items)
    assert len({item.attributes[conv.ATTR_BATCH_WORKER] for item in items}) == 4
    for item in items:
        assert batch.start_time <= item.start_time <= item.end_time <= batch.end_time


def test_library_hook_with_a_plain_tracer_gives_the_same_tree() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    document = workflow(
        {"id": "each", "type": "echo", "params": {"value": "${item}"}, "batch": {"items": [1, 2]}}
    )

    result = run_workflow(document, {}, run=RunContext(tracer=provider.get_tracer("t")))

    assert result.status == "success"
    assert tree(exporter.get_finished_spans()) == [
        (ROOT, [("each instrumented", [("each batch", [item_chain("each")] * 2)])])
    ]


# -- attributes ------------------------------------------------------------------------------------


def test_every_span_names_its_layer_and_node_and_the_root_names_the_run() -> None:
    document = workflow(
        {"id": "one", "type": "echo", "params": {"value": 1}},
        {"id": "many", "type": "echo", "params": {"value": "${item}"}, "batch": {"items": [1]}},
        {
            "id": "again",
            "type": "echo",
            "params": {"value": 0},
            "loop": {"while": "${again.value}"},
        },
    )
    outcome, spans = run_traced(document)

    assert sorted(set(layers_of(spans))) == sorted(conv.LAYERS)
    (root,) = by_layer(spans, conv.LAYER_WORKFLOW)
    assert root.parent is None
    assert root.attributes[conv.ATTR_WORKFLOW_NAME] == WORKFLOW_NAME
    assert root.attributes[conv.ATTR_EXECUTION_ID] == outcome.result.record.execution_id
    assert root.attributes[conv.ATTR_FINAL_STATUS] == "success"
    for span in spans:
        layer = span.attributes[conv.ATTR_LAYER]
        assert layer in conv.LAYERS
        assert set(span.attributes) <= set(conv.ALL_ATTRIBUTES)
        if layer == conv.LAYER_WORKFLOW:
            continue
        node_id = span.attributes[conv.ATTR_NODE_ID]
        assert node_id in ("one", "many", "again")
        assert span.attributes[conv.ATTR_NODE_TYPE] == "echo"
        assert span.name == conv.span_name(layer, node_id)


def test_batch_and_item_attributes() -> None:
    document = workflow(
        {
            "id": "each",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": "bad"},
            "batch": {
                "items": ["ok", "bad", {"n": 1}],
                "parallel": True,
                "max_concurrent": 2,
                "error_handling": "continue",
            },
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "degraded"
    (batch,) = by_layer(spans, conv.LAYER_BATCH)
    assert dict(batch.attributes) == {
        conv.ATTR_LAYER: "batch",
        conv.ATTR_NODE_ID: "each",
        conv.ATTR_NODE_TYPE: "echo",
        conv.ATTR_BATCH_SIZE: 3,
        conv.ATTR_BATCH_PARALLEL: True,
        conv.ATTR_BATCH_MAX_CONCURRENT: 2,
        conv.ATTR_BATCH_EXECUTION_MODE: "parallel",
        conv.ATTR_BATCH_ERROR_HANDLING: "continue",
        conv.ATTR_BATCH_LANES: "threads",  # echo has no async path
        conv.ATTR_BATCH_SUCCESS_COUNT: 2,
        conv.ATTR_BATCH_ERROR_COUNT: 1,
    }
    items = by_layer(spans, conv.LAYER_BATCH_ITEM)
    expected_previews = ["ok", "bad", '{"n":1}']
    for index, (item, preview) in enumerate(zip(items, expected_previews, strict=True)):
        attributes = dict(item.attributes)
        assert attributes.pop(conv.ATTR_BATCH_WORKER) in (0, 1)
        # Where the item's time went: measured, so only their presence and sign are known.
        assert attributes.pop(conv.ATTR_BATCH_TIME_ATTEMPTS_US) >= 0  # no retry: no retry wait
        assert attributes == {
            conv.ATTR_LAYER: "batch.item",
            conv.ATTR_NODE_ID: "each",
            conv.ATTR_NODE_TYPE: "echo",
            conv.ATTR_BATCH_INDEX: index,
            conv.ATTR_BATCH_ATTEMPTS: 1,
            conv.ATTR_BATCH_ITEM_PREVIEW: preview,
        }


def test_sequential_batch_reports_max_concurrent_one() -> None:
    document = workflow(
        {"id": "each", "type": "echo", "params": {"value": "${item}"}, "batch": {"items": [1]}}
    )
    _, spans = run_traced(document)

    (batch,) = by_layer(spans, conv.LAYER_BATCH)
    assert batch.attributes[conv.ATTR_BATCH_PARALLEL] is False
    assert batch.attributes[conv.ATTR_BATCH_MAX_CONCURRENT] == 1
    assert batch.attributes[conv.ATTR_BATCH_EXECUTION_MODE] == "sequential"
    assert batch.attributes[conv.ATTR_BATCH_ERROR_HANDLING] == "fail_fast"


def test_item_preview_is_short_and_redacted() -> None:
    long_text = "x" * 5000
    document = workflow(
        {
            "id": "login",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": [{"user": "ada", "password": "hunter2"}, long_text]},
        }
    )
    _, spans = run_traced(document)

    secret_item, long_item = by_layer(spans, conv.LAYER_BATCH_ITEM)
    preview = secret_item.attributes[conv.ATTR_BATCH_ITEM_PREVIEW]
    assert REDACTED in preview
    assert "hunter2" not in preview
    assert "ada" in preview
    assert len(long_item.attributes[conv.ATTR_BATCH_ITEM_PREVIEW]) < 200


def everything_said(spans: Iterable[ReadableSpan]) -> list[str]:
    """Every piece of text a span carries: name, attributes, events, status description."""
    texts: list[str] = []
    for span in spans:
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts.extend(str(value) for value in span.attributes.values())
        for event in span.events:
            texts.append(event.name)
            texts.extend(str(value) for value in (event.attributes or {}).values())
    return texts


@pytest.mark.parametrize("error_handling", ["fail_fast", "continue"])
def test_a_sensitive_input_never_reaches_a_span(error_handling: str) -> None:
    secret = "s3cr3t-VALUE-42"
    document = workflow(
        {
            "id": "use",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": "${api_key}", "message": "bad: ${item}"},
            "batch": {
                "items": ["plain", "${api_key}"],
                "max_retries": 2,
                "error_handling": error_handling,
            },
        },
        inputs={"api_key": {"type": "string", "sensitive": True}},
    )
    outcome, spans = run_traced(document, {"api_key": secret})

    assert outcome.result.status == ("failed" if error_handling == "fail_fast" else "degraded")
    texts = everything_said(spans)
    assert not [text for text in texts if secret in text]
    # The secret was there to leak: the preview, the retry and the status all mention it, redacted.
    failed_item = by_layer(spans, conv.LAYER_BATCH_ITEM)[1]
    assert failed_item.attributes[conv.ATTR_BATCH_ITEM_PREVIEW] == REDACTED
    assert failed_item.status.description == f"bad: {REDACTED}"
    assert failed_item.events[0].attributes[conv.ATTR_RETRY_ERROR] == f"bad: {REDACTED}"


# -- names -----------------------------------------------------------------------------------------


def test_span_names_never_hold_an_item_index_or_value() -> None:
    values = [f"value-{n}" for n in range(20)]
    document = workflow(
        {
            "id": "fetch",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": "value-7"},
            "batch": {"items": values, "parallel": True, "error_handling": "continue"},
        }
    )
    _, spans = run_traced(document)

    assert len(by_layer(spans, conv.LAYER_BATCH_ITEM)) == 20
    names = {span.name for span in spans}
    assert names == {
        ROOT,
        "fetch instrumented",
        "fetch batch",
        "fetch batch.item",
        "fetch namespaced",
        "fetch template",
        "fetch node",
    }
    for name in names:
        assert not any(character.isdigit() for character in name), name


# -- failures --------------------------------------------------------------------------------------


def assert_error(span: ReadableSpan, contains: str = "") -> None:
    assert span.status.status_code is StatusCode.ERROR, span.name
    assert span.status.description, f"{span.name} has ERROR without a description"
    assert contains in span.status.description


def exception_events(span: ReadableSpan) -> list[Any]:
    return [event for event in span.events if event.name == "exception"]


def test_plain_node_failure_marks_node_template_namespaced_instrumented_and_root() -> None:
    document = workflow(
        {"id": "boom", "type": "echo", "params": {"fail": True, "message": "it broke"}}
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "failed"
    (node,) = by_layer(spans, conv.LAYER_NODE)
    for span in [node, *ancestors(node, spans)]:
        assert_error(span, "it broke")
    assert layers_of(ancestors(node, spans)) == [
        "template",
        "namespaced",
        "instrumented",
        "workflow",
    ]
    (event,) = exception_events(node)
    assert event.attributes["exception.type"] == "NodeFailure"
    assert event.attributes["exception.message"] == "it broke"


def test_template_failure_is_the_failing_span_and_no_node_span_starts() -> None:
    # ``first`` has no output ``missing``: validation cannot know that, the runtime finds out.
    document = workflow(
        {"id": "first", "type": "echo", "params": {"value": 1}},
        {"id": "needs", "type": "echo", "params": {"value": "${first.missing}"}},
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "failed"
    needs = [span for span in spans if span.attributes.get(conv.ATTR_NODE_ID) == "needs"]
    assert layers_of(needs) == ["template", "namespaced", "instrumented"]
    template = needs[0]
    assert_error(template)
    assert len(exception_events(template)) == 1
    for span in ancestors(template, spans):
        assert_error(span)
        assert not exception_events(span), (
            f"only the failing span records the exception: {span.name}"
        )


def test_fail_fast_marks_the_item_chain_batch_and_instrumented_error() -> None:
    document = workflow(
        {
            "id": "each",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": 2, "message": "two is bad"},
            "batch": {"items": [1, 2, 3]},
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "failed"
    # Item 2 never ran: fail_fast stops a sequential batch at the first failure.
    assert tree(spans) == [
        (ROOT, [("each instrumented", [("each batch", [item_chain("each")] * 2)])])
    ]
    ok_item, bad_item = by_layer(spans, conv.LAYER_BATCH_ITEM)
    assert bad_item.attributes[conv.ATTR_BATCH_INDEX] == 1
    (failing_node,) = [
        span for span in by_layer(spans, conv.LAYER_NODE) if bad_item in ancestors(span, spans)
    ]
    chain_up = [failing_node, *ancestors(failing_node, spans)]
    assert layers_of(chain_up) == [
        "node",
        "template",
        "namespaced",
        "batch.item",
        "batch",
        "instrumented",
        "workflow",
    ]
    for span in chain_up:
        assert_error(span, "two is bad")
    assert len(exception_events(failing_node)) == 1
    (batch,) = by_layer(spans, conv.LAYER_BATCH)
    assert batch.attributes[conv.ATTR_BATCH_ERROR_COUNT] == 1
    assert batch.attributes[conv.ATTR_BATCH_SUCCESS_COUNT] == 1
    # The item that succeeded keeps an unset status all the way down.
    ok_spans = [s for s in spans if ok_item in ancestors(s, spans) or s is ok_item]
    assert len(ok_spans) == 4
    assert {s.status.status_code for s in ok_spans} == {StatusCode.UNSET}


def test_continue_marks_only_the_failed_items_chain() -> None:
    document = workflow(
        {
            "id": "each",
            "type": "echo",
            "params": {"value": "${item}", "fail_if": 2, "message": "two is bad"},
            "batch": {"items": [1, 2, 3], "error_handling": "continue", "parallel": True},
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "degraded"
    assert tree(spans) == [
        (ROOT, [("each instrumented", [("each batch", [item_chain("each")] * 3)])])
    ]
    bad_item = by_layer(spans, conv.LAYER_BATCH_ITEM)[1]
    errored = {
        span.context.span_id for span in spans if span.status.status_code is StatusCode.ERROR
    }
    bad_chain = {bad_item.context.span_id} | {
        span.context.span_id for span in spans if bad_item in ancestors(span, spans)
    }
    assert errored == bad_chain
    assert len(bad_chain) == 4
    for layer in (conv.LAYER_BATCH, conv.LAYER_INSTRUMENTED, conv.LAYER_WORKFLOW):
        (span,) = by_layer(spans, layer)
        assert span.status.status_code is StatusCode.UNSET
    (root,) = by_layer(spans, conv.LAYER_WORKFLOW)
    assert root.attributes[conv.ATTR_FINAL_STATUS] == "degraded"


# -- retries ---------------------------------------------------------------------------------------


def test_each_retry_is_an_event_on_the_item_span() -> None:
    document = workflow(
        {
            "id": "flaky",
            "type": "echo",
            "params": {"value": "${item}", "fail_times": 2, "message": "not yet"},
            "batch": {"items": ["only"], "max_retries": 3},
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "success"
    (item,) = by_layer(spans, conv.LAYER_BATCH_ITEM)
    assert item.status.status_code is StatusCode.UNSET
    assert item.attributes[conv.ATTR_BATCH_ATTEMPTS] == 3
    retries = [event for event in item.events if event.name == conv.EVENT_RETRY]
    assert [event.attributes[conv.ATTR_RETRY_ATTEMPT] for event in retries] == [1, 2]
    assert [event.attributes[conv.ATTR_RETRY_ERROR] for event in retries] == [
        "not yet (attempt 1 of 2 set to fail)",
        "not yet (attempt 2 of 2 set to fail)",
    ]
    # Each attempt is its own Namespaced → TemplateAware → node chain under the item; the
    # failed attempts' chains are ERROR, the successful one is not.
    attempts = children_by_parent(spans)[item.context.span_id]
    assert [span.name for span in attempts] == ["flaky namespaced"] * 3
    assert [span.status.status_code for span in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    failed_nodes = [s for s in by_layer(spans, conv.LAYER_NODE) if exception_events(s)]
    assert len(failed_nodes) == 2


def test_an_item_that_exhausts_its_retries_is_error_with_one_event_per_retry() -> None:
    document = workflow(
        {
            "id": "flaky",
            "type": "echo",
            "params": {"value": "${item}", "fail_times": 5},
            "batch": {"items": ["only"], "max_retries": 2, "error_handling": "continue"},
        }
    )
    outcome, spans = run_traced(document)

    assert outcome.result.status == "failed"  # its only item failed
    (item,) = by_layer(spans, conv.LAYER_BATCH_ITEM)
    assert_error(item, "attempt 2 of 5")
    assert item.attributes[conv.ATTR_BATCH_ATTEMPTS] == 2
    retries = [event for event in item.events if event.name == conv.EVENT_RETRY]
    assert [event.attributes[conv.ATTR_RETRY_ATTEMPT] for event in retries] == [1]
    assert "attempt 1 of 5" in retries[0].attributes[conv.ATTR_RETRY_ERROR]
