"""``batch.executor`` and what cannot go to another process: refused at validate time."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from pflow_trace import api
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.executor_choice import batch_executor
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import WorkflowNode
from pflow_trace.nodes.registry import NodeRegistry


class PinnedNode(WorkflowNode):
    """Importable by name, but declares that it must stay in the run's process."""

    type_name: ClassVar[str] = "pinned"
    ships_to_workers: ClassVar[bool] = False


class PortableNode(WorkflowNode):
    type_name: ClassVar[str] = "portable"


def workflow(node_type: str = "echo", params: Any = None, **batch: Any) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "nodes": [
            {
                "id": "n",
                "type": node_type,
                "params": params if params is not None else {"value": "${item}"},
                "batch": {"items": [1, 2], **batch},
            }
        ],
    }


def problems(document: dict[str, Any], registry: NodeRegistry | None = None) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(document, registry=registry)
    return caught.value.problems


def test_every_executor_name_is_accepted_and_others_are_not() -> None:
    for name in ("threads", "processes", "dask"):
        validate_workflow(workflow(executor=name))
    assert problems(workflow(executor="gpu")) == [
        "nodes[0].batch.executor: 'gpu' is not one of ['threads', 'processes', 'dask']"
    ]


def test_a_batch_runs_on_its_own_executor_else_the_runs_for_parallel_ones() -> None:
    assert batch_executor({"executor": "processes"}, "dask") == "processes"
    assert batch_executor({"parallel": True}, "dask") == "dask"
    assert batch_executor({"parallel": False}, "dask") == "threads"
    assert batch_executor({}) == "threads"


def test_a_class_defined_in_a_function_is_refused_on_processes() -> None:
    class LocalNode(WorkflowNode):
        type_name: ClassVar[str] = "local"

    registry = NodeRegistry()
    registry.register("local", LocalNode)
    validate_workflow(workflow("local", executor="threads"), registry=registry)
    (problem,) = problems(workflow("local", executor="processes"), registry)
    assert problem.startswith("nodes[0].batch.executor: processes: node type 'local' is defined")
    assert "inside a function" in problem and "a worker cannot import it" in problem


def test_a_type_that_must_stay_in_the_run_is_refused_on_dask() -> None:
    registry = NodeRegistry()
    registry.register("pinned", PinnedNode)
    registry.register("portable", PortableNode)
    validate_workflow(workflow("portable", executor="dask"), registry=registry)
    assert problems(workflow("pinned", executor="dask"), registry) == [
        "nodes[0].batch.executor: dask: node type 'pinned' must run in the run's own process "
        "(ships_to_workers = False)"
    ]


def test_params_that_do_not_pickle_are_refused() -> None:
    document = workflow(params={"value": "${item}", "lock": threading.Lock()}, executor="dask")
    (problem,) = problems(document)
    assert problem.startswith(
        "nodes[0].batch.executor: dask: node type 'echo' has params that cannot be sent"
    )


def test_run_executor_checks_parallel_batches_before_anything_runs(tmp_path: Any) -> None:
    class LocalNode(WorkflowNode):
        type_name: ClassVar[str] = "local"

    registry = NodeRegistry()
    registry.register("local", LocalNode)
    document = validate_workflow(workflow("local", parallel=True), registry=registry)
    options = api.TraceOptions(trace_dir=str(tmp_path), executor="processes")
    with pytest.raises(WorkflowValidationError) as caught:
        api.run(document, {}, options, registry=registry)
    (problem,) = caught.value.problems
    assert problem.startswith("nodes[0].batch: processes (the run's executor): node type 'local'")
    assert not list(tmp_path.iterdir())  # refused before the run started: no trace
