"""``${...}`` templates: parsed once at compile time, resolved per run against the store.

Grammar: ``${name}``, ``${node.key}``, ``${node.key.sub[0].field}``; ``$${`` is a literal ``${``.
As in pflow, an index may itself be a template (``${rows[${__index__}]}``), ``??`` falls back to
the next operand when one cannot be resolved (``${a.x ?? b.y ?? "none"}``; the last operand may
be a JSON literal), and a path that walks on into a string holding a JSON object or array parses
it (``${node.stdout.field}``). A param that is exactly one template keeps the value's type; a
template inside a longer string interpolates as pflow does (see :func:`to_text`).
Parsing happens once per distinct string, so the per-item path never touches a regular
expression.
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

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_FALLBACK = "??"
#: How deep templates may nest as computed indexes (``${a[${b[${c}]}]}`` is 3). Parsing recurses
#: once per level and rescans what is inside, so an unbounded depth was a ``RecursionError`` and
#: quadratic time; no real template comes near this.
MAX_TEMPLATE_NESTING = 16

PathPart = Any  # str (a key), int (an index) or a Reference (an index computed per run)


def is_root_key(key: str) -> bool:
    """``__name__`` keys are shared by the whole run rather than owned by one node."""
    return len(key) > 4 and key.startswith("__") and key.endswith("__")


@dataclass(frozen=True, slots=True)
class Literal:
    """A JSON literal operand of ``??`` (``"none"``, ``0``, ``[]``)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${...}``: its source text, its parsed path and the ``??`` operands after it."""

    text: str
    path: tuple[PathPart, ...]
    fallbacks: tuple[tuple[PathPart, ...] | Literal, ...] = ()

    @property
    def head(self) -> str:
        return str(self.path[0])

    def operands(self) -> Iterator[Reference]:
        """Every path this template reads, one reference each (fallbacks and nested indexes).

        For analysis only (which names a node reads): resolve the template itself, not these.
        """
        paths = [self.path, *(f for f in self.fallbacks if not isinstance(f, Literal))]
        for path in paths:
            # An operand of ``??`` keeps the fallbacks, so a check can see it may be absent.
            yield self if path is self.path else Reference(self.text, path, self.fallbacks)
            for part in path:
                if isinstance(part, Reference):
                    yield from part.operands()


@dataclass(frozen=True, slots=True)
class Interpolation:
    """A string with templates inside: literal pieces and references, in order."""

    parts: tuple[str | Reference, ...]


class TemplateSyntaxError(ValueError):
    """A ``${...}`` whose path does not parse."""


class TemplateNestingError(TemplateSyntaxError):
    """Templates nested deeper than :data:`MAX_TEMPLATE_NESTING` as indexes."""


def parse_path(expression: str, depth: int = 0) -> tuple[PathPart, ...]:
    """``node.key.sub[0].field`` → ``("node", "key", "sub", 0, "field")``.

    An index written as a template (``rows[${__index__}]``) becomes a :class:`Reference` part;
    ``depth`` is how many templates this path is already nested in.
    """
    expression = expression.strip()
    parts: list[PathPart] = []
    position = 0
    expect_name = True
    while position < len(expression):
        if expression[position] == "." and not expect_name and parts:
            position += 1
            expect_name = True
            continue
        if expression.startswith("[${", position) and parts:
            end = _template_end(expression, position + 1)
            if end < 0 or not expression.startswith("]", end):
                raise TemplateSyntaxError(f"invalid template path '${{{expression}}}'")
            if depth >= MAX_TEMPLATE_NESTING:
                raise TemplateNestingError(
                    f"templates nested more than {MAX_TEMPLATE_NESTING} deep as indexes"
                )
            inner = expression[position + 1 : end]
            parts.append(parse_expression(inner, inner[2:-1], depth + 1))
            expect_name = False
            position = end + 1
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


def _template_end(text: str, start: int) -> int:
    """Index just past the ``}`` closing the ``${`` at ``start``; -1 when it is never closed.

    Nested ``${...}`` (a computed index) and quoted ``??`` literals may contain braces.
    """
    depth, position, quote = 0, start, ""
    while position < len(text):
        char = text[position]
        if quote:
            if char == "\\":
                position += 1
            elif char == quote:
                quote = ""
        elif char in "\"'" and depth:
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    return -1


def _split_fallbacks(expression: str) -> list[str]:
    """Split on ``??`` outside quotes and nested templates."""
    pieces, current, depth, quote, position = [], [], 0, "", 0
    while position < len(expression):
        char = expression[position]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif expression.startswith(_FALLBACK, position) and depth == 0:
            pieces.append("".join(current))
            current, position = [], position + len(_FALLBACK)
            continue
        current.append(char)
        position += 1
    pieces.append("".join(current))
    return pieces


def _operand(text: str, whole: str, depth: int) -> tuple[PathPart, ...] | Literal:
    """One ``??`` operand. A JSON literal wins over a same-spelled name, as in pflow:
    ``${a.b ?? true}`` falls back to the boolean, not to an input called ``true``."""
    text = text.strip()
    try:
        return Literal(json.loads(text))
    except (ValueError, RecursionError):  # RecursionError: a literal nested past the limit
        pass
    try:
        return parse_path(text, depth)
    except TemplateNestingError:
        raise  # not a literal either: say why
    except TemplateSyntaxError:
        pass
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return Literal(text[1:-1])
    raise TemplateSyntaxError(f"invalid template '${{{whole}}}'")


def parse_expression(text: str, expression: str, depth: int = 0) -> Reference:
    """``${a.b ?? c ?? "x"}`` (``text``) with its inner ``expression`` → a :class:`Reference`."""
    if _FALLBACK not in expression:
        return Reference(text, parse_path(expression, depth))
    pieces = _split_fallbacks(expression)
    if len(pieces) == 1:
        return Reference(text, parse_path(expression, depth))
    first = _operand(pieces[0], expression, depth)
    if isinstance(first, Literal):
        raise TemplateSyntaxError(f"invalid template '${{{expression}}}': starts with a literal")
    rest = tuple(_operand(piece, expression, depth) for piece in pieces[1:])
    if any(isinstance(operand, Literal) for operand in rest[:-1]):
        raise TemplateSyntaxError(f"invalid template '${{{expression}}}': a literal must be last")
    return Reference(text, first, rest)


@lru_cache(maxsize=4096)
def parse_string(text: str) -> str | Reference | Interpolation:
    """A plain string, one whole-value reference, or an interpolation (cached per string)."""
    if "${" not in text:
        return text
    parts: list[str | Reference] = []
    position = 0
    literal_start = 0
    while True:
        start = text.find("${", position)
        if start < 0:
            break
        end = _template_end(text, start + 1)
        if end < 0:
            break
        escaped = start > 0 and text[start - 1] == "$"
        literal = text[literal_start : start - 1 if escaped else start]
        if escaped:  # "$${...}" is an escaped literal "${...}"
            literal += text[start:end]
        if literal:
            parts.append(literal)
        if not escaped:
            parts.append(parse_expression(text[start:end], text[start + 2 : end - 1]))
        position = literal_start = end
    if literal_start < len(text):
        parts.append(text[literal_start:])
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
    """Every path a compiled value reads, in order (each ``??`` operand and nested index too)."""
    if isinstance(compiled, Reference):
        yield from compiled.operands()
    elif isinstance(compiled, Interpolation):
        for part in compiled.parts:
            if isinstance(part, Reference):
                yield from part.operands()
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
    """Resolve ``reference``: its path, else each ``??`` operand in turn."""
    if not reference.fallbacks:
        return _walk(reference, reference.path, store)
    try:
        return _walk(reference, reference.path, store)
    except UnresolvedTemplate as miss:
        last = miss
    for operand in reference.fallbacks:
        if isinstance(operand, Literal):
            return operand.value
        try:
            return _walk(reference, operand, store)
        except UnresolvedTemplate as miss:
            last = miss
    raise last


def _parsed_json(text: str) -> Any:
    """A string holding a JSON object or array, parsed; anything else stays as it is."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def _walk(reference: Reference, path: tuple[PathPart, ...], store: Mapping[str, Any]) -> Any:
    """Walk ``path`` through the store; dict keys and list indexes only."""
    current: Any = store
    for part in path:
        if isinstance(current, str) and current is not store:
            current = _parsed_json(current)
        if isinstance(part, Reference):
            part = lookup(part, store)
            if isinstance(part, str) and not isinstance(current, Mapping):
                part = int(part) if part.isdigit() else part
            if not isinstance(part, (str, int)):
                raise UnresolvedTemplate(reference, str(part), [])
        if isinstance(part, int) and not isinstance(part, bool):
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
    """How a value reads inside a longer string, as pflow-cli 0.16 renders it.

    Strings as they are; ``None`` as nothing (an optional input left out reads as ``""``);
    booleans as Python spells them (``True``, ``False``); dicts and lists as JSON; any other
    value as ``str()``, except that every zero (``0.0`` too) reads ``0``.
    """
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (int, float)) and value == 0:
        return "0"
    return str(value)


def json_list_or_value(value: Any) -> Any:
    """A string holding a JSON array, parsed; any other value as it is.

    Lets a batch run over JSON text (a shell step printing an array), as pflow does.
    """
    if isinstance(value, str):
        parsed = _parsed_json(value)
        if isinstance(parsed, list):
            return parsed
    return value


def scope_value(compiled: Any, value: Any) -> Any:
    """How a node input reads in its node's other params: a whole-value template's JSON object
    or array text parsed (pflow's rule for ``inputs``), any other value as it is."""
    if isinstance(compiled, Reference) and isinstance(value, str):
        parsed = _parsed_json(value)
        return parsed if isinstance(parsed, (dict, list)) else value
    return value


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
