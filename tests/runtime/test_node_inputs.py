"""``inputs`` on every node type: named values the node's other params read as ``${key}``.

What pflow-cli 0.16 does, checked with ``pflow --no-cache --output-format json`` on small
shell workflows (and recorded by the compat cases ``54-node-inputs-scope`` and
``55-loop-carry-shell``): ``inputs`` resolves first, against the store; its keys then shadow
every other name in the node's other params (a workflow input of the same name too); a value
of ``inputs`` does not see its siblings; a whole-value input holding JSON text reads as the
parsed object; a loop's ``carry`` replaces the inputs a ``shell`` body reads from pass two on.
"""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.runtime.workflow_run import run_workflow


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "name": "node-inputs", "nodes": list(nodes), **extra}


def shell(node_id: str, command: str, **extra: Any) -> dict[str, Any]:
    params = {"command": command, **extra.pop("params", {})}
    return {"id": node_id, "type": "shell", "params": params, **extra}


def run(wf: dict[str, Any], inputs: dict[str, Any] | None = None) -> Any:
    return run_workflow(validate_workflow(wf), inputs or {})


def test_shell_command_reads_its_own_inputs_over_the_workflow_inputs() -> None:
    wf = workflow(
        shell(
            "greet",
            "echo ${name} ${who} ${mixed} ${n} ${flag}",
            params={
                "inputs": {
                    "name": "local",
                    "who": "${name}",
                    "mixed": "pre-${name}",
                    "n": 3,
                    "flag": True,
                }
            },
        ),
        inputs={"name": {"type": "string", "default": "world"}},
    )
    result = run(wf)
    assert result.status == "success"
    assert result.nodes["greet"]["stdout"].strip() == "local world pre-world 3 True"


def test_a_whole_value_input_of_json_text_reads_as_the_object() -> None:
    wf = workflow(
        shell("make", """printf '{"k": [1,2]}'"""),
        shell(
            "use",
            "printf '%s|%s' '${data.k[1]}' '${data}'",
            params={"inputs": {"data": "${make.stdout}"}},
        ),
    )
    result = run(wf)
    assert result.nodes["use"]["stdout"] == '2|{"k": [1, 2]}'


def test_a_batch_item_reaches_the_command_through_an_input() -> None:
    node = shell("each", "echo ${label}", params={"inputs": {"label": "item-${item}"}})
    node["batch"] = {"items": ["a", "b"]}
    result = run(workflow(node))
    assert [r["stdout"].strip() for r in result.nodes["each"]["results"]] == [
        "item-a",
        "item-b",
    ]


def test_a_loop_carries_into_a_shell_body() -> None:
    node = shell("grow", "printf '%s+' '${text}'", params={"inputs": {"text": "x"}})
    node["loop"] = {
        "carry": {"text": "${grow.stdout}"},
        "while": "${__iteration__}",
        "max_iterations": 3,
    }
    result = run(workflow(node))
    assert result.nodes["grow"]["stdout"] == "x+++"
    assert result.nodes["grow"]["loop_stopped"] == "max_iterations"


def test_the_code_node_keeps_its_typed_inputs() -> None:
    code = {
        "id": "calc",
        "type": "code",
        "params": {"inputs": {"raw": "${make.stdout}"}, "code": "raw: str\nresult: int = len(raw)"},
    }
    result = run(workflow(shell("make", """printf '{"a": 1}'"""), code))
    assert result.nodes["calc"]["result"] == len('{"a": 1}')


def test_validate_accepts_a_key_of_the_nodes_own_inputs_only_there() -> None:
    own = shell("a", "echo ${who}", params={"inputs": {"who": "me"}})
    validate_workflow(workflow(own))
    other = shell("b", "echo ${who}")
    with pytest.raises(WorkflowValidationError, match=r"names unknown 'who'"):
        validate_workflow(workflow(own, other))


def test_validate_refuses_inputs_that_are_not_a_mapping() -> None:
    with pytest.raises(WorkflowValidationError, match=r"params\.inputs"):
        validate_workflow(workflow(shell("a", "echo hi", params={"inputs": ["x"]})))


def test_an_input_does_not_read_its_siblings() -> None:
    node = shell("a", "echo ${b}", params={"inputs": {"x": "1", "b": "${x}"}})
    with pytest.raises(WorkflowValidationError, match=r"names unknown 'x'"):
        validate_workflow(workflow(node))
