"""Batch integration tests: compile and run whole workflows through ``run_workflow``.

Concurrency claims are measured inside the node (a counter under a lock), never assumed.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import NodeFailure, WorkflowNode
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import RunResult, run_workflow


class Gauge:
    """Counts items in flight and remembers the peak and the order items started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.started: list[Any] = []
        self.finished: list[Any] = []

    def enter(self, item: Any) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.started.append(item)

    def leave(self, item: Any) -> None:
        with self.lock:
            self.in_flight -= 1
            self.finished.append(item)


class GaugedNode(WorkflowNode):
    """Sleeps ``delay_ms`` while counted in flight; fails when ``fail`` is true."""

    type_name: ClassVar[str] = "gauged"
    gauge: ClassVar[Gauge] = Gauge()

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        gauge = type(self).gauge
        gauge.enter(params["value"])
        try:
            time.sleep(params.get("delay_ms", 0) / 1000)
            if params.get("fail"):
                raise NodeFailure(f"item {params['value']} failed on purpose")
            return {"value": params["value"]}
        finally:
            gauge.leave(params["value"])


class SlowObserver:
    """An observer that takes its time over each finished item, on the collecting thread."""

    def run_started(self, run: Any) -> None: ...

    def run_finished(self, run: Any, shared: Any) -> None: ...

    def node_started(self, execution: Any, shared: Any) -> None: ...

    def node_finished(self, execution: Any, shared: Any) -> None: ...

    def item_finished(self, node_id: str, outcome: Any, total: int) -> None:
        time.sleep(0.02)


@pytest.fixture
def gauge() -> Gauge:
    GaugedNode.gauge = Gauge()
    return GaugedNode.gauge


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("gauged", GaugedNode)
    return registry


def batch_workflow(
    params: dict[str, Any], batch: dict[str, Any], node_type: str = "echo", **extra: Any
) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "batch-test",
        "nodes": [{"id": "b", "type": node_type, "params": params, "batch": batch}],
        **extra,
    }


def run(
    workflow: dict[str, Any], inputs: dict[str, Any] | None = None, registry: Any = None
) -> RunResult:
    validate_workflow(workflow, registry=registry)
    return run_workflow(workflow, inputs or {}, registry=registry)


# --- falsy items ------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [True, False])
def test_falsy_items_work_like_any_other(parallel: bool) -> None:
    items = [0, "", False, None, [], {}, 1]
    workflow = batch_workflow(
        {"value": "${item}", "label": "<${item}>"},
        {"items": "${xs}", "parallel": parallel, "max_concurrent": 4},
        inputs={"xs": {"type": "array"}},
    )
    result = run(workflow, {"xs": items})
    assert result.status == "success"
    output = result.nodes["b"]
    assert [entry["value"] for entry in output["results"]] == items
    assert [entry["label"] for entry in output["results"]] == [
        "<0>",
        "<>",
        "<False>",  # as pflow renders them inside text
        "<>",
        "<[]>",
        "<{}>",
        "<1>",
    ]
    assert (output["count"], output["success_count"], output["error_count"]) == (7, 7, 0)


def test_literal_json_array_items_and_a_custom_alias() -> None:
    workflow = batch_workflow(
        {"value": "${row.name}", "n": "${row.n}"},
        {"items": [{"name": "a", "n": 0}, {"name": "b", "n": 2}], "as": "row"},
    )
    result = run(workflow)
    assert result.nodes["b"]["results"] == [
        {"value": "a", "n": 0, "item": {"name": "a", "n": 0}, "original_index": 0},
        {"value": "b", "n": 2, "item": {"name": "b", "n": 2}, "original_index": 1},
    ]
    assert "row" not in result.shared


def test_items_from_an_earlier_node_output() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {"id": "list", "type": "code", "params": {"code": "result = [3, 1, 2]"}},
            {
                "id": "b",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": "${list.result}", "parallel": True},
            },
        ],
        "outputs": {"values": "${b.results}"},
    }
    result = run(workflow)
    assert result.outputs["values"] == [
        {"value": v, "item": v, "original_index": i} for i, v in enumerate([3, 1, 2])
    ]


