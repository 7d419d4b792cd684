"""pflow's JSON IR, accepted as it is: the fields it has that ours lacks are mapped or dropped.

pflow's IR (pflow-cli 0.16) is ours plus a few things: outputs are objects with a ``source``
template (ours are the template itself), nodes carry parser metadata (``_source_line``,
``_source_lines``, ``_routes_to_end``) and caching hints, and the workflow may say how
namespacing and templates behave. This module turns such a document into our IR before
validation. What it cannot honour (approval gates) becomes a validation problem, never
a silent drop; see docs/pflow-compat.md.
"""

from __future__ import annotations

import copy
from typing import Any

#: Node fields that only steer pflow's parser or its memo cache; running without them is
#: exactly pflow's ``--no-cache`` behaviour.
_NODE_METADATA = ("_source_line", "_source_lines", "_source_files", "_routes_to_end", "cache")
#: Node fields pflow has that pflow-trace cannot run, with why.
_NODE_UNSUPPORTED = {
    "approval": "approval gates are not supported",
}
#: Workflow fields and the value under which ignoring them changes nothing.
_WORKFLOW_NEUTRAL: dict[str, Any] = {
    "enable_namespacing": True,
    "template_resolution_mode": "strict",
    "mappings": {},
}


def adapt_pflow_ir(workflow: Any) -> tuple[Any, list[str]]:
    """Our IR for ``workflow`` (a copy when anything changed) and what cannot be honoured.

    A document that is already ours comes back unchanged with no problems.
    """
    if not isinstance(workflow, dict):
        return workflow, []
    adapted = copy.copy(workflow)
    problems: list[str] = []
    for key, neutral in _WORKFLOW_NEUTRAL.items():
        if key in adapted and adapted.pop(key) != neutral:
            problems.append(f"{key}: only {neutral!r} is supported")
    if isinstance(adapted.get("cache"), dict):  # ``## Cache``: its parser metadata goes
        adapted["cache"] = _without_source_lines(adapted["cache"])
    _adapt_start_node(adapted, problems)
    if isinstance(adapted.get("outputs"), dict):
        adapted["outputs"] = {
            name: spec.get("source") if isinstance(spec, dict) else spec
            for name, spec in adapted["outputs"].items()
        }
    if isinstance(adapted.get("nodes"), list):
        adapted["nodes"] = [
            _adapt_node(index, node, problems) for index, node in enumerate(adapted["nodes"])
        ]
    if not problems and adapted == workflow:
        return workflow, []  # already ours: hand back the very same object
    return adapted, problems


def _without_source_lines(block: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in block.items() if key != "_source_line"}
    if isinstance(kept.get("items"), list):
        kept["items"] = [
            {k: v for k, v in item.items() if k != "_source_line"}
            if isinstance(item, dict)
            else item
            for item in kept["items"]
        ]
    return kept


def _adapt_start_node(adapted: dict[str, Any], problems: list[str]) -> None:
    """``start_node`` naming the first node is the default; anything else is not supported."""
    if "start_node" not in adapted:
        return
    start = adapted.pop("start_node")
    nodes = adapted.get("nodes")
    first = (
        nodes[0].get("id")
        if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict)
        else None
    )
    if start != first:
        problems.append(f"start_node: only the first node may start the run (got {start!r})")


def _adapt_node(index: int, node: Any, problems: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    if not any(key in node for key in (*_NODE_METADATA, *_NODE_UNSUPPORTED)):
        return node
    adapted = {key: value for key, value in node.items() if key not in _NODE_METADATA}
    for key, why in _NODE_UNSUPPORTED.items():
        if key in adapted:
            problems.append(f"nodes[{index}].{key}: {why}")
            del adapted[key]
    return adapted
