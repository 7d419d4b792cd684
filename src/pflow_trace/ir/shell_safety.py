"""Warns about values pasted into shell commands where the shell would run them as code.

A ``shell`` node's ``command`` is template-resolved like any param: ``${...}`` is replaced by
the value's text, verbatim, before ``/bin/sh`` parses it. pflow workflows rely on that, so it
stays; but a value that comes from a batch item or another node's output is data the workflow
author did not write, and pasted unquoted (or inside double quotes, where ``$(...)`` and
backquotes still run) a value such as ``x; rm -rf ~`` is executed. The safe way is the node's
``env`` param: the value reaches the command as an environment variable, never as code.

These are warnings, not problems: ``validate`` prints them and exits 0; ``run`` prints them on
stderr and runs. Inputs are not flagged (the person running the workflow typed them), and a
reference inside single quotes is not flagged (see ``docs/security.md`` for its one limit).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pflow_trace.ir.templates import (
    Interpolation,
    Reference,
    TemplateSyntaxError,
    is_root_key,
    parse_string,
)

UNQUOTED = "unquoted"
DOUBLE_QUOTED = "inside double quotes"
SINGLE_QUOTED = "inside single quotes"

_NOT_ENV_CHARS = re.compile(r"[^A-Z0-9]+")


def quote_states(parts: tuple[str | Reference, ...]) -> Iterator[tuple[Reference, str]]:
    """Each reference of a command with the shell quoting it sits in, read left to right.

    Follows ``sh`` quoting: nothing is special inside single quotes; a backslash escapes the
    next character outside them; double quotes end at the next unescaped double quote.
    """
    state = UNQUOTED
    escaped = False
    for part in parts:
        if isinstance(part, Reference):
            yield part, state
            escaped = False
            continue
        for char in part:
            if escaped:
                escaped = False
            elif state == SINGLE_QUOTED:
                state = UNQUOTED if char == "'" else state
            elif char == "\\":
                escaped = True
            elif state == DOUBLE_QUOTED:
                state = UNQUOTED if char == '"' else state
            elif char == "'":
                state = SINGLE_QUOTED
            elif char == '"':
                state = DOUBLE_QUOTED


def env_name(reference: Reference) -> str:
    """``${item.name}`` → ``ITEM_NAME``: the variable the warning suggests."""
    words = [str(part) for part in reference.path if isinstance(part, str)]
    return _NOT_ENV_CHARS.sub("_", "_".join(words).upper()).strip("_") or "VALUE"


def _origin(reference: Reference, alias: str | None, node_ids: set[str]) -> str | None:
    """Where a referenced value comes from, when it is data the author did not write."""
    head = reference.head
    if head == alias:
        return "a batch item"
    if head in node_ids and not is_root_key(head):
        return f"output of node '{head}'"
    return None


def _warning(path: str, reference: Reference, origin: str, state: str) -> str:
    name = env_name(reference)
    risk = (
        "a value with spaces, ; | & or $(...) runs as shell code"
        if state == UNQUOTED
        else '$(...) or backquotes in the value still run, and a " ends the quotes'
    )
    return (
        f"{path}: {reference.text} ({origin}) is pasted into the shell command {state}: "
        f'{risk}. Pass it through env instead: "env": {{"{name}": "{reference.text}"}} '
        f'and write "${name}" in the command'
    )


def shell_injection_warnings(workflow: dict[str, Any]) -> list[str]:
    """One warning per unsafe ``${...}`` in a ``shell`` node's ``command``, with its JSON path."""
    nodes = [node for node in workflow.get("nodes") or [] if isinstance(node, dict)]
    node_ids = {node["id"] for node in nodes if isinstance(node.get("id"), str)}
    warnings: list[str] = []
    for index, node in enumerate(nodes):
        params = node.get("params")
        command = params.get("command") if isinstance(params, dict) else None
        if node.get("type") != "shell" or not isinstance(command, str):
            continue
        batch = node.get("batch")
        alias = batch.get("as", "item") if isinstance(batch, dict) else None
        try:
            compiled = parse_string(command)
        except TemplateSyntaxError:
            continue  # validation reports it
        parts = compiled.parts if isinstance(compiled, Interpolation) else (compiled,)
        for reference, state in quote_states(tuple(parts)):
            origin = _origin(reference, alias, node_ids)
            if origin is not None and state != SINGLE_QUOTED:
                path = f"nodes[{index}].params.command"
                warnings.append(_warning(path, reference, origin, state))
    return warnings
