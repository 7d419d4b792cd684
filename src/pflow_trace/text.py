"""Small text helpers every view shares, so one value reads the same in every output.

Each of these existed several times with slightly different rules (one cut the head, one the
tail, two formatted durations differently). There is now one of each; a view that needs a
variant passes an argument instead of writing its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

ELLIPSIS = "…"


def one_line(text: str | None, limit: int, keep: str = "head") -> str:
    """``text`` as one line of at most ``limit`` characters, cut with an ellipsis.

    Line breaks become `` | `` so a multi-line message stays readable on one line. ``keep="tail"``
    keeps the end instead of the start: a program's last lines usually say what went wrong.
    """
    lines = (" ".join(part.split()) for part in (text or "").splitlines())
    flat = " | ".join(line for line in lines if line)
    if len(flat) <= limit:
        return flat
    if keep == "tail":
        return ELLIPSIS + flat[-(limit - 1) :]
    return flat[: limit - 1] + ELLIPSIS


def truncate_marked(text: str, limit: int) -> str:
    """Cut ``text`` after ``limit`` characters and say how much was dropped (for trace files)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{ELLIPSIS}<truncated {len(text) - limit} chars>"


def preview(value: Any, limit: int) -> str:
    """A one-line preview of an item: strings as they are, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def format_duration_ms(value: float | None, unknown: str = "-") -> str:
    """Milliseconds for people: ``0.53 ms``, ``207.3 ms``, ``1.24 s``, ``2m 03.4s``."""
    if value is None:
        return unknown
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{int(minutes)}m {seconds:04.1f}s"


def json_path(parts: Iterable[str | int], root: str = "$") -> str:
    """``["nodes", 2, "batch"]`` -> ``$.nodes[2].batch`` (``root=""``: ``nodes[2].batch``)."""
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def hex_span_id(span_id: int) -> str | None:
    """A span id as the 16 lower-case hex digits OpenTelemetry prints; None for 0 (no span)."""
    return format(span_id, "016x") if span_id else None


def hex_trace_id(trace_id: int) -> str | None:
    """A trace id as 32 lower-case hex digits; None for 0 (no trace)."""
    return format(trace_id, "032x") if trace_id else None


#: C0 and C1 control characters (and DEL): what a terminal acts on instead of printing; and
#: lone surrogates, which no terminal can be sent (see :func:`escape_surrogates`).
_CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group(0)
    if char >= "\ud800":
        return f"\\u{ord(char):04x}"
    return _NAMED_CONTROLS.get(char) or f"\\x{ord(char):02x}"


def terminal_safe(text: Any) -> str:
    """``text`` with every control character shown as an escape (``\\n``, ``\\e``, ``\\x07``),
    and every lone surrogate as :func:`escape_surrogates` shows it (``\\udcff``).

    Values printed to a terminal come from workflows, traces and the commands a run started;
    an escape sequence among them could retitle the window or rewrite the screen, and a line
    break could forge a line of our own output. Every terminal renderer passes what it prints
    from such a source through here; the trace files keep the values as they were.
    """
    text = text if isinstance(text, str) else str(text)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_control, text)


#: How deep nesting may go in anything read from a user: workflows, inputs, trace files.
#: Python's recursion limit (about 1,000 frames) is shared by every recursive step that later
#: walks the value (validation, templates, redaction, JSON encoding), so the cap sits far below it.
MAX_NESTING_DEPTH = 100


def nesting_problem(value: Any, max_depth: int = MAX_NESTING_DEPTH) -> str | None:
    """Why ``value`` cannot be handled safely (too deeply nested, NaN or infinite), or None.

    Iterative, so it never recurses itself, and it stops at the first problem found.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            return f"{current!r} is not a JSON number"
        if isinstance(current, dict):
            children: Iterable[Any] = current.values()
        elif isinstance(current, (list, tuple)):
            children = current
        else:
            continue
        if depth >= max_depth:
            return f"nested more than {max_depth} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def cap_depth(value: Any, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """A copy of a JSON-like value that is safe to encode and print.

    Levels below ``max_depth`` become one marker string; NaN and infinities become their
    names, because JSON has no such numbers; keys JSON cannot hold (tuples, bytes, dates, an
    int too long to print) become text; and any other value becomes its text
    (:func:`json_fallback`), so ``json.dumps`` of the copy cannot fail.
    """
    return _capped(value, max_depth, f"<nested deeper than {max_depth} levels>")


#: Python refuses to print an int of more than 4,300 digits (``sys.get_int_max_str_digits``);
#: past this many bits one may have that many, so it is described instead of printed.
MAX_PRINTABLE_INT_BITS = 14_000


def describe_long_int(value: int) -> str:
    """What is shown instead of an int too long to print."""
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"<integer of about {digits} digits>"


def safe_str(value: Any) -> str:
    """``str(value)``, or a description when that raises (an object whose ``__str__`` or
    ``__repr__`` is broken must not take an output down with it)."""
    try:
        return str(value)
    except Exception:  # any failure of foreign code is described, not raised
        return f"<{type(value).__name__} that cannot be shown>"


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a description when that raises."""
    try:
        return repr(value)
    except Exception:  # any failure of foreign code is described, not raised
        return f"<{type(value).__name__} that cannot be shown>"