def test_empty_item_list_gives_empty_results_and_no_error() -> None:
    for parallel in (False, True):
        result = run(batch_workflow({"value": "${item}"}, {"items": [], "parallel": parallel}))
        assert result.status == "success"
        output = result.nodes["b"]
        assert output["results"] == []
        assert (output["count"], output["success_count"], output["error_count"]) == (0, 0, 0)
        assert output["errors"] == []
        assert output["batch_metadata"]["timing"] == {}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("text", "string"), ({"a": 1}, "object"), (5, "number"), (True, "boolean"), (None, "null")],
)
def test_items_that_are_not_a_list_fail_naming_node_and_type(value: Any, type_name: str) -> None:
    workflow = batch_workflow(
        {"value": "${item}"}, {"items": "${xs}"}, inputs={"xs": {"required": False}}
    )
    result = run(workflow, {"xs": value})
    assert result.status == "failed"
    assert result.record.failed_node == "b"
    assert (
        result.error
        == f"node 'b' failed: batch.items ${{xs}} must resolve to a list, got {type_name}"
    )


def test_unresolvable_items_template_fails_naming_node_and_template() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {"id": "src", "type": "echo", "params": {"rows": [1]}},
            {
                "id": "b",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": "${src.row}"},
            },
        ],
    }
    result = run(workflow)
    assert result.status == "failed"
    assert "node 'b'" in result.error
    assert "cannot resolve ${src.row}: 'row' not found (closest: rows)" in result.error


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True])
def test_retry_succeeds_on_the_second_attempt(parallel: bool) -> None:
    workflow = batch_workflow(
        {"value": "${item}", "fail_times": 1},
        {"items": ["a", "b", "c"], "max_retries": 2, "retry_wait": 0.005, "parallel": parallel},
    )
    started = time.perf_counter()
    result = run(workflow)
    assert result.status == "success"
    assert [entry["value"] for entry in result.nodes["b"]["results"]] == ["a", "b", "c"]
    assert result.nodes["b"]["error_count"] == 0
    if not parallel:
        assert time.perf_counter() - started >= 3 * 0.005  # one wait per item


def test_retries_run_out_and_the_last_error_is_kept() -> None:
    workflow = batch_workflow(
        {"value": "${item}", "fail_times": 3},
        {"items": ["a"], "max_retries": 2, "error_handling": "continue"},
    )
    result = run(workflow)
    assert result.status == "failed"  # no item succeeded (see the continue tests below)
    (error,) = result.nodes["b"]["errors"]
    assert error == {
        "index": 0,
        "item": "a",
        "error": "echo failed on demand (attempt 2 of 3 set to fail)",
    }


@pytest.mark.parametrize("parallel", [True, False])
def test_a_continue_batch_with_no_successful_item_fails_the_node_and_the_run(
    parallel: bool,
) -> None:
    """As pflow-cli 0.16: ``continue`` keeps going past failures, but a batch in which every
    item failed is a failed node (and run), never a success with an empty ``results``."""
    workflow = batch_workflow(
        {"value": "${item}", "fail_times": 1},
        {"items": ["x", "y"], "error_handling": "continue", "parallel": parallel},
    )
    result = run(workflow)
    assert result.status == "failed"
    assert result.record.failed_node == "b"
    assert result.error == (
        "node 'b' failed: all 2 items failed; item 0: "
        "echo failed on demand (attempt 1 of 1 set to fail)"
    )
    output = result.nodes["b"]
    assert (output["success_count"], output["error_count"], output["results"]) == (0, 2, [])


def test_a_continue_batch_with_one_successful_item_only_degrades_the_run() -> None:
    workflow = batch_workflow(
        {"value": "${item}", "fail_if": 1},
        {"items": [0, 1], "error_handling": "continue"},
    )
    result = run(workflow)
    assert result.status == "degraded"
    assert result.nodes["b"]["success_count"] == 1


def test_an_empty_continue_batch_succeeds() -> None:
    workflow = batch_workflow({"value": "${item}"}, {"items": [], "error_handling": "continue"})
    assert run(workflow).status == "success"


def test_without_max_retries_there_is_no_retry() -> None:
    result = run(batch_workflow({"value": "${item}", "fail_times": 1}, {"items": [1]}))
    assert result.status == "failed"
    assert "attempt 1 of 1 set to fail" in result.error


# --- fail_fast against continue ---------------------------------------------------------------


def failing_workflow(parallel: bool, error_handling: str, delay_ms: int = 0) -> dict[str, Any]:
    return batch_workflow(
        {"value": "${item}", "fail_if": 2, "delay_ms": delay_ms},
        {
            "items": [0, 1, 2, 3, 4, 5],
            "parallel": parallel,
            "max_concurrent": 2,
            "error_handling": error_handling,
        },
    )


