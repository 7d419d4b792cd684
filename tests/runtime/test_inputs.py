"""Unit: what a run's redactor knows before anything runs, and inputs' errors keep secrets."""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.observe.redaction import REDACTED
from pflow_trace.runtime.inputs import resolve_inputs, run_redactor, sensitive_values


def workflow(inputs: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "inputs",
        "inputs": inputs,
        "nodes": [{"id": "n", "type": "echo", "params": params or {}}],
    }


def test_sensitive_values_are_the_leaves_of_any_type() -> None:
    wf = workflow(
        {
            "ids": {"type": "array", "sensitive": True},
            "conf": {"type": "object", "sensitive": True},
            "plain": {"type": "string"},
        }
    )
    values = {"ids": ["id-1", ["id-2"]], "conf": {"a": {"b": 12345}}, "plain": "visible"}
    assert sorted(sensitive_values(wf, values)) == ["12345", "id-1", "id-2"]


def test_the_redactor_knows_secret_named_inputs_and_literal_params_up_front() -> None:
    wf = workflow(
        {"api_key": {"type": "string"}, "pin": {"type": "string", "sensitive": True}},
        params={
            "headers": {"Authorization": "Bearer literal-55667788", "X-Token": "${api_key}"},
            "url": "https://u:url-pass-1234@example.invalid/",
        },
    )
    redactor = run_redactor(wf, {"api_key": "root-key-9999", "pin": "12"})
    line = "root-key-9999 literal-55667788 url-pass-1234 ${api_key}"
    assert redactor.text(line) == f"{REDACTED} {REDACTED} {REDACTED} ${{api_key}}"
    # A short sensitive value is not hidden by value, but its name is hidden at the root.
    assert redactor.text("pin 12") == "pin 12"
    assert redactor.is_secret_root_key("pin") and not redactor.is_secret_key("pin")


def test_a_mistyped_sensitive_input_is_not_echoed_back() -> None:
    wf = workflow({"pin": {"type": "number", "sensitive": True}, "n": {"type": "number"}})
    with pytest.raises(UsageError) as caught:
        resolve_inputs(wf, {"pin": "sekrit-value", "n": "ten"})
    assert "sekrit-value" not in caught.value.message
    assert "input 'pin' must be number, got a value of another type" in caught.value.message
    assert "input 'n' must be number, got \"ten\"" in caught.value.message


def test_an_optional_input_without_a_default_is_none_as_in_pflow() -> None:
    workflow = {"inputs": {"maybe": {"type": "string", "required": False}}, "nodes": []}
    assert resolve_inputs(workflow, {}) == {"maybe": None}
