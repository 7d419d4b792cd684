"""The output keys ``validate`` knows are the keys the nodes really write (ir/node_outputs.py)."""

from __future__ import annotations

from pathlib import Path

from pflow_trace.ir.node_outputs import BATCH_OUTPUT_KEYS
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.code import CodeNode
from pflow_trace.nodes.echo import EchoNode
from pflow_trace.nodes.files import ReadFileNode, WriteFileNode
from pflow_trace.nodes.registry import default_registry
from pflow_trace.nodes.shell import ShellNode
from pflow_trace.runtime.workflow_run import run_workflow


def test_the_shell_node_writes_exactly_its_declared_keys() -> None:
    assert set(ShellNode().exec({"command": "echo hi"})) == ShellNode.output_keys


def test_the_code_node_writes_exactly_its_declared_keys() -> None:
    outputs = CodeNode().exec({"code": "print(1)\nresult = 2"})
    assert set(outputs) == CodeNode.output_keys


def test_the_file_nodes_write_exactly_their_declared_keys(tmp_path: Path) -> None:
    path = str(tmp_path / "f.txt")
    written = WriteFileNode().exec({"file_path": path, "content": "x"})
    assert set(written) == WriteFileNode.output_keys
    assert set(ReadFileNode().exec({"file_path": path})) == ReadFileNode.output_keys


def test_echo_declares_no_keys_because_it_writes_its_params() -> None:
    assert EchoNode.output_keys is None
    assert set(EchoNode().exec({"anything": 1})) == {"anything"}


def test_every_built_in_type_but_echo_declares_its_keys() -> None:
    registry = default_registry()
    undeclared = [name for name in registry.names() if registry.get(name).output_keys is None]
    assert "echo" in undeclared
    assert {"shell", "http", "read-file", "write-file", "code", "llm"}.isdisjoint(undeclared)


def test_a_batch_node_writes_exactly_the_batch_keys() -> None:
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "nodes": [
                {"id": "b", "type": "echo", "params": {"v": "${item}"}, "batch": {"items": [1]}}
            ],
        }
    )
    result = run_workflow(workflow, {})
    assert set(result.nodes["b"]) == BATCH_OUTPUT_KEYS
