"""``validate`` checks node params against each node type's schema, with hints."""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow


def problems_of(*nodes: dict[str, Any]) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow({"ir_version": "0.1.0", "nodes": list(nodes)}, "wf.json")
    return info.value.problems


def test_an_unknown_param_is_named_with_the_closest_known_one() -> None:
    assert problems_of({"id": "a", "type": "shell", "params": {"command": "x", "comand": "y"}}) == [
        "nodes[0].params.comand: unknown param 'comand' for shell (did you mean 'command'?)"
    ]


def test_a_missing_required_param_and_a_wrong_literal_are_problems() -> None:
    assert problems_of({"id": "a", "type": "shell", "params": {"timeout": "soon"}}) == [
        "nodes[0].params: shell needs the param 'command'",
        "nodes[0].params.timeout: 'soon' is not of type 'number', 'null'",
    ]


def test_a_templated_value_is_left_to_run_time() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "inputs": {"t": {"type": "number", "default": 1}},
        "nodes": [{"id": "a", "type": "shell", "params": {"command": "x", "timeout": "${t}"}}],
    }
    assert validate_workflow(workflow) is workflow


def test_a_misspelt_batch_key_gets_a_did_you_mean() -> None:
    node = {"id": "a", "type": "echo", "batch": {"items": [1], "retries": 3}}
    assert problems_of(node) == [
        "nodes[0].batch: unknown key 'retries' (did you mean 'max_retries'?)"
    ]


def test_template_mistakes_get_hints() -> None:
    shell = {"id": "a", "type": "shell", "params": {"command": "echo ${HOME}"}}
    aliased = {
        "id": "b",
        "type": "echo",
        "params": {"v": "${item}"},
        "batch": {"items": [1], "as": "uid"},
    }
    assert problems_of(shell, aliased) == [
        "nodes[0].params.command: ${HOME} names unknown 'HOME' "
        "(for a literal ${HOME}, as in a shell variable, write $${HOME})",
        "nodes[1].params.v: ${item} names unknown 'item' "
        "(this batch names its items 'uid' in batch.as: write ${uid})",
    ]


def test_retry_wait_must_be_finite_and_bounded() -> None:
    for wait in (float("inf"), 1e308):
        node = {"id": "a", "type": "echo", "batch": {"items": [1], "retry_wait": wait}}
        assert len(problems_of(node)) == 1


def test_a_control_character_in_a_value_cannot_break_the_line() -> None:
    (problem,) = problems_of({"id": "a", "type": "ech\no\x1b[2J"})
    assert "\n" not in problem and "\x1b" not in problem
    assert "unknown node type 'ech\\no\\e[2J'" in problem
