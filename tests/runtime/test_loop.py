"""A node's ``loop`` block: its passes, their spans and trace records, and its bad shapes.

What pflow-cli 0.16 does, checked with ``pflow --no-cache --output-format json`` on the
``count-up`` example of ``pflow guide loop`` (a ``code`` node carrying ``total`` until
``result.done``): three passes, ``loop_stopped: "condition"``, the last pass's output left in
the store; with ``max_iterations`` reached first, ``loop_stopped: "max_iterations"`` and a
successful run; ``${__iteration__}`` unreadable after the loop. The compat cases
``40-loop-count-up`` to ``44-loop-failing-pass`` record the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import InMemoryObserver, NodeExecution
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import RunResult, run_workflow

COUNT_UP = (
    "total: int\nstep: int\n"
    'result: dict = {"total": total + step, "done": total + step >= 3, "left": 3 - total - step}'
)


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "name": "loop-test", "nodes": list(nodes), **extra}


def count_up(loop: dict[str, Any], step: int = 1) -> dict[str, Any]:
    return {
        "id": "count",
        "type": "code",
        "params": {"inputs": {"total": 0, "step": step}, "code": COUNT_UP},
        "loop": loop,
    }


def traced(wf: dict[str, Any]) -> tuple[RunResult, InMemorySpanExporter, list[NodeExecution]]:
    validate_workflow(wf)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = InMemoryObserver()
    run = RunContext(tracer=provider.get_tracer("test"), observer=observer)
    result = run_workflow(wf, {}, run=run)
    return result, exporter, observer.executions


def spans_of(exporter: InMemorySpanExporter, layer: str, node_id: str = "count") -> list[Any]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.attributes.get(conv.ATTR_LAYER) == layer
        and span.attributes.get(conv.ATTR_NODE_ID) == node_id
    ]


CARRY = {"carry": {"total": "${count.result.total}"}}


def test_until_carries_state_and_stops_on_the_condition() -> None:
    loop = {**CARRY, "until": "${count.result.done}", "max_iterations": 10}
    result, exporter, (execution,) = traced(workflow(count_up(loop)))
    assert result.status == "success"
    assert result.nodes["count"]["result"] == {"total": 3, "done": True, "left": 0}
    assert result.nodes["count"]["loop_stopped"] == "condition"
    assert "__iteration__" not in result.nodes
    assert execution.loop_stopped == "condition"
    assert [(one.number, one.status) for one in execution.loop_iterations or []] == [
        (1, "success"),
        (2, "success"),
        (3, "success"),
    ]
    (instrumented,) = spans_of(exporter, conv.LAYER_INSTRUMENTED)
    assert instrumented.attributes[conv.ATTR_LOOP_ITERATIONS] == 3
    assert instrumented.attributes[conv.ATTR_LOOP_STOPPED] == "condition"
    passes = spans_of(exporter, conv.LAYER_LOOP_ITERATION)
    assert [span.attributes[conv.ATTR_LOOP_ITERATION] for span in passes] == [1, 2, 3]
    for span, one in zip(passes, execution.loop_iterations or [], strict=True):
        assert span.parent.span_id == instrumented.context.span_id
        assert span.context.span_id == one.span_id
        assert span.start_time == one.start_ns and span.end_time == one.end_ns
    # Each pass holds its own namespace → template → node spans.
    namespaced = spans_of(exporter, conv.LAYER_NAMESPACED)
    assert sorted(span.parent.span_id for span in namespaced) == sorted(
        span.context.span_id for span in passes
    )


def test_while_reads_a_number_and_the_cap_ends_the_loop_without_failing() -> None:
    loop = {**CARRY, "while": "${count.result.left}", "max_iterations": 2}
    result, exporter, (execution,) = traced(workflow(count_up(loop)))
    assert result.status == "success"
    assert result.nodes["count"]["result"]["total"] == 2
    assert result.nodes["count"]["loop_stopped"] == "max_iterations"
    (instrumented,) = spans_of(exporter, conv.LAYER_INSTRUMENTED)
    assert instrumented.attributes[conv.ATTR_LOOP_STOPPED] == "max_iterations"
    assert len(execution.loop_iterations or []) == 2


def test_without_carry_every_pass_gets_the_seed_and_the_cap_may_be_a_template() -> None:
    loop = {"until": "${count.result.done}", "max_iterations": "${limit}"}
    wf = workflow(count_up(loop), inputs={"limit": {"type": "number", "default": 4}})
    result, _, (execution,) = traced(wf)
    assert result.nodes["count"]["result"]["total"] == 1  # never carried: 0 + 1 each pass
    assert result.nodes["count"]["loop_stopped"] == "max_iterations"
    assert len(execution.loop_iterations or []) == 4


def test_a_condition_that_does_not_resolve_is_falsy() -> None:
    once = count_up({"while": "${count.result.missing}"})
    result, _, _ = traced(workflow(once))
    assert result.nodes["count"]["loop_stopped"] == "condition"


def test_iteration_is_readable_inside_the_loop_and_gone_after() -> None:
    body = {
        "id": "count",
        "type": "code",
        "params": {
            "inputs": {"seen": [], "n": "${__iteration__}"},
            "code": "seen: list\nn: int\nresult: dict = {'seen': seen + [n], 'more': n < 3}",
        },
        "loop": {"carry": {"seen": "${count.result.seen}"}, "while": "${count.result.more}"},
    }
    after = {"id": "after", "type": "echo", "params": {"value": "${__iteration__ ?? 'gone'}"}}
    result, _, _ = traced(workflow(body, after))
    assert result.nodes["count"]["result"]["seen"] == [1, 2, 3]
    assert result.nodes["after"]["value"] == "gone"


def test_a_carried_string_holding_a_template_stays_text() -> None:
    body = {
        "id": "count",
        "type": "code",
        "params": {
            "inputs": {"text": "$${x}"},
            "code": "text: str\nresult: dict = {'text': text + '!', 'long': len(text) > 6}",
        },
        "loop": {"carry": {"text": "${count.result.text}"}, "until": "${count.result.long}"},
    }
    result, _, _ = traced(workflow(body))
    assert result.nodes["count"]["result"]["text"] == "${x}!!!!"


def test_a_failing_pass_fails_the_node_and_is_recorded() -> None:
    body = {
        "id": "count",
        "type": "code",
        "params": {
            "inputs": {"n": 0},
            "code": "n: int\nif n == 2:\n    raise ValueError('two')\nresult: dict = {'n': n + 1}",
        },
        "loop": {"carry": {"n": "${count.result.n}"}, "while": "${count.result.n}"},
    }
    result, exporter, (execution,) = traced(workflow(body))
    assert result.status == "failed"
    assert execution.loop_stopped == "failed"
    statuses = [(one.status, one.error) for one in execution.loop_iterations or []]
    assert statuses[:2] == [("success", None), ("success", None)]
    assert statuses[2][0] == "failed" and "two" in str(statuses[2][1])
    failed = spans_of(exporter, conv.LAYER_LOOP_ITERATION)[-1]
    assert failed.status.status_code.name == "ERROR"


def test_a_string_condition_fails_the_node_with_one_line() -> None:
    body = {
        "id": "count",
        "type": "code",
        "params": {"code": "result: str = 'false'"},
        "loop": {"while": "${count.result}"},
    }
    result, _, (execution,) = traced(workflow(body))
    assert result.status == "failed"
    assert "resolved to a string ('false')" in str(execution.error)
    assert "\n" not in str(execution.error)


def test_the_trace_file_lists_every_pass(tmp_path: Path) -> None:
    from pflow_trace import api
    from pflow_trace.observe.export_settings import ExportSettings
    from pflow_trace.tracefile.schema import trace_problems

    trace_path = tmp_path / "trace.json"
    options = api.TraceOptions(
        export=ExportSettings("none", "http/protobuf", None, "loop"),
        trace_file=str(trace_path),
        checkpoint=False,
    )
    loop = {**CARRY, "until": "${count.result.done}"}
    outcome = api.run(workflow(count_up(loop)), {}, options)
    assert outcome.status == "success"
    document = json.loads(trace_path.read_text())
    (event,) = document["nodes"]
    assert event["loop"]["iterations"] == 3 and event["loop"]["stopped"] == "condition"
    assert [one["iteration"] for one in event["loop"]["passes"]] == [1, 2, 3]
    assert all(
        one["status"] == "success" and one["error"] is None for one in event["loop"]["passes"]
    )
    assert trace_problems(document) == []


@pytest.mark.parametrize(
    ("loop", "extra", "message"),
    [
        ({"until": "${count.result.done}", "while": "${count.result.done}"}, {}, "exactly one"),
        ({"max_iterations": 3}, {}, "exactly one of while or until"),
        ({"whlie": "${count.result.done}"}, {}, "unknown key 'whlie'"),
        ({"until": "${count.result.done} ${count.result.done}"}, {}, "not a single"),
        ({"until": "${count.result.done}", "max_iterations": 0}, {}, "loop.max_iterations"),
        ({"until": "done"}, {}, "loop.until"),
        (
            {"until": "${count.result.done}", "carry": {"other": "${count.result.total}"}},
            {},
            "input 'other' is carried but not seeded",
        ),
        (
            {"until": "${count.result.done}", "carry": {"total": "${limit}"}},
            {},
            "must read this loop node's own output",
        ),
        ({"until": "${nowhere.done}"}, {}, "names unknown 'nowhere'"),
        ({"until": "${count.result.done}", "max_iterations": 150}, {}, "exceeds the visit cap"),
        ({"until": "${count.result.done}"}, {"batch": {"items": [1]}}, "loop and batch"),
    ],
)
def test_bad_loop_shapes_are_refused_before_running(
    loop: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    wf = workflow({**count_up(loop), **extra}, inputs={"limit": {"type": "number"}})
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(wf)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_retry_beside_loop_applies_to_each_pass() -> None:
    body = {
        "id": "count",
        "type": "echo",
        "params": {"value": 0, "fail_times": 1},
        "retry": {"max": 2},
        "loop": {"while": "${count.value}"},
    }
    result, exporter, (execution,) = traced(workflow(body))
    assert result.status == "success"
    (one_pass,) = spans_of(exporter, conv.LAYER_LOOP_ITERATION)
    events = [event for event in one_pass.events if event.name == conv.EVENT_NODE_RETRY]
    assert [event.attributes[conv.ATTR_RETRY_ATTEMPT] for event in events] == [1]
    assert execution.attempts == 2


def test_an_llm_body_is_one_call_per_pass_and_the_node_sums_them(tmp_path: Path) -> None:
    from pflow_trace.tracefile.schema import trace_problems

    body = {
        "id": "ask",
        "type": "llm",
        "params": {"model": "echo", "prompt": "pass ${__iteration__}"},
        "loop": {"while": "${ask.llm_usage.input_tokens}", "max_iterations": 3},
    }
    result, exporter, (execution,) = traced(workflow(body))
    assert result.status == "success"
    passes = execution.loop_iterations or []
    assert [one.llm_usage is not None for one in passes] == [True, True, True]
    assert execution.llm_usage is None  # the node made no call of its own
    spans = spans_of(exporter, conv.LAYER_LOOP_ITERATION, "ask")
    assert all(conv.GEN_AI_USAGE_INPUT_TOKENS in span.attributes for span in spans)
    (instrumented,) = spans_of(exporter, conv.LAYER_INSTRUMENTED, "ask")
    assert conv.GEN_AI_USAGE_INPUT_TOKENS not in instrumented.attributes

    from pflow_trace import api
    from pflow_trace.observe.export_settings import ExportSettings

    trace_path = tmp_path / "trace.json"
    options = api.TraceOptions(
        export=ExportSettings("none", "http/protobuf", None, "loop"),
        trace_file=str(trace_path),
        checkpoint=False,
    )
    api.run(workflow(body), {}, options)
    document = json.loads(trace_path.read_text())
    (node,) = document["nodes"]
    assert node["llm_usage"]["calls"] == 3
    assert [one["llm_usage"]["model"] for one in node["loop"]["passes"]] == ["echo"] * 3
    assert trace_problems(document) == []
    # show and the report read the passes' calls back: three calls, not the last one alone.
    from pflow_trace.report.llm_stats import summarize_llm
    from pflow_trace.tracefile.readers import read_trace

    summary = summarize_llm(read_trace(trace_path), top=5)
    assert summary is not None and summary.totals.calls == 3
