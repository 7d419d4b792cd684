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


def test_a_failure_retried_by_a_loop_back_that_then_succeeds_no_longer_counts(
    tmp_path: Any,
) -> None:
    """As in pflow-cli 0.16 (pflow's examples/error-handling/loop-recovery): a node that failed,
    was routed to a step that loops back to it and then succeeded leaves the run ``success``,
    with no warning, and its outputs readable."""
    marker = tmp_path / "marker"
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            shell("flaky", f"if [ -f {marker} ]; then echo ok; else touch {marker}; exit 9; fi"),
            shell("again", "echo retrying"),
        ],
        "edges": [
            {"from": "flaky", "to": "again", "action": "error"},
            {"from": "again", "to": "flaky"},
        ],
        "outputs": {"said": "${flaky.stdout}"},
    }
    result = run_workflow(workflow)
    assert result.status == "success" and result.error is None
    assert result.warnings == []
    assert result.outputs == {"said": "ok"}
