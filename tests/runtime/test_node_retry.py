"""A node's ``retry`` block: its attempts, their span events and trace records, and what is
not retried.

What pflow-cli 0.16 does, checked with ``pflow --no-cache --output-format json r.pflow.md``
(a ``code`` node raising on its first two attempts with ``retry: {max: 3, wait: 0.1}``, then a
``shell`` node ``exit 1`` with ``retry: {max: 2}``): the code node succeeds on attempt 3, a
clean success; the shell command runs once (a non-zero exit is a result, not retried) and the
run fails. The compat case ``26-node-retry`` records the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace.engine.retry import RetryPolicy
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.pflow_ir import adapt_pflow_ir
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import InMemoryObserver, NodeExecution
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.node_retry import retry_policy
from pflow_trace.runtime.workflow_run import RunResult, run_workflow


def workflow(node: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "name": "retry-test", "nodes": [node, *more]}


def traced(wf: dict[str, Any]) -> tuple[RunResult, InMemorySpanExporter, NodeExecution]:
    validate_workflow(wf)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = InMemoryObserver()
    run = RunContext(tracer=provider.get_tracer("test"), observer=observer)
    result = run_workflow(wf, {}, run=run)
    (execution, *_) = [fact for kind, fact in observer.facts if kind == "node_finished"]
    return result, exporter, execution


def instrumented_span(exporter: InMemorySpanExporter, node_id: str) -> Any:
    (span,) = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes.get(conv.ATTR_LAYER) == conv.LAYER_INSTRUMENTED
        and s.attributes.get(conv.ATTR_NODE_ID) == node_id
    ]
    return span


def flaky(fail_times: int, retry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "flaky",
        "type": "echo",
        "params": {"value": "ok", "fail_times": fail_times},
        "retry": retry,
    }


def test_a_node_that_succeeds_on_a_later_attempt_is_a_clean_success() -> None:
    result, exporter, execution = traced(workflow(flaky(2, {"max": 3})))
    assert result.status == "success"
    assert result.nodes["flaky"]["value"] == "ok"
    assert execution.success and execution.attempts == 3
    assert execution.retries == [
        {"attempt": 1, "error": "echo failed on demand (attempt 1 of 2 set to fail)"},
        {"attempt": 2, "error": "echo failed on demand (attempt 2 of 2 set to fail)"},
    ]
    span = instrumented_span(exporter, "flaky")
    assert span.attributes[conv.ATTR_NODE_ATTEMPTS] == 3
    events = [e for e in span.events if e.name == conv.EVENT_NODE_RETRY]
    assert [e.attributes[conv.ATTR_RETRY_ATTEMPT] for e in events] == [1, 2]
    assert "attempt 1 of 2" in str(events[0].attributes[conv.ATTR_RETRY_ERROR])


def test_attempts_that_run_out_fail_the_node_with_the_last_error() -> None:
    result, exporter, execution = traced(workflow(flaky(5, {"max": 2})))
    assert result.status == "failed"
    assert execution.attempts == 2 and not execution.success
    assert "attempt 2 of 5" in (execution.error or "")
    assert len(execution.retries) == 1
    span = instrumented_span(exporter, "flaky")
    assert len([e for e in span.events if e.name == conv.EVENT_NODE_RETRY]) == 1


def test_a_nonzero_exit_is_a_result_and_is_not_retried(tmp_path: Any) -> None:
    marker = tmp_path / "runs"
    shell = {
        "id": "sh",
        "type": "shell",
        "params": {"command": f"echo x >> {marker}; exit 1"},
        "retry": {"max": 3},
    }
    result, _, execution = traced(workflow(shell))
    assert result.status == "failed"
    assert marker.read_text() == "x\n"
    assert execution.attempts == 1 and execution.retries == []


def test_a_command_that_times_out_is_retried(tmp_path: Any) -> None:
    """A timeout is a call that did not complete: worth another attempt, as in pflow."""
    marker = tmp_path / "runs"
    command = f'echo x >> {marker}; [ "$(wc -l < {marker})" -ge 2 ] || sleep 5'
    shell = {
        "id": "sh",
        "type": "shell",
        "params": {"command": command, "timeout": 0.5},
        "retry": {"max": 2},
    }
    result, _, execution = traced(workflow(shell))
    assert result.status == "success"
    assert execution.attempts == 2


def test_without_a_retry_block_a_node_makes_one_attempt() -> None:
    result, _, execution = traced(workflow({**flaky(1, {}), "retry": {}}))
    assert result.status == "failed" and execution.attempts == 1
    plain = {key: value for key, value in flaky(1, {}).items() if key != "retry"}
    _, exporter, execution = traced(workflow(plain))
    assert execution.attempts == 0
    assert conv.ATTR_NODE_ATTEMPTS not in instrumented_span(exporter, "flaky").attributes


def test_each_attempt_gets_a_fresh_namespace() -> None:
    """A failed attempt's partial outputs never leak into the attempt that succeeds."""
    result, _, _ = traced(workflow(flaky(1, {"max": 2})))
    assert result.nodes["flaky"] == {"value": "ok"}


def test_the_policy_follows_pflow_fields_and_caps_exponential_waits() -> None:
    assert retry_policy({}) == RetryPolicy(max_attempts=1, max_wait_s=60.0)
    exponential = retry_policy({"max": 10, "wait": 1, "backoff": "exponential"})
    assert [exponential.pause_s(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert exponential.pause_s(8) == 60.0
    assert exponential.pause_s(10) is None
    assert retry_policy({"max": 3, "wait": 2}).pause_s(2) == 2.0


@pytest.mark.parametrize(
    ("retry", "words"),
    [
        ({"max": 0}, "max"),
        ({"max": 11}, "max"),
        ({"wait": -1}, "wait"),
        ({"backoff": "linear"}, "backoff"),
        ({"tries": 2}, "tries"),
    ],
)
def test_a_bad_retry_block_is_a_validation_problem(retry: dict[str, Any], words: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(workflow(flaky(0, retry)))
    assert words in str(info.value)


def test_retry_beside_batch_is_refused_not_ignored() -> None:
    node = {**flaky(0, {"max": 2}), "batch": {"items": [1]}}
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(workflow(node))
    assert "retry on a batch node is not supported" in str(info.value)


def test_pflow_ir_keeps_the_retry_block() -> None:
    adapted, problems = adapt_pflow_ir(workflow(flaky(0, {"max": 2})))
    assert problems == [] and adapted["nodes"][0]["retry"] == {"max": 2}
