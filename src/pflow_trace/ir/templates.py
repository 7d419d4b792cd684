"""``${...}`` templates: parsed once at compile time, resolved per run against the store.

Grammar: ``${name}``, ``${node.key}``, ``${node.key.sub[0].field}``; ``$${`` is a literal ``${``.
A param that is exactly one template keeps the value's type; a template inside a longer string
interpolates (strings as they are, everything else as JSON). Parsing happens once per distinct
string, so the per-item path never touches a regular expression.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pflow_trace.errors import TemplateError

_TEMPLATE = re.compile(r"\$(\$?)\{([^{}]*)\}")
_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")

PathPart = str | int


def is_root_key(key: str) -> bool:
    """``__name__`` keys are shared by the whole run rather than owned by one node."""
    return len(key) > 4 and key.startswith("__") and key.endswith("__")


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${...}``: its source text and its parsed path (names and list indexes)."""

    text: str
    path: tuple[PathPart, ...]

    @property
    def head(self) -> str:
        return str(self.path[0])


@dataclass(frozen=True, slots=True)
class Interpolation:
    """A string with templates inside: literal pieces and references, in order."""

    parts: tuple[str | Reference, ...]


class TemplateSyntaxError(ValueError):
    """A ``${...}`` whose path does not parse."""


def parse_path(expression: str) -> tuple[PathPart, ...]:
    """``node.key.sub[0].field`` → ``("node", "key", "sub", 0, "field")``."""
    expression = expression.strip()
    parts: list[PathPart] = []
    position = 0
    expect_name = True
    while position < len(expression):
        if expression[position] == "." and not expect_name and parts:
            position += 1
            expect_name = True
            continue
        match = _PATH_PART.match(expression, position)
        if match is None or (match.group(1) is not None and not expect_name):
            raise TemplateSyntaxError(f"invalid template path '${{{expression}}}'")
        if match.group(1) is not None:
            parts.append(match.group(1))
        else:
            if not parts:
                raise TemplateSyntaxError(f"invalid template path '${{{expression}}}'")
            parts.append(int(match.group(2)))
        expect_name = False
        position = match.end()
    if not parts or expect_name:
        raise TemplateSyntaxError(f"invalid template path '${{{expression}}}'")
    return tuple(parts)


@lru_cache(maxsize=4096)
def parse_string(text: str) -> str | Reference | Interpolation:
    """A plain string, one whole-value reference, or an interpolation (cached per string)."""
    if "${" not in text:
        return text
    parts: list[str | Reference] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        literal = text[position : match.start()]
        if match.group(1):  # "$${...}" is an escaped literal "${...}"
            literal += "${" + match.group(2) + "}"
        else:
            if literal:
                parts.append(literal)
            literal = ""
            parts.append(Reference(match.group(0), parse_path(match.group(2))))
        if literal:
            parts.append(literal)
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    merged: list[str | Reference] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    if len(merged) == 1:
        return merged[0]
    return Interpolation(tuple(merged))


def compile_value(value: Any) -> Any:
    """Parse every string inside ``value`` (dicts and lists walked) into template objects."""
    if isinstance(value, str):
        return parse_string(value)
    if isinstance(value, dict):
        return {key: compile_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compile_value(item) for item in value]
    return value


def has_templates(compiled: Any) -> bool:
    return next(iter_references(compiled), None) is not None


def iter_references(compiled: Any) -> Iterator[Reference]:
    """Every reference inside a compiled value, in order."""
    if isinstance(compiled, Reference):
        yield compiled
    elif isinstance(compiled, Interpolation):
        for part in compiled.parts:
            if isinstance(part, Reference):
                yield part
    elif isinstance(compiled, dict):
        for item in compiled.values():
            yield from iter_references(item)
    elif isinstance(compiled, list):
        for item in compiled:
            yield from iter_references(item)


class UnresolvedTemplate(LookupError):
    """Raised by :func:`lookup`; carries the names that were available where the walk stopped."""

    def __init__(self, reference: Reference, missing: PathPart, available: list[str]) -> None:
        super().__init__(reference.text)
        self.reference = reference
        self.missing = missing
        self.available = available

    def describe(self) -> str:
        closest = difflib.get_close_matches(str(self.missing), self.available, n=3, cutoff=0.4)
        hint = closest or sorted(self.available)[:8]
        label = "closest" if closest else "available"
        names = ", ".join(hint) if hint else "none"
        return (
            f"cannot resolve {self.reference.text}: '{self.missing}' not found ({label}: {names})"
        )


def lookup(reference: Reference, store: Mapping[str, Any]) -> Any:
    """Walk ``reference.path`` through the store; dict keys and list indexes only."""
    current: Any = store
    for part in reference.path:
        if isinstance(part, int):
            if isinstance(current, (list, tuple)) and -len(current) <= part < len(current):
                current = current[part]
                continue
            size = len(current) if isinstance(current, (list, tuple)) else 0
            raise UnresolvedTemplate(reference, part, [f"[{i}]" for i in range(min(size, 5))])
        if isinstance(current, Mapping) and part in current:
            current = current[part]
            continue
        available = [str(key) for key in current] if isinstance(current, Mapping) else []
        raise UnresolvedTemplate(reference, part, available)
    return current


def to_text(value: Any) -> str:
    """How a value reads inside a longer string: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def resolve(compiled: Any, store: Mapping[str, Any]) -> Any:
    """Resolve a compiled value; raises :class:`UnresolvedTemplate` on the first miss."""
    if isinstance(compiled, Reference):
        return lookup(compiled, store)
    if isinstance(compiled, Interpolation):
        return "".join(
            part if isinstance(part, str) else to_text(lookup(part, store))
            for part in compiled.parts
        )
    if isinstance(compiled, dict):
        return {key: resolve(item, store) for key, item in compiled.items()}
    if isinstance(compiled, list):
        return [resolve(item, store) for item in compiled]
    return compiled


def resolve_param(node_id: str, param: str, compiled: Any, store: Mapping[str, Any]) -> Any:
    """Resolve one param, turning a miss into a :class:`TemplateError` naming node and param."""
    try:
        return resolve(compiled, store)
    except UnresolvedTemplate as miss:
        raise TemplateError(f"node '{node_id}' param '{param}': {miss.describe()}") from None