def test_sequential_fail_fast_stops_at_the_first_failure(
    gauge: Gauge, registry: NodeRegistry
) -> None:
    workflow = batch_workflow(
        {"value": "${item}", "fail": "${item.fail}"},
        {"items": [{"fail": False}, {"fail": True}, {"fail": False}], "as": "item"},
        node_type="gauged",
    )
    result = run(workflow, registry=registry)
    assert result.status == "failed"
    assert result.record.failed_node == "b"
    assert result.error.startswith("node 'b' failed: item 1 failed: item {'fail': True} failed")
    assert len(gauge.started) == 2  # the third item never ran
    output = result.nodes["b"]
    assert [entry["original_index"] for entry in output["results"]] == [0]
    assert (output["count"], output["success_count"], output["error_count"]) == (2, 1, 1)


@pytest.mark.parametrize("parallel", [False, True])
def test_continue_records_the_error_and_goes_on(parallel: bool) -> None:
    result = run(failing_workflow(parallel, "continue"))
    assert result.status == "degraded"
    assert result.error is None
    output = result.nodes["b"]
    assert [entry["value"] for entry in output["results"]] == [0, 1, 3, 4, 5]
    assert [entry["original_index"] for entry in output["results"]] == [0, 1, 3, 4, 5]
    assert output["errors"] == [
        {"index": 2, "item": 2, "error": "echo failed on demand for value 2"}
    ]
    assert (output["count"], output["success_count"], output["error_count"]) == (6, 5, 1)


@pytest.mark.parametrize("parallel", [False, True])
def test_fail_fast_fails_the_node_and_the_run(parallel: bool) -> None:
    result = run(failing_workflow(parallel, "fail_fast"))
    assert result.status == "failed"
    assert result.error == "node 'b' failed: item 2 failed: echo failed on demand for value 2"
    assert result.nodes["b"]["error_count"] == 1


def test_continue_lets_later_nodes_run_and_fail_fast_does_not() -> None:
    for error_handling, status, later_ran in (
        ("continue", "degraded", True),
        ("fail_fast", "failed", False),
    ):
        workflow = failing_workflow(False, error_handling)
        workflow["nodes"].append(
            {"id": "after", "type": "echo", "params": {"errors": "${b.error_count}"}}
        )
        result = run(workflow)
        assert result.status == status
        assert ("after" in result.nodes) is later_ran
        if later_ran:
            assert result.nodes["after"] == {"errors": 1}


def test_parallel_fail_fast_starts_no_new_item_after_the_failure(
    gauge: Gauge, registry: NodeRegistry
) -> None:
    """Item 0 fails at once while item 1 is slow: no other item may start after that.

    A slow observer (a terminal redrawing, say) holds up the main thread that collects
    results, so the worker that ran item 0 must itself stop the batch before taking the next
    item.
    """
    items = [{"n": 0, "fail": True, "delay_ms": 0}]
    items += [{"n": n, "fail": False, "delay_ms": 40} for n in range(1, 10)]
    workflow = batch_workflow(
        {"value": "${item.n}", "fail": "${item.fail}", "delay_ms": "${item.delay_ms}"},
        {"items": items, "parallel": True, "max_concurrent": 2},
        node_type="gauged",
    )
    validate_workflow(workflow, registry=registry)
    result = run_workflow(workflow, {}, registry=registry, run=RunContext(observer=SlowObserver()))
    assert result.status == "failed"
    assert result.error.startswith("node 'b' failed: item 0 failed")
    # Only items already in flight when item 0 failed may have started: at most item 1.
    assert set(gauge.started) <= {0, 1}
    assert gauge.in_flight == 0  # in-flight items finished before the node returned
    output = result.nodes["b"]
    assert {entry["original_index"] for entry in output["results"]} <= {1}
    assert output["error_count"] == 1
    assert output["success_count"] == len(gauge.started) - 1


def test_parallel_continue_runs_every_item(gauge: Gauge, registry: NodeRegistry) -> None:
    items = [{"n": n, "fail": n % 3 == 0} for n in range(9)]
    workflow = batch_workflow(
        {"value": "${item.n}", "fail": "${item.fail}", "delay_ms": 2},
        {"items": items, "parallel": True, "max_concurrent": 3, "error_handling": "continue"},
        node_type="gauged",
    )
    result = run(workflow, registry=registry)
    assert result.status == "degraded"
    assert sorted(gauge.started) == list(range(9))
    assert [error["index"] for error in result.nodes["b"]["errors"]] == [0, 3, 6]


# --- order and concurrency --------------------------------------------------------------------


