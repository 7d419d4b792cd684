"""Workflow inputs: command-line ``name=value`` pairs, piped stdin, declared types, defaults,
required.

Also what the run's redaction knows before anything runs (:func:`run_redactor`): the leaves of
sensitive inputs, inputs whose names name a secret, and secrets written into node params.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, time
from typing import Any

from pflow_trace.errors import UsageError
from pflow_trace.observe.redaction import Redactor, leaf_values
from pflow_trace.text import json_text, nesting_problem, terminal_safe

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
        values[name.strip()] = _json_or_text(name.strip(), raw)
    return values


def _json_or_text(name: str, raw: str) -> Any:
    """The value ``raw`` stands for: JSON when it parses, else the text itself."""
    problem: str | None = None
    try:
        value = json.loads(raw, parse_constant=_not_json)
        problem = nesting_problem(value)
    except ValueError:
        value = raw  # text, also NaN and Infinity, which JSON has no numbers for
    except RecursionError:
        problem = "nested too deeply to read"
    if problem is not None:
        raise UsageError(f"input '{terminal_safe(name)}': {problem}")
    return value


def stdin_input(workflow: dict[str, Any]) -> str | None:
    """The input piped stdin fills (pflow's ``stdin: true``; validation allows one), if any."""
    declared = workflow.get("inputs")
    for name, spec in declared.items() if isinstance(declared, dict) else ():
        if isinstance(spec, dict) and spec.get("stdin") is True:
            return str(name)
    return None


def with_piped_text(
    workflow: dict[str, Any], provided: dict[str, Any], piped: str | None
) -> dict[str, Any]:
    """``provided`` plus the ``stdin: true`` input's value from piped text, as pflow does.

    A value given as NAME=VALUE wins. One trailing newline is dropped (``echo`` adds it);
    nothing piped, or only that newline, gives no value, so a required input is reported
    missing. A ``string`` input takes the text as it is; any other type reads it as a
    NAME=VALUE value is read, JSON when it parses, so ``cat data.json |`` fills an object.
    """
    name = stdin_input(workflow)
    if name is None or piped is None or name in provided:
        return provided
    text = piped.removesuffix("\n")
    if not text:
        return provided
    if workflow["inputs"][name].get("type") == "string":
        return {**provided, name: text}
    return {**provided, name: _json_or_text(name, text)}


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
            piped = " (give it as NAME=VALUE or pipe it to stdin)" if spec.get("stdin") else ""
            problems.append(f"missing required input '{name}'{piped}")
            continue
        else:
            values[name] = None  # as in pflow: "" inside text, null as a whole value
            continue
        expected = spec.get("type")
        if expected == "string" and not isinstance(value, str):
            # A YAML date is its ISO text; anything else its JSON (keys JSON cannot hold too).
            value = value.isoformat() if isinstance(value, (date, time)) else json_text(value)
        checks = _TYPE_CHECKS.get(expected or "")
        if checks and (
            not isinstance(value, checks)
            or (expected in ("number", "integer") and isinstance(value, bool))
        ):
            # A sensitive value is never echoed back, not even in an error message.
            got = "a value of another type" if spec.get("sensitive") else json_text(value)
            problems.append(f"input '{name}' must be {expected}, got {got}")
            continue
        values[name] = value
    if problems:
        raise UsageError("; ".join(problems))
    return values


def sensitive_names(workflow: dict[str, Any]) -> frozenset[str]:
    """The names of inputs declared ``"sensitive": true``."""
    declared: dict[str, dict[str, Any]] = workflow.get("inputs") or {}
    return frozenset(name for name, spec in declared.items() if spec.get("sensitive"))


def sensitive_values(workflow: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """Every leaf string and number of each sensitive input, whatever its type, as text.

    An array or object is not one secret but many: each item of a sensitive list used as
    ``batch.items`` must be hidden on its own wherever it appears.
    """
    return [
        leaf
        for name in sorted(sensitive_names(workflow))
        if name in values
        for leaf in leaf_values(values[name])
    ]


def _node_params(workflow: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for node in workflow.get("nodes") or []:
        params = node.get("params") if isinstance(node, dict) else None
        if isinstance(params, dict):
            yield params


def run_redactor(
    workflow: dict[str, Any], values: dict[str, Any], key_patterns: Iterable[str] = ()
) -> Redactor:
    """The run's redactor, knowing every secret the workflow and its inputs reveal up front."""
    redactor = Redactor(
        sensitive_values(workflow, values),
        key_patterns=key_patterns,
        secret_root_keys=sensitive_names(workflow),
    )
    for name, value in values.items():
        if redactor.is_secret_root_key(name):
            redactor.learn_hidden(value)
    # Secrets written into the workflow itself (a literal Authorization header, a password in
    # a URL); a template is skipped, what it resolves to is learned when it is hidden.
    probe = Redactor(key_patterns=key_patterns)
    for params in _node_params(workflow):
        probe.value(params)
    redactor.learn(value for value in probe.secret_values if "${" not in value)
    return redactor
