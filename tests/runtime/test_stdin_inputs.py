"""An input with ``stdin: true`` takes piped text, as pflow-cli 0.16 does.

pflow's behaviour, checked with ``echo ... | pflow --no-cache --output-format json s.pflow.md``
(one input ``data`` with ``stdin: true``): ``{"a": 1}`` fills an ``object`` input with the
object; ``plain text\\n\\n`` reaches a ``string`` input as ``plain text\\n`` (one trailing
newline dropped); ``data=cli`` on the command line wins over the pipe; an empty pipe leaves a
required input missing.
"""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.errors import UsageError, WorkflowValidationError
from pflow_trace.ir.pflow_ir import adapt_pflow_ir
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.runtime.inputs import resolve_inputs, stdin_input, with_piped_text


def workflow(input_type: str = "object", **inputs: dict[str, Any]) -> dict[str, Any]:
    declared = inputs or {"data": {"type": input_type, "stdin": True}}
    return {
        "ir_version": "0.1.0",
        "inputs": declared,
        "nodes": [
            {
                "id": "show",
                "type": "echo",
                # Every declared input is read, or validation refuses it (as pflow does).
                "params": {"value": {name: f"${{{name}}}" for name in declared}},
            }
        ],
    }


def test_json_text_fills_an_object_input() -> None:
    assert with_piped_text(workflow(), {}, '{"a": 1}\n') == {"data": {"a": 1}}


def test_a_string_input_takes_the_text_less_one_trailing_newline() -> None:
    wf = workflow("string")
    assert with_piped_text(wf, {}, "plain text\n\n") == {"data": "plain text\n"}
    assert with_piped_text(wf, {}, '{"a":1}\n') == {"data": '{"a":1}'}
    assert with_piped_text(wf, {}, "42") == {"data": "42"}


def test_text_that_is_not_json_stays_text_for_other_types() -> None:
    assert with_piped_text(workflow("any"), {}, "hello\n") == {"data": "hello"}


def test_a_value_on_the_command_line_wins() -> None:
    assert with_piped_text(workflow(), {"data": {"b": 2}}, '{"a": 1}') == {"data": {"b": 2}}


def test_nothing_piped_leaves_a_required_input_missing_with_a_hint() -> None:
    wf = workflow()
    for piped in (None, "", "\n"):
        provided = with_piped_text(wf, {}, piped)
        assert provided == {}
        with pytest.raises(UsageError) as info:
            resolve_inputs(wf, provided)
        assert "missing required input 'data' (give it as NAME=VALUE or pipe it" in str(info.value)


def test_without_a_stdin_input_piped_text_is_ignored() -> None:
    wf = workflow(data={"type": "string", "required": False})
    assert stdin_input(wf) is None
    assert with_piped_text(wf, {}, "ignored") == {}


def test_a_piped_value_still_meets_the_declared_type() -> None:
    provided = with_piped_text(workflow("integer"), {}, "not a number")
    with pytest.raises(UsageError) as info:
        resolve_inputs(workflow("integer"), provided)
    assert "input 'data' must be integer" in str(info.value)


def test_stdin_is_kept_through_pflow_ir_and_validation() -> None:
    adapted, problems = adapt_pflow_ir(workflow())
    assert problems == [] and adapted["inputs"]["data"]["stdin"] is True
    assert stdin_input(validate_workflow(workflow())) == "data"


def test_two_stdin_inputs_are_a_validation_problem() -> None:
    wf = workflow(a={"type": "string", "stdin": True}, b={"type": "string", "stdin": True})
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(wf)
    assert "more than one input has stdin: true (a, b)" in str(info.value)
