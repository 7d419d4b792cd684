"""Workflow inputs: command-line ``name=value`` pairs, declared types, defaults, required."""

from __future__ import annotations

import json
from typing import Any

from pflow_trace.errors import UsageError
from pflow_trace.text import nesting_problem, terminal_safe

_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def parse_assignments(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["n=3", "name=ada"]`` → ``{"n": 3, "name": "ada"}``: JSON when it parses, else text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"input '{terminal_safe(pair)}' is not NAME=VALUE")
        problem: str | None = None
        try:
            value = json.loads(raw, parse_constant=_not_json)
            problem = nesting_problem(value)
        except ValueError:
            value = raw  # text, also NaN and Infinity, which JSON has no numbers for
        except RecursionError:
            problem = "nested too deeply to read"
        if problem is not None:
            raise UsageError(f"input '{terminal_safe(name.strip())}': {problem}")
        values[name.strip()] = value
    return values


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def resolve_inputs(workflow: dict[str, Any], provided: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults and check types and required inputs before anything runs."""
    declared: dict[str, dict[str, Any]] = workflow.get("inputs") or {}
    unknown = sorted(set(provided) - set(declared))
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise UsageError(f"unknown input(s) {', '.join(unknown)} (declared: {names})")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in declared.items():
        if name in provided:
            value = provided[name]
        elif "default" in spec:
            value = spec["default"]
        elif spec.get("required", True):
            problems.append(f"missing required input '{name}'")
            continue
        else:
            continue
        expected = spec.get("type")
        if expected == "string" and not isinstance(value, str):
            value = json.dumps(value) if not isinstance(value, str) else value
        checks = _TYPE_CHECKS.get(expected or "")
        if checks and (
            not isinstance(value, checks)
            or (expected in ("number", "integer") and isinstance(value, bool))
        ):
            problems.append(f"input '{name}' must be {expected}, got {json.dumps(value)}")
            continue
        values[name] = value
    if problems:
        raise UsageError("; ".join(problems))
    return values


def sensitive_values(workflow: dict[str, Any], values: dict[str, Any]) -> list[Any]:
    """The values of inputs declared ``"sensitive": true``: redacted wherever they appear."""
    declared: dict[str, dict[str, Any]] = workflow.get("inputs") or {}
    return [
        values[name] for name, spec in declared.items() if spec.get("sensitive") and name in values
    ]