def test_results_keep_input_order_when_later_items_finish_first(
    gauge: Gauge, registry: NodeRegistry
) -> None:
    delays = [200, 150, 100, 50, 0]  # gaps wide enough for a loaded machine's thread starts
    workflow = batch_workflow(
        {"value": "${item.n}", "delay_ms": "${item.delay}"},
        {
            "items": [{"n": n, "delay": d} for n, d in enumerate(delays)],
            "parallel": True,
            "max_concurrent": 5,
        },
        node_type="gauged",
    )
    result = run(workflow, registry=registry)
    assert result.status == "success"
    # The last item really finished first and the first item last.
    assert (gauge.finished[0], gauge.finished[-1]) == (4, 0)
    assert sorted(gauge.finished) == [0, 1, 2, 3, 4]
    assert [entry["value"] for entry in result.nodes["b"]["results"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("max_concurrent", [1, 3, 5])
def test_max_concurrent_is_never_exceeded(
    gauge: Gauge, registry: NodeRegistry, max_concurrent: int
) -> None:
    workflow = batch_workflow(
        {"value": "${item}", "delay_ms": 3},
        {"items": list(range(20)), "parallel": True, "max_concurrent": max_concurrent},
        node_type="gauged",
    )
    result = run(workflow, registry=registry)
    assert result.status == "success"
    assert sorted(gauge.started) == list(range(20))
    assert gauge.peak <= max_concurrent
    if max_concurrent > 1:
        assert gauge.peak > 1  # and the items really did overlap
    metadata = result.nodes["b"]["batch_metadata"]
    assert metadata["max_concurrent"] == max_concurrent
    assert metadata["execution_mode"] == "parallel"


def test_sequential_runs_one_item_at_a_time(gauge: Gauge, registry: NodeRegistry) -> None:
    workflow = batch_workflow(
        {"value": "${item}", "delay_ms": 1}, {"items": list(range(5))}, node_type="gauged"
    )
    result = run(workflow, registry=registry)
    assert gauge.peak == 1
    assert gauge.started == [0, 1, 2, 3, 4]
    metadata = result.nodes["b"]["batch_metadata"]
    assert metadata["max_concurrent"] is None
    assert metadata["execution_mode"] == "sequential"


# --- output shape and surroundings ------------------------------------------------------------


def test_batch_output_has_exactly_the_documented_names() -> None:
    result = run(
        batch_workflow(
            {"value": "${item}", "delay_ms": 1},
            {"items": [1, 2], "parallel": True, "max_concurrent": 2},
        )
    )
    output = result.nodes["b"]
    assert set(output) == {
        "results",
        "count",
        "success_count",
        "error_count",
        "errors",
        "batch_metadata",
    }
    metadata = output["batch_metadata"]
    assert set(metadata) == {
        "parallel",
        "max_concurrent",
        "max_retries",
        "retry_wait",
        "execution_mode",
        "timing",
    }
    assert set(metadata["timing"]) == {
        "total_items_ms",
        "avg_item_ms",
        "min_item_ms",
        "max_item_ms",
    }
    assert metadata["timing"]["min_item_ms"] >= 1.0


def test_each_item_gets_a_fresh_namespace_and_sees_earlier_nodes() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "inputs": {"prefix": {"type": "string", "default": "p"}},
        "nodes": [
            {"id": "cfg", "type": "echo", "params": {"sep": "-"}},
            {
                "id": "b",
                "type": "code",
                "params": {
                    "code": "result = prefix + sep + str(item)",
                    "inputs": {"prefix": "${prefix}", "sep": "${cfg.sep}", "item": "${item}"},
                },
                "batch": {"items": [1, 2], "parallel": True},
            },
        ],
    }
    result = run(workflow)
    assert [entry["result"] for entry in result.nodes["b"]["results"]] == ["p-1", "p-2"]
    assert result.nodes["b"]["results"][0] == {
        "result": "p-1",
        "stdout": "",
        "stderr": "",
        "item": 1,
        "original_index": 0,
    }
    assert result.shared["cfg"] == {"sep": "-"}


def test_missing_required_input_is_an_error_before_anything_runs(
    gauge: Gauge, registry: NodeRegistry
) -> None:
    workflow = batch_workflow(
        {"value": "${item}"},
        {"items": "${xs}"},
        node_type="gauged",
        inputs={"xs": {"type": "array", "required": True}},
    )
    with pytest.raises(UsageError, match="missing required input 'xs'"):
        run_workflow(workflow, {}, registry=registry)
    assert gauge.started == []
