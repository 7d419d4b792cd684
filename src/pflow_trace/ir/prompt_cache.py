"""pflow's provider prompt caching: the workflow's ``## Cache`` block and ``prompt_cache``.

A workflow declares its cacheable context once, as pflow-cli 0.16 does: a ``## Cache`` section
with an optional ``- ttl: 5m`` and one ``cache`` fence whose ``${...}`` references are the
chunks, each with the prose before it. In the IR that is ``cache: {ttl, items: [{name, var,
prose_before}]}``. An ``llm`` node opts in with ``prompt_cache: [chunk, ...]`` (names in the
order they are declared); the chunks are sent ahead of its prompt (``nodes/llm.py``).

This module reads the block from markdown, checks both fields, and gives the compiler the
``__prompt_cache__`` param an ``llm`` node resolves like any other: each chunk's value is a
``${var ?? null}`` template, so a chunk whose value is not there (a branch not taken) is left
out, as pflow leaves it out.
"""

from __future__ import annotations

import re
from typing import Any

from pflow_trace.ir.templates import Reference, TemplateSyntaxError, parse_string

#: The param the compiler gives an ``llm`` node with ``prompt_cache`` (``^__`` keys are the
#: runtime's, allowed on every node type).
CACHE_PARAM = "__prompt_cache__"
DEFAULT_TTL = "5m"
_TTL = re.compile(r"^(?:(\d+)m|1h)$")


def chunks_of(text: str) -> list[dict[str, str]]:
    """A ``cache`` fence's chunks: each reference with the prose since the previous one."""
    try:
        parsed = parse_string(text)
    except TemplateSyntaxError:
        return []
    parts = parsed.parts if hasattr(parsed, "parts") else (parsed,)
    chunks: list[dict[str, str]] = []
    prose = ""
    for part in parts:
        if isinstance(part, Reference):
            var = part.text[2:-1].strip()
            chunks.append({"name": var, "var": var, "prose_before": prose})
            prose = ""
        else:
            prose += part
    return chunks


def cache_block(items: list[tuple[str, str]], fences: list[str]) -> dict[str, Any] | None:
    """The IR ``cache`` block from a ``## Cache`` section's items and fence texts."""
    if not items and not fences:
        return None
    block: dict[str, Any] = {"items": [c for text in fences for c in chunks_of(text)]}
    for key, value in items:
        block[key] = value
    return block


def ttl_problem(ttl: Any) -> str | None:
    """pflow's TTLs: ``1m`` to ``60m``, or ``1h``."""
    match = _TTL.match(ttl) if isinstance(ttl, str) else None
    if match is None or (match.group(1) is not None and not 1 <= int(match.group(1)) <= 60):
        return f"cache.ttl: {ttl!r} is not a TTL (1m to 60m, or 1h)"
    return None


def cache_problems(workflow: dict[str, Any]) -> list[str]:
    """The block's TTL, and each node's ``prompt_cache``/``prewarm``: declared names, in
    declaration order, on ``llm`` nodes only."""
    block = workflow.get("cache")
    items = block.get("items") if isinstance(block, dict) else None
    declared = [item.get("name") for item in _listed(items) if isinstance(item, dict)]
    problems = []
    if isinstance(block, dict) and "ttl" in block:
        problems += [p for p in [ttl_problem(block["ttl"])] if p]
    for index, node in enumerate(_listed(workflow.get("nodes"))):
        if not isinstance(node, dict):
            continue
        for field in ("prompt_cache", "prewarm"):
            if field in node and node.get("type") != "llm":
                problems.append(f"nodes[{index}].{field}: only llm nodes take {field}")
        names = node.get("prompt_cache")
        if not isinstance(names, list):
            continue
        unknown = [name for name in names if name not in declared]
        if unknown:
            known = ", ".join(str(name) for name in declared) or "none: add a ## Cache block"
            problems.append(
                f"nodes[{index}].prompt_cache: {', '.join(map(str, unknown))} not declared "
                f"in the workflow's cache (declared: {known})"
            )
        elif names != sorted(names, key=declared.index):
            problems.append(
                f"nodes[{index}].prompt_cache: list the chunks in the order the cache declares "
                f"them ({', '.join(name for name in declared if name in names)})"
            )
    return problems


def _listed(value: Any) -> list[Any]:
    """A list field as a list; any other shape is the schema's problem, and checks skip it."""
    return value if isinstance(value, list) else []


def cache_vars(workflow: dict[str, Any]) -> list[str]:
    """Each declared chunk's reference as a template (what validation checks and inputs read)."""
    block = workflow.get("cache")
    items = block.get("items") if isinstance(block, dict) else None
    return [
        "${" + item["var"] + "}"
        for item in _listed(items)
        if isinstance(item, dict) and isinstance(item.get("var"), str)
    ]


def cache_param(workflow: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The ``__prompt_cache__`` param of a node with ``prompt_cache``, or None."""
    names = node.get("prompt_cache")
    block = workflow.get("cache")
    if not names or not isinstance(block, dict):
        return None
    by_name = {item["name"]: item for item in block.get("items") or []}
    return {
        "ttl": block.get("ttl", DEFAULT_TTL),
        "chunks": [
            {
                "name": name,
                # The prose is text: escaped, so the template layer hands it on unchanged.
                "prose": by_name[name].get("prose_before", "").replace("${", "$${"),
                "value": "${" + by_name[name]["var"] + " ?? null}",
            }
            for name in names
        ],
    }
