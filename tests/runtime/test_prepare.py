"""Loading a model is not an item's time: a batch prepares its node before its clock starts.

The first lookup of an ``llm`` model loads the library's plugins, which takes seconds. Done
inside each lane's first item, it made those items look slow and ``show`` report parallelism
for lanes that were only waiting on an import. Here the lookup is made deliberately slow and
counted: it happens once, before the batch span, and no item carries it.
"""

from __future__ import annotations

import time
from typing import Any

import llm
import pytest

from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes import llm_calls
from pflow_trace.observe.facts import InMemoryObserver
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import run_workflow

LOAD_S = 0.4


@pytest.fixture
def slow_model_lookup(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``llm.get_model`` takes LOAD_S seconds, as a first plugin load does; returns the times
    each lookup finished."""
    finished: list[float] = []
    real_get_model = llm.get_model

    def slow_get_model(*args: Any, **kwargs: Any) -> Any:
        time.sleep(LOAD_S)
        finished.append(time.time())
        return real_get_model(*args, **kwargs)

    llm_calls.models.clear()
    monkeypatch.setattr(llm, "get_model", slow_get_model)
    yield finished
    llm_calls.models.clear()


@pytest.mark.parametrize("model", ["echo", None])
def test_the_model_loads_once_before_the_batch_clock_and_in_no_item(
    slow_model_lookup: list[float], model: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if model is None:
        monkeypatch.setattr(llm, "get_default_model", lambda: "echo")
    params: dict[str, Any] = {"prompt": "say ${item}"}
    if model is not None:
        params["model"] = model
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "prepare",
            "nodes": [
                {
                    "id": "ask",
                    "type": "llm",
                    "params": params,
                    "batch": {"items": ["a", "b", "c", "d"], "parallel": True, "max_concurrent": 4},
                }
            ],
        }
    )
    facts = InMemoryObserver()
    result = run_workflow(workflow, run=RunContext(observer=facts))
    assert result.status == "success", result.error
    assert len(slow_model_lookup) == 1  # once per process, not once per lane
    (execution,) = facts.executions
    items = execution.batch_items
    assert len(items) == 4
    assert all(item.duration_ms < LOAD_S * 1000 / 2 for item in items), [
        item.duration_ms for item in items
    ]
    loaded_ns = int(slow_model_lookup[0] * 1e9)
    assert min(item.start_ns for item in items) >= loaded_ns


def test_a_model_named_by_a_template_is_still_resolved_per_item(
    slow_model_lookup: list[float],
) -> None:
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "prepare",
            "inputs": {"model": {"type": "string", "required": True}},
            "nodes": [
                {
                    "id": "ask",
                    "type": "llm",
                    "params": {"prompt": "say ${item}", "model": "${model}"},
                    "batch": {"items": ["a", "b"]},
                }
            ],
        }
    )
    result = run_workflow(workflow, {"model": "echo"})
    assert result.status == "success", result.error
    assert len(slow_model_lookup) == 1  # by the first item; plugins were loaded before