def json_fallback(value: Any) -> Any:
    """What a value JSON has no type for is written as (``json.dumps``'s ``default``): bytes
    as ``<binary: N bytes>``, like the sanitizer; a date as its ISO text; anything else as its
    text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<binary: {len(value)} bytes>"
    if isinstance(value, (list, tuple, dict)):
        return value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        try:
            return str(isoformat())
        except Exception:  # fall back to its text
            pass
    return safe_str(value)


def json_key(key: Any) -> str:
    """A dict key as JSON writes it; keys JSON cannot hold become their text."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return describe_long_int(key) if key.bit_length() > MAX_PRINTABLE_INT_BITS else str(key)
    if isinstance(key, float):
        return json.dumps(key) if math.isfinite(key) else repr(key)
    if isinstance(key, (bytes, bytearray)):  # a key is short: shown, not only counted
        return safe_str(key)
    text = json_fallback(key)
    return text if isinstance(text, str) else safe_str(key)


def _capped(value: Any, levels_left: int, marker: str) -> Any:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return describe_long_int(value) if value.bit_length() > MAX_PRINTABLE_INT_BITS else value
    if not isinstance(value, (dict, list, tuple)):
        return json_fallback(value)
    if levels_left <= 0:
        return marker
    if isinstance(value, dict):
        return {
            json_key(key): _capped(item, levels_left - 1, marker) for key, item in value.items()
        }
    return [_capped(item, levels_left - 1, marker) for item in value]


# -- text we did not write: lone surrogates ---------------------------------------------------

#: A UTF-16 surrogate on its own. Python holds one in a ``str`` after decoding bytes that were
#: not UTF-8 with ``surrogateescape`` (``os.listdir``, ``sys.argv``, environment variables: byte
#: ``0xff`` becomes ``\udcff``), or when a program wrote one (``"\ud800"``). It is not Unicode
#: text, and no UTF-8 writer (a file, a pipe, protobuf) can write it.
_SURROGATE = re.compile("[\ud800-\udfff]")

#: A JSON string token, quotes included (escaped quotes and backslashes inside it).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _surrogate_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def _surrogate_escape_in_json(match: re.Match[str]) -> str:
    return f"\\\\u{ord(match.group(0)):04x}"


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as the six characters ``\\udcff``.

    The one rule every writer follows (trace file, span rows, OTLP, JSON output, terminal,
    HTML): the escape keeps what the value held (``\\udcff`` was the byte ``0xff`` of a file
    name that was not UTF-8) and is visible where U+FFFD would hide it.
    """
    if text.isascii():  # constant time: CPython knows whether a str is ASCII
        return text
    return _SURROGATE.sub(_surrogate_escape, text)


def escape_surrogates_in_json(json_text: str) -> tuple[str, int]:
    """JSON text with every string holding a lone surrogate escaped as by
    :func:`escape_surrogates`, and how many strings were.

    ``json_text`` comes from ``json.dumps(..., ensure_ascii=False)`` and holds whole strings
    only: a lone surrogate can then stand only inside a string, so the result is exactly the
    text of the value with its strings escaped first (the backslash is escaped for JSON,
    ``"\\\\udcff"``). A writer tries the plain text first and calls this only when encoding
    it failed, so text without surrogates costs nothing extra.
    """
    escaped = 0

    def escape_string(match: re.Match[str]) -> str:
        nonlocal escaped
        token = match.group(0)
        if token.isascii() or _SURROGATE.search(token) is None:
            return token
        escaped += 1
        return _SURROGATE.sub(_surrogate_escape_in_json, token)

    return _JSON_STRING.sub(escape_string, json_text), escaped


def escape_surrogates_in_place(value: Any) -> int:
    """Escape every string of a parsed JSON value (keys too) in place; how many were changed.

    Iterative, so a value as deep as the parser allows is walked without recursing.
    """
    escaped = 0
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, list):
            for position, item in enumerate(current):
                if isinstance(item, str):
                    fixed = escape_surrogates(item)
                    if fixed != item:
                        current[position] = fixed
                        escaped += 1
                elif isinstance(item, (list, dict)):
                    stack.append(item)
        elif isinstance(current, dict):
            items = list(current.items())
            changed = False
            fixed_items = []
            for key, item in items:
                fixed_key = escape_surrogates(key) if isinstance(key, str) else key
                if fixed_key != key:
                    changed = True
                    escaped += 1
                if isinstance(item, str):
                    fixed = escape_surrogates(item)
                    if fixed != item:
                        escaped += 1
                        item = fixed
                        changed = True
                elif isinstance(item, (list, dict)):
                    stack.append(item)
                fixed_items.append((fixed_key, item))
            if changed:
                current.clear()
                current.update(fixed_items)
    return escaped


def not_unicode_warning(count: int, where: str) -> str:
    """The one line that says values were escaped (a trace warning, a line on stderr)."""
    noun = "value" if count == 1 else "values"
    verb = "holds" if count == 1 else "hold"
    return f"{count} {noun} in {where} {verb} text that is not valid Unicode; escaped as \\uXXXX"


def json_text(value: Any, indent: int | None = None, compact: bool = False) -> str:
    """``value`` as strict JSON text that any UTF-8 writer can write, whatever it holds.

    The one encoder of what the commands print as JSON: NaN, infinities, ints too long to
    print, keys JSON cannot hold (tuples, bytes, dates), values without a JSON type and
    objects whose ``repr`` raises all become text (:func:`cap_depth`), and lone surrogates
    are escaped (:func:`escape_surrogates`). The common value takes one C encoder call.
    """
    separators = (",", ":") if compact else None
    try:
        text = json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            default=json_fallback,
            indent=indent,
            separators=separators,
        )
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(
            cap_depth(value),
            ensure_ascii=False,
            allow_nan=False,
            indent=indent,
            separators=separators,
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = escape_surrogates_in_json(text)[0]
    return text
