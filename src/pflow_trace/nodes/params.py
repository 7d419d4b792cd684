"""Checks a node's resolved params against its JSON Schema, with a one-line message."""

from __future__ import annotations

from typing import Any

import jsonschema

from pflow_trace.nodes.base import NodeFailure

# Node schemas are class-level constants, so their id is a stable cache key.
_VALIDATORS: dict[int, Any] = {}


def check_params(type_name: str, schema: dict[str, Any], params: dict[str, Any]) -> None:
    """Raise :class:`NodeFailure` naming the first bad param; compiled validators are cached."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = jsonschema.validators.validator_for(schema)(schema)
        _VALIDATORS[id(schema)] = validator
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "params"
    raise NodeFailure(f"{type_name}: invalid param '{where}': {error.message}")
