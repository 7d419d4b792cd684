"""The rules a node's ``loop`` block must meet beyond its schema, as pflow-cli 0.16 has them.

The schema fixes the keys and that each template is ``${...}``-shaped. Here: ``loop`` and
``batch`` exclude each other; exactly one of ``while`` and ``until``; a condition is one single
reference (no ``${a} ${b}``); each ``carry`` value reads the loop node's own output, and names an
input the node seeds in its ``inputs`` param; a literal ``max_iterations`` is within pflow's visit
cap (``PFLOW_MAX_NODE_VISITS``, 100). Which other nodes a condition or a templated
``max_iterations`` may read is the ordinary template check (``ir/validation.py``).
"""

from __future__ import annotations

import os
from typing import Any

from pflow_trace.ir.templates import Reference, TemplateSyntaxError, compile_value

#: pflow's guard on how often one node may run in a run, which also caps a loop.
MAX_VISITS_ENV = "PFLOW_MAX_NODE_VISITS"
DEFAULT_MAX_VISITS = 100


def max_node_visits() -> int:
    """The visit guard: ``$PFLOW_MAX_NODE_VISITS`` when it is a positive integer, else 100."""
    raw = os.environ.get(MAX_VISITS_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_VISITS


#: The loop fields holding one template each, checked for what they read like params are.
LOOP_TEMPLATE_FIELDS = ("while", "until", "max_iterations")


def single_reference(text: Any) -> Reference | None:
    """``text`` compiled when it is exactly one ``${...}`` reference, else None."""
    if not isinstance(text, str):
        return None
    try:
        compiled = compile_value(text)
    except TemplateSyntaxError:
        return None
    return compiled if isinstance(compiled, Reference) else None


def loop_problems(index: int, node: dict[str, Any]) -> list[str]:
    """What is wrong with ``nodes[index]``'s loop block; empty when it has none."""
    block = node.get("loop")
    if not isinstance(block, dict):
        return []
    path = f"nodes[{index}].loop"
    problems: list[str] = []
    if "batch" in node:
        problems.append(f"{path}: loop and batch cannot be on the same node")
    keywords = [keyword for keyword in ("while", "until") if keyword in block]
    if len(keywords) != 1:
        problems.append(f"{path}: declare exactly one of while or until")
    for keyword in keywords:
        if isinstance(block[keyword], str) and single_reference(block[keyword]) is None:
            problems.append(
                f"{path}.{keyword}: {block[keyword]!r} is not a single ${{...}} reference "
                "(compute the condition in the node and reference it)"
            )
    cap = block.get("max_iterations")
    if isinstance(cap, int) and not isinstance(cap, bool) and cap > max_node_visits():
        problems.append(
            f"{path}.max_iterations: {cap} exceeds the visit cap of {max_node_visits()} "
            f"(lower it, or raise {MAX_VISITS_ENV})"
        )
    return problems + _carry_problems(path, node, block.get("carry"))


def _carry_problems(path: str, node: dict[str, Any], carry: Any) -> list[str]:
    if not isinstance(carry, dict):
        return []
    params = node.get("params")
    inputs = params.get("inputs") if isinstance(params, dict) else None
    seeded = set(inputs) if isinstance(inputs, dict) else set()
    problems = []
    for key, source in carry.items():
        reference = single_reference(source)
        if isinstance(source, str) and (reference is None or reference.head != node.get("id")):
            problems.append(
                f"{path}.carry.{key}: {source!r} must read this loop node's own output "
                f"(${{{node.get('id')}.…}})"
            )
        if key not in seeded:
            problems.append(
                f"{path}.carry.{key}: input '{key}' is carried but not seeded in the node's inputs"
            )
    return problems
