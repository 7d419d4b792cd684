"""Finds node types by name: the built-ins plus any third-party package's entry points.

Types named ``mcp-<server>-<tool>`` come from the MCP servers configured for this process
(``nodes/mcp_config.py``): one type per server tool, as pflow names them.

Third parties register a :class:`~pflow_trace.nodes.base.WorkflowNode` subclass under the
entry-point group ``pflow_trace.nodes``; the entry-point name is the node type.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points

from pflow_trace.nodes.base import WorkflowNode

ENTRY_POINT_GROUP = "pflow_trace.nodes"
MCP_TYPE_PREFIX = "mcp-"


def _mcp_type(type_name: str) -> type[WorkflowNode] | None:
    """An ``mcp-<server>-<tool>`` type of a configured server (read from the config each time,
    so a registry never holds a server the file no longer lists)."""
    from pflow_trace.nodes.mcp import node_class

    return node_class(type_name)


def _builtin_types() -> dict[str, type[WorkflowNode]]:
    from pflow_trace.nodes.code import CodeNode
    from pflow_trace.nodes.echo import EchoNode
    from pflow_trace.nodes.file_ops import CopyFileNode, DeleteFileNode, MoveFileNode
    from pflow_trace.nodes.files import ReadFileNode, WriteFileNode
    from pflow_trace.nodes.http import HttpNode
    from pflow_trace.nodes.llm import LlmNode
    from pflow_trace.nodes.shell import ShellNode
    from pflow_trace.nodes.workflow_call import WorkflowCallNode

    types = (
        ShellNode,
        HttpNode,
        ReadFileNode,
        WriteFileNode,
        CopyFileNode,
        MoveFileNode,
        DeleteFileNode,
        CodeNode,
        EchoNode,
        LlmNode,
        WorkflowCallNode,
    )
    return {cls.type_name: cls for cls in types}


class NodeRegistry:
    """A name → node class map; built-ins first, entry points loaded lazily on first miss."""

    def __init__(self, types: dict[str, type[WorkflowNode]] | None = None) -> None:
        self._types = dict(types) if types is not None else _builtin_types()
        self._entry_points_loaded = types is not None

    def register(self, type_name: str, cls: type[WorkflowNode]) -> None:
        self._types[type_name] = cls

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in self._types:
                continue
            try:
                cls = entry_point.load()
            except Exception:  # a broken plug-in must not break the built-ins
                continue
            self._types[entry_point.name] = cls

    def get(self, type_name: str) -> type[WorkflowNode] | None:
        if type_name not in self._types:
            self._load_entry_points()
        found = self._types.get(type_name)
        if found is None and type_name.startswith(MCP_TYPE_PREFIX):
            return _mcp_type(type_name)
        return found

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._types)

    def closest(self, type_name: str) -> list[str]:
        return difflib.get_close_matches(type_name, self.names(), n=3, cutoff=0.5)


_default_registry: NodeRegistry | None = None


def default_registry() -> NodeRegistry:
    global _default_registry
    if _default_registry is None:
        _default_registry = NodeRegistry()
    return _default_registry
