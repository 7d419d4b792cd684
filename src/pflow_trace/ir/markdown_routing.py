"""``- next:`` and ``- on-error:`` into edges, with pflow's rules for ``.pflow.md`` routing.

As pflow's parser does, every step gets explicit edges, document order included.

- ``- next: id`` replaces the default successor; ``- next: end`` ends the run there;
  ``- next: a, b`` lists the targets a code node may pick (``default`` goes to the first).
- ``- on-error: id`` adds an ``error`` edge: the step's failure goes there instead of failing
  the run.
- A code node assigning a literal (``next: str = "big"``) gets an edge per literal target.
- A step reached by ``on-error`` must say where it goes next, or it would fall through to the
  following step by document order (pflow rejects that, and so do we).
"""

from __future__ import annotations

import difflib
from typing import Any

from pflow_trace.ir.markdown import Document, Entity

END = "end"
ERROR_ACTION = "error"
#: A problem naming the steps lists at most this many (and compares spellings with them).
MAX_NAMED_STEPS = 20


def _targets(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(target).strip() for target in value]
    return [target.strip() for target in str(value).split(",") if target.strip()]


def _check_target(doc: Document, ids: dict[str, int], target: str, line: int, key: str) -> bool:
    if target == END or target in ids:
        return True
    closest = difflib.get_close_matches(target, list(ids)[:MAX_NAMED_STEPS], n=1)
    if closest:
        known = f"did you mean '{closest[0]}'?"
    elif len(ids) <= MAX_NAMED_STEPS:
        known = f"steps: {', '.join(ids)}, or end"
    else:
        known = f"steps: {', '.join(list(ids)[:MAX_NAMED_STEPS])}, … ({len(ids)} in all), or end"
    doc.problem(line, f"'- {key}: {target}' names no step ({known})")
    return False


def route_edges(
    doc: Document, steps: list[tuple[Entity, dict[str, Any]]], lines: dict[str, int]
) -> list[dict[str, str]]:
    """The edges for the steps: document order made explicit, plus every route."""
    ids: dict[str, int] = {}  # each step's name and where it first appears
    for index, (entity, _) in enumerate(steps):
        ids.setdefault(entity.name, index)
    if END in ids:
        line = next(entity.line for entity, _ in steps if entity.name == END)
        doc.problem(line, "'end' is reserved (it ends the run); name the step differently")
    edges: list[dict[str, str]] = []
    for index, (entity, routing) in enumerate(steps):
        following = steps[index + 1][0].name if index + 1 < len(steps) else None
        edges += _step_edges(doc, ids, entity, routing, following)
    for edge_index, edge in enumerate(edges):
        lines[f"edges[{edge_index}]"] = _edge_line(steps[ids[edge["from"]]], edge)
    _check_handlers(doc, steps)
    return edges


def _step_edges(
    doc: Document,
    ids: dict[str, int],
    entity: Entity,
    routing: dict[str, Any],
    following: str | None,
) -> list[dict[str, str]]:
    where = routing.get("_lines", {})
    edges: list[dict[str, str]] = []
    declared = _targets(routing["next"]) if "next" in routing else None
    if declared is None:
        if following is not None:
            edges.append({"from": entity.name, "to": following})
    else:
        valid = [t for t in declared if _check_target(doc, ids, t, where.get("next", 0), "next")]
        if len(declared) == 1 and valid and valid[0] != END:
            edges.append({"from": entity.name, "to": valid[0]})
        elif len(declared) > 1:
            for target in valid:
                if target != END:
                    edges.append({"from": entity.name, "to": target, "action": target})
            if valid and valid[0] != END:
                edges.append({"from": entity.name, "to": valid[0], "action": "default"})
    for target in routing.get("_literal", []):
        if target != END and target in ids and (declared is None or len(declared) <= 1):
            edges.append({"from": entity.name, "to": target, "action": target})
    if "on-error" in routing:
        target = str(routing["on-error"]).strip()
        if _check_target(doc, ids, target, where.get("on-error", 0), "on-error") and target != END:
            edges.append({"from": entity.name, "to": target, "action": ERROR_ACTION})
    return edges


def _edge_line(step: tuple[Entity, dict[str, Any]], edge: dict[str, str]) -> int:
    """The line of the item an edge comes from (the step's heading for document order)."""
    entity, routing = step
    where = routing.get("_lines", {})
    key = "on-error" if edge.get("action") == ERROR_ACTION else "next"
    return int(where.get(key, entity.line))


def _check_handlers(doc: Document, steps: list[tuple[Entity, dict[str, Any]]]) -> None:
    """A step reached by ``on-error`` needs its own ``- next:`` (unless it is the last)."""
    handlers = {
        str(routing["on-error"]).strip(): entity.name
        for entity, routing in steps
        if "on-error" in routing
    }
    for index, (entity, routing) in enumerate(steps):
        if entity.name in handlers and "next" not in routing and index + 1 < len(steps):
            doc.problem(
                entity.line,
                f"step '{entity.name}' handles errors of '{handlers[entity.name]}' but has no "
                f"'- next:'; it would fall through to '{steps[index + 1][0].name}' "
                "(add '- next: end' or '- next: <step>')",
            )
