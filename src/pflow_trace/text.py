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


#: C0 and C1 control characters (and DEL): what a terminal acts on instead of printing.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group(0)
    return _NAMED_CONTROLS.get(char) or f"\\x{ord(char):02x}"


def terminal_safe(text: Any) -> str:
    """``text`` with every control character shown as an escape (``\\n``, ``\\e``, ``\\x07``).

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

    Levels below ``max_depth`` become one marker string, and NaN and infinities become their
    names, because JSON has no such numbers.
    """
    return _capped(value, max_depth, f"<nested deeper than {max_depth} levels>")


#: Python refuses to print an int of more than 4,300 digits (``sys.get_int_max_str_digits``);
#: past this many bits one may have that many, so it is described instead of printed.
MAX_PRINTABLE_INT_BITS = 14_000


def describe_long_int(value: int) -> str:
    """What is shown instead of an int too long to print."""
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"<integer of about {digits} digits>"


def _capped(value: Any, levels_left: int, marker: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, int) and value.bit_length() > MAX_PRINTABLE_INT_BITS:
        return describe_long_int(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    if levels_left <= 0:
        return marker
    if isinstance(value, dict):
        return {key: _capped(item, levels_left - 1, marker) for key, item in value.items()}
    return [_capped(item, levels_left - 1, marker) for item in value]
