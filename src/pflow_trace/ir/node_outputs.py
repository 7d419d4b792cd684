"""The keys a node writes into its namespace, where they are fixed, so a misspelt one is found.

A built-in node type declares its keys (``output_keys`` on the class, beside ``exec``); a node
with a ``batch`` block writes the batch output instead, whatever its type (see
``runtime/batch_output.py``). ``${fetch.stauts_code}`` is then reported at ``validate`` time
with the key that was probably meant. A type whose keys depend on its params (``echo``) or
are not declared (another package's type) is not checked.
"""

from __future__ import annotations

import difflib
from typing import Any

from pflow_trace.ir.templates import Reference
from pflow_trace.nodes.registry import NodeRegistry

#: What a batch node leaves in its namespace (``runtime/batch_output.py`` builds it).
BATCH_OUTPUT_KEYS = frozenset(
    {"results", "count", "success_count", "error_count", "errors", "batch_metadata"}
)


def written_keys(node: dict[str, Any], registry: NodeRegistry) -> tuple[str, frozenset[str]]:
    """What kind of node this is for a message (``shell node``) and the keys it writes.

    The keys are empty when they are not fixed.
    """
    if isinstance(node.get("batch"), dict):
        return "batch node", BATCH_OUTPUT_KEYS
    node_type = node.get("type")
    node_class = registry.get(node_type) if isinstance(node_type, str) else None
    keys = getattr(node_class, "output_keys", None)
    if not isinstance(keys, frozenset):
        return "", frozenset()
    if isinstance(node.get("loop"), dict):  # runtime/loop.py says why the loop ended
        keys = keys | {"loop_stopped"}
    return f"{node_type} node", keys


def unwritten_key_problem(
    path: str, reference: Reference, node: dict[str, Any], registry: NodeRegistry
) -> str | None:
    """``${s.stdot}`` reading a key the node ``s`` never writes, with the closest key."""
    if len(reference.path) < 2 or not isinstance(reference.path[1], str):
        return None
    kind, keys = written_keys(node, registry)
    key = reference.path[1]
    if not keys or key in keys:
        return None
    closest = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
    hint = f"did you mean '{closest[0]}'?" if closest else f"it writes {', '.join(sorted(keys))}"
    return (
        f"{path}: {reference.text} reads '{key}', which {kind} '{reference.head}' "
        f"does not write ({hint})"
    )
