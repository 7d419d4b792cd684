"""Node params checked at ``validate`` time, and the hints that name what was probably meant.

Every node type declares a JSON Schema for its params (``params_schema``); the runtime checks
the *resolved* params before each execution. Most mistakes are visible long before that: a
misspelt key, a missing required param, a literal of the wrong type. Those are reported here,
with the workflow's other problems, so ``validate`` catches them without running anything.

A value holding a template is not type-checked: what it resolves to is known only at run time
(a whole-value template keeps the value's type), and the runtime checks it then.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import jsonschema

from pflow_trace.nodes.registry import NodeRegistry

#: Keys the runtime injects (``__attempt__``); never a user's typo.
_RUNTIME_PREFIX = "__"
#: The param every node type has: named values its other params read as ``${key}``.
_SCOPE_PARAM = "inputs"
_SCOPE_SCHEMA: dict[str, Any] = {"type": "object"}
_VALIDATORS: dict[int, Any] = {}


def closest_key_hint(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'command'?)`` for a misspelt key; empty when nothing is close.

    Besides spelling, a known key that *contains* the given one counts as close: ``retries``
    means ``max_retries``.
    """
    names = sorted(set(known))
    closest = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if not closest:
        closest = [name for name in names if key and key.lower() in name.lower()][:1]
    return f" (did you mean '{closest[0]}'?)" if closest else ""


def param_problems(workflow: dict[str, Any], registry: NodeRegistry) -> list[str]:
    """Unknown keys, missing required params and wrong literal values of every node's params."""
    problems: list[str] = []
    nodes = workflow.get("nodes")
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict) or not isinstance(node.get("params", {}), dict):
            continue
        node_type = node.get("type")
        node_class = registry.get(node_type) if isinstance(node_type, str) else None
        schema = getattr(node_class, "params_schema", None)
        if isinstance(schema, dict):
            problems += _node_param_problems(index, node_type, schema, node.get("params") or {})
    return problems


def _node_param_problems(
    index: int, node_type: Any, schema: dict[str, Any], params: dict[str, Any]
) -> list[str]:
    where = f"nodes[{index}].params"
    properties: dict[str, Any] = schema.get("properties") or {}
    problems: list[str] = []
    if schema.get("additionalProperties") is False:
        for key in params:
            if (
                key not in properties
                and key != _SCOPE_PARAM
                and not str(key).startswith(_RUNTIME_PREFIX)
            ):
                hint = closest_key_hint(str(key), properties)
                problems.append(f"{where}.{key}: unknown param '{key}' for {node_type}{hint}")
    for key in schema.get("required") or []:
        if key not in params:
            problems.append(f"{where}: {node_type} needs the param '{key}'")
    for key, value in params.items():
        subschema = properties.get(key, _SCOPE_SCHEMA if key == _SCOPE_PARAM else None)
        if isinstance(subschema, dict) and not _holds_template(value):
            error = jsonschema.exceptions.best_match(_validator(subschema).iter_errors(value))
            if error is not None:
                problems.append(f"{where}.{key}: {error.message}")
    return problems


def _validator(subschema: dict[str, Any]) -> Any:
    """One validator per property schema; node schemas are class constants, so ids are stable."""
    validator = _VALIDATORS.get(id(subschema))
    if validator is None:
        validator = jsonschema.validators.validator_for(subschema)(subschema)
        _VALIDATORS[id(subschema)] = validator
    return validator


def _holds_template(value: Any) -> bool:
    """True when a ``${`` appears in any string of the value (even an escaped one: it is
    rewritten at run time, so its final text is not what the schema would see here)."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "${" in current:
                return True
        elif isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return False


def unknown_name_hint(head: str, text: str, alias: str | None) -> str:
    """A hint for a template naming something unknown, for the two usual mistakes.

    ``${item}`` in a batch whose items are called something else (``"as": "uid"``), and a
    shell-style ``${HOME}`` meant literally, which needs the ``$${`` escape.
    """
    if alias is not None and head == "item" and alias != "item":
        return f" (this batch names its items '{alias}' in batch.as: write ${{{alias}}})"
    if head.isupper() or head in ("PATH", "HOME", "USER", "PWD"):
        literal = text.replace("${", "$${", 1)
        return f" (for a literal {text}, as in a shell variable, write {literal})"
    return ""
