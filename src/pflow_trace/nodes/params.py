"""Checks a node's resolved params against its JSON Schema, with a one-line message.

A batch runs the same node thousands of times with params that differ only in their values,
so a full JSON Schema pass per item would dominate the per-item cost. Params are validated in
full once per distinct *shape*: the keys, each value's type, whether numbers are negative, zero
or positive, whether strings are empty, and short strings verbatim (methods, modes, names).
That shape decides every constraint our node schemas use (types, required, additional
properties, minLength 1, minimum and exclusiveMinimum 0, short patterns and enums).

``jsonschema`` is imported at the first full check, not with this module: the node base class
imports this one, and commands that run no node (``show``, ``--version``) must not pay for it.
"""

from __future__ import annotations

import threading
from typing import Any

# Node schemas are class-level constants, so their id is a stable cache key.
_VALIDATORS: dict[int, Any] = {}
_VALID_SHAPES: dict[int, set[tuple[Any, ...]]] = {}
_MAX_SHAPES_PER_SCHEMA = 256
_SHORT_STRING = 16
_LONG_STRING = (str, True)
_lock = threading.Lock()


def _value_shape(value: Any) -> Any:
    kind = type(value)  # exact types first: the common values skip the isinstance chain
    if kind is int or kind is float:
        return (kind, (value > 0) - (value < 0))
    if kind is str:
        return value if len(value) <= _SHORT_STRING else _LONG_STRING
    if isinstance(value, str):
        return value if len(value) <= _SHORT_STRING else _LONG_STRING
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return (type(value), (value > 0) - (value < 0))
    if isinstance(value, dict):
        return (dict, tuple([(key, _value_shape(item)) for key, item in value.items()]))
    return type(value)


def params_shape(params: dict[str, Any]) -> tuple[Any, ...]:
    # A list, then a tuple: a generator costs a frame switch per param, on every item.
    return tuple([(key, _value_shape(value)) for key, value in params.items()])


def params_problem(type_name: str, schema: dict[str, Any], params: dict[str, Any]) -> str | None:
    """The one-line problem with the first bad param, or None when the params fit the schema.

    The caller (the node base class) turns a problem into its failure, so this module needs
    nothing from it."""
    key = id(schema)
    shape = params_shape(params)
    known = _VALID_SHAPES.get(key)
    if known is not None and shape in known:
        return None
    import jsonschema  # once per new shape; see the module docstring

    validator = _VALIDATORS.get(key)
    if validator is None:
        validator = jsonschema.validators.validator_for(schema)(schema)
        _VALIDATORS[key] = validator
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is None:
        with _lock:
            shapes = _VALID_SHAPES.setdefault(key, set())
            if len(shapes) < _MAX_SHAPES_PER_SCHEMA:
                shapes.add(shape)
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "params"
    return f"{type_name}: invalid param '{where}': {error.message}"
