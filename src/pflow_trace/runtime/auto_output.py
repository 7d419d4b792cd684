"""The output of a workflow that declares none: the one value pflow-cli 0.16 picks.

pflow prints something for every successful run. When a workflow has no ``outputs``, its
``--output-format json`` result is one value found in the store, and pflow-trace gives the
same, so a workflow written for pflow reads the same in both:

1. the first of the keys ``result``, ``response``, ``output``, ``text``, ``data``, ``stdout``
   that holds a value: at the top of the store (an input of that name) first, else in the
   namespace of the last node that wrote one;
2. else the last top-level entry that holds a value (a node's whole namespace, or an input).

"Holds a value" means neither null nor blank text; keys starting with ``_`` are never picked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The keys looked for, in order (pflow's order).
PREFERRED_KEYS = ("result", "response", "output", "text", "data", "stdout")


def _holds_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _last_in_namespaces(shared: Mapping[str, Any], key: str) -> Any:
    found = None
    for name, namespace in shared.items():
        if name.startswith("_") or not isinstance(namespace, Mapping):
            continue
        if key in namespace and _holds_value(namespace[key]):
            found = namespace[key]
    return found


def auto_output(shared: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: value}`` for the value pflow would show, or ``{}`` when the store has none."""
    for key in PREFERRED_KEYS:
        if key in shared and _holds_value(shared[key]):
            return {key: shared[key]}
        value = _last_in_namespaces(shared, key)
        if value is not None:
            return {key: value}
    for key in reversed(list(shared)):
        if not key.startswith("_") and _holds_value(shared[key]):
            return {key: shared[key]}
    return {}
