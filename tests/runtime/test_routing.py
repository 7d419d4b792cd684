"""pflow's routing at run time: an ``error`` edge takes a failure, a code node's ``next`` picks
the successor, and a run that routed around a failure ends degraded with a warning."""

from __future__ import annotations

from typing import Any

from pflow_trace.observe.facts import InMemoryObserver
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import run_workflow


def shell(node_id: str, command: str) -> dict[str, Any]:
    return {"id": node_id, "type": "shell", "params": {"command": command}}


def test_an_error_edge_routes_the_failure_and_the_run_is_degraded() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            shell("primary", "echo partial; exit 2"),
            shell("backup", "echo backup"),
            shell("join", "echo ${primary.stdout ?? backup.stdout}"),
        ],
        "edges": [
            {"from": "primary", "to": "join"},
            {"from": "primary", "to": "backup", "action": "error"},
            {"from": "backup", "to": "join"},
        ],
        "outputs": {"joined": "${join.stdout}"},
    }
    observer = InMemoryObserver()
    result = run_workflow(workflow, run=RunContext(observer=observer))
    assert result.status == "degraded" and result.error is None
    assert result.warnings == ["node 'primary' failed; on-error routed to 'backup'"]
    assert result.outputs == {"joined": "backup"}
    assert "primary" not in result.shared  # a failed node's outputs are not readable
    outcome = {e.node_id: e.success for e in observer.executions}
    assert outcome == {"primary": False, "backup": True, "join": True}


def test_without_an_error_edge_the_failure_fails_the_run() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [shell("primary", "exit 2"), shell("after", "echo never")],
        "edges": [{"from": "primary", "to": "after"}],
    }
    result = run_workflow(workflow)
    assert result.status == "failed"
    assert result.record.failed_node == "primary"


def test_a_code_nodes_next_picks_the_edge_with_that_action() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {"id": "pick", "type": "code", "params": {"code": "result = 1\nnext = 'b'"}},
            shell("a", "echo a"),
            shell("b", "echo b"),
        ],
        "edges": [
            {"from": "pick", "to": "a"},
            {"from": "pick", "to": "a", "action": "a"},
            {"from": "pick", "to": "b", "action": "b"},
        ],
    }
    result = run_workflow(workflow)
    assert result.status == "success" and result.warnings == []
    assert set(result.nodes) == {"pick", "b"}
    assert result.nodes["pick"] == {"result": 1, "stdout": "", "stderr": ""}
