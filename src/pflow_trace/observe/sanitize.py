"""Turns live values into safe, bounded, JSON-ready copies for the trace file and previews.

One pass does everything a value needs before it leaves the process: secret keys and values
are redacted, long strings are cut with a visible marker, bytes become ``<binary: N bytes>``,
long lists and deep nesting are capped, and anything JSON cannot hold becomes its ``repr``.
Item previews can be switched off for regulated data (``--no-previews``); each one is then
:data:`NO_PREVIEW`, so a reader sees that something was left out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from pflow_trace.observe.redaction import REDACTED, Redactor
from pflow_trace.text import (
    MAX_PRINTABLE_INT_BITS,
    describe_long_int,
    json_key,
    safe_repr,
    safe_str,
    truncate_marked,
)

#: What stands for an item preview when previews are off.
NO_PREVIEW = "<preview off>"

_JSON_SCALARS = (bool, int, float, type(None))

DEFAULT_MAX_STRING_CHARS = 2000
DEFAULT_MAX_LIST_ITEMS = 10_000
DEFAULT_MAX_DEPTH = 32
DEFAULT_PREVIEW_CHARS = 120


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return max(1, int(raw))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class SnapshotLimits:
    """How much of a value a trace keeps. Environment variables override the defaults."""

    max_string_chars: int = DEFAULT_MAX_STRING_CHARS
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    max_depth: int = DEFAULT_MAX_DEPTH
    preview_chars: int = DEFAULT_PREVIEW_CHARS

    @classmethod
    def from_env(cls, **overrides: int | None) -> SnapshotLimits:
        values = {
            "max_string_chars": _env_int("PFLOW_TRACE_MAX_STRING", DEFAULT_MAX_STRING_CHARS),
            "max_list_items": _env_int("PFLOW_TRACE_MAX_LIST", DEFAULT_MAX_LIST_ITEMS),
            "max_depth": _env_int("PFLOW_TRACE_MAX_DEPTH", DEFAULT_MAX_DEPTH),
            "preview_chars": _env_int("PFLOW_TRACE_PREVIEW_CHARS", DEFAULT_PREVIEW_CHARS),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


class Sanitizer:
    """Applies :class:`SnapshotLimits` and a :class:`Redactor` to values, returning copies."""

    __slots__ = ("limits", "previews", "redactor")

    def __init__(
        self, redactor: Redactor, limits: SnapshotLimits | None = None, previews: bool = True
    ) -> None:
        self.redactor = redactor
        self.limits = limits or SnapshotLimits()
        #: False: every item preview (span attribute, trace, terminal) is :data:`NO_PREVIEW`.
        self.previews = previews

    def value(self, value: Any, depth: int = 0) -> Any:
        """A safe copy of ``value``; made twice when it taught the redactor a secret.

        A value hidden by key (``access_token`` in parsed JSON) is learned during the copy, so
        a second copy hides it where it appeared earlier in the same value (the raw body).
        """
        if depth:
            return self._value(value, depth)
        version = self.redactor.version
        safe = self._value(value, 0)
        return self._value(value, 0) if self.redactor.version != version else safe

    def _value(self, value: Any, depth: int) -> Any:
        # Exact types first: a batch node's snapshot sanitizes up to 10,000 results, each a
        # dict of strings and numbers, and the isinstance chain below cost most of it.
        kind = type(value)
        if kind is str:
            return truncate_marked(self.redactor.text(value), self.limits.max_string_chars)
        if kind is int:
            if value.bit_length() > MAX_PRINTABLE_INT_BITS:
                return describe_long_int(value)
            return REDACTED if self.redactor.is_secret_number(value) else value
        if value is None or kind is bool:
            return value
        if kind is dict and depth < self.limits.max_depth:
            return self._dict(value, depth)
        return self._other(value, depth)

    def _dict(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        redactor = self.redactor
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and redactor.is_secret_key(key):
                redactor.learn_hidden(item)
                copy[key] = REDACTED
            else:
                copy[key if key.__class__ is str else json_key(key)] = self._value(item, depth + 1)
        return copy

    def _other(self, value: Any, depth: int) -> Any:
        """Every value the exact-type checks of :meth:`_value` did not settle."""
        if isinstance(value, str):
            return truncate_marked(self.redactor.text(value), self.limits.max_string_chars)
        if isinstance(value, _JSON_SCALARS):
            if isinstance(value, float) and not math.isfinite(value):  # NaN, inf: not JSON
                return repr(value)
            if value.__class__ is int and value.bit_length() > MAX_PRINTABLE_INT_BITS:
                return describe_long_int(value)
            if self.redactor.is_secret_number(value):
                return REDACTED
            return value
        if depth >= self.limits.max_depth:
            return f"<max depth {self.limits.max_depth} reached>"
        if isinstance(value, dict):
            return self._dict(value, depth)
        if isinstance(value, (list, tuple)):
            limit = self.limits.max_list_items
            kept = [self._value(item, depth + 1) for item in value[:limit]]
            if len(value) > limit:
                kept.append(f"<{len(value) - limit} more items>")
            return kept
        if isinstance(value, (bytes, bytearray, memoryview)):
            return f"<binary: {len(value)} bytes>"
        return truncate_marked(self.redactor.text(safe_repr(value)), self.limits.max_string_chars)

    def text(self, text: str) -> str:
        """A redacted, length-capped message (errors, status descriptions)."""
        return truncate_marked(self.redactor.text(text), self.limits.max_string_chars)

    def preview(self, value: Any) -> str:
        """A short one-line rendering of a batch item for spans, the trace and the terminal."""
        if not self.previews:
            return NO_PREVIEW
        if isinstance(value, str):
            text = self.redactor.text(value)
        elif self.redactor.is_secret_number(value):
            text = REDACTED
        elif value.__class__ is int and value.bit_length() > MAX_PRINTABLE_INT_BITS:
            text = describe_long_int(value)
        elif isinstance(value, _JSON_SCALARS):
            text = (
                "null"
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
        else:
            import json

            safe = self.value(value)
            text = json.dumps(safe, ensure_ascii=False, separators=(",", ":"), default=safe_str)
        text = text.replace("\n", "\\n")
        return truncate_marked(text, self.limits.preview_chars)
