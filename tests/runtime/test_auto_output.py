"""A workflow that declares no outputs has the one value pflow-cli 0.16 shows for it."""

from __future__ import annotations

from typing import Any

from pflow_trace.runtime.auto_output import auto_output
from pflow_trace.runtime.workflow_run import run_workflow


def test_the_preferred_keys_are_looked_for_in_order_at_the_top_then_in_namespaces() -> None:
    shared: dict[str, Any] = {
        "text": "an input",
        "a": {"stdout": "first", "response": "  "},
        "b": {"stdout": "last", "result": None},
    }
    # ``text`` comes before ``stdout``; a blank ``response`` and a null ``result`` hold nothing.
    assert auto_output(shared) == {"text": "an input"}
    del shared["text"]
    assert auto_output(shared) == {"stdout": "last"}  # the last node that wrote one


def test_without_a_preferred_key_the_last_entry_holding_a_value_is_shown() -> None:
    shared = {"path": "in.txt", "w": {"written": "ok"}, "__internal__": {"x": 1}, "_p": 2}
    assert auto_output(shared) == {"w": {"written": "ok"}}
    assert auto_output({"empty": ""}) == {}


def test_a_run_without_declared_outputs_outputs_that_value() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {"id": "one", "type": "shell", "params": {"command": "echo first"}},
            {"id": "two", "type": "shell", "params": {"command": "echo second"}},
        ],
        "edges": [{"from": "one", "to": "two"}],
    }
    result = run_workflow(workflow)
    assert result.status == "success"
    assert result.outputs == {"stdout": "second"}
