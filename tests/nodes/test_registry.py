"""Node types come from the built-ins and from packages' ``pflow_trace.nodes`` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes import registry as registry_module
from pflow_trace.nodes.base import WorkflowNode
from pflow_trace.nodes.registry import ENTRY_POINT_GROUP, NodeRegistry
from pflow_trace.runtime.workflow_run import run_workflow


class ShoutNode(WorkflowNode):
    """A third-party node type, as a plug-in package would ship it."""

    type_name = "shout"

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"text": str(params.get("text", "")).upper()}


def fake_entry_points(*, group: str) -> list[EntryPoint]:
    assert group == ENTRY_POINT_GROUP
    return [
        EntryPoint("shout", f"{__name__}:ShoutNode", group),
        EntryPoint("broken", "no_such_module_anywhere:Node", group),
        EntryPoint("echo", f"{__name__}:ShoutNode", group),  # may not replace a built-in
    ]


@pytest.fixture
def plugin_registry(monkeypatch: pytest.MonkeyPatch) -> NodeRegistry:
    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    return NodeRegistry()


def test_entry_point_types_load_and_run(plugin_registry: NodeRegistry) -> None:
    assert plugin_registry.get("shout") is ShoutNode
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {
                "id": "loud",
                "type": "shout",
                "params": {"text": "${item}"},
                "batch": {"items": ["a", "b"]},
            }
        ],
    }
    validate_workflow(workflow, registry=plugin_registry)
    result = run_workflow(workflow, {}, registry=plugin_registry)
    assert [r["text"] for r in result.nodes["loud"]["results"]] == ["A", "B"]


def test_a_broken_plugin_is_skipped_and_built_ins_win(plugin_registry: NodeRegistry) -> None:
    assert plugin_registry.get("broken") is None
    assert plugin_registry.get("echo").type_name == "echo"  # type: ignore[union-attr]
    assert "shout" in plugin_registry.names()
    assert {"shell", "http", "read-file", "write-file", "code", "echo"} <= set(
        plugin_registry.names()
    )


def test_unknown_types_suggest_the_closest_names(plugin_registry: NodeRegistry) -> None:
    assert plugin_registry.closest("shuot") == ["shout"]
