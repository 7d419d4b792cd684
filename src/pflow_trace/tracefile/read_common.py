"""What every trace reader shares: format names, known versions, and tolerant field access.

The readers (one JSON document, JSON lines, batch records) take values from files written by
other programs and versions, so a field of the wrong type reads as missing instead of failing.
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMAT_OURS = "pflow-trace"
FORMAT_PFLOW = "pflow"
FORMAT_PFLOW_JSONL = "pflow-jsonl"

#: The newest version of the single-object format this reader knows (ours and pflow's).
KNOWN_JSON_VERSION = (1, 2, 0)
#: The newest JSON-lines marker (``"pflow_trace": "jsonl/N"``) and format major version known.
KNOWN_JSONL_MARKER = 1
KNOWN_JSONL_MAJOR = 2

NUMBER_CLASSES = (int, float)
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
FAILED_NODE_STATUSES = frozenset({"failed", "error", "interrupted", "cancelled", "aborted"})


def parse_version(value: Any) -> tuple[int, ...] | None:
    """``"1.2.0"`` -> ``(1, 2, 0)``; a suffix such as ``-rc1`` is ignored; junk is ``None``."""
    if not isinstance(value, str):
        return None
    match = _VERSION.match(value)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(0).split("."))


def json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


#: Numbers beyond this are not timings or counts any writer produces; they read as missing, so
#: arithmetic on them cannot overflow a float or take seconds on a 4,000-digit integer.
NUMBER_LIMIT = 1e18


def as_number(value: Any) -> float | None:
    """A finite number of sane size, else None (a NaN or infinite duration reads as missing)."""
    if value.__class__ in NUMBER_CLASSES and -NUMBER_LIMIT < value < NUMBER_LIMIT:
        return value  # NaN fails the comparison too
    return None


def as_int(value: Any) -> int | None:
    return value if value.__class__ is int and -NUMBER_LIMIT < value < NUMBER_LIMIT else None


def _constant_as_null(constant: str) -> None:
    """``NaN``, ``Infinity``, ``-Infinity``: Python's parser takes them, JSON has no such
    numbers; a trace holding one reads it as a missing value."""
    return None


#: The one parser of trace text (both formats): like ``json.loads``, but NaN and infinities
#: read as null. Very deep nesting raises RecursionError, which the readers turn into an error.
TRACE_DECODER = json.JSONDecoder(parse_constant=_constant_as_null)


def error_text(value: Any) -> str | None:
    """Errors are strings in every known format; a structured one keeps its message."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        message = value.get("message") or value.get("error")
        if isinstance(message, str):
            return message
    return json.dumps(value, default=str)


#: What may be left after the parser's error position when the text was merely cut short: a
#: partial number or a partial true / false / null.
PARTIAL_TOKEN = re.compile(r"-?[0-9.eE+-]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def cut_off(text: str, exc: json.JSONDecodeError) -> bool:
    """True when the JSON is fine as far as it goes and simply ends too early.

    The parser stops either at the very end, inside a string that never closes, or at the
    start of a token the cut left incomplete (``12.``, ``tru``); anything else is damage.
    """
    if exc.msg.startswith("Unterminated string"):
        return True
    rest = text[exc.pos :].strip()
    return PARTIAL_TOKEN.fullmatch(rest) is not None
