"""Keeps secrets out of trace files, spans and anything printed.

Two rules, applied by one object everywhere a value leaves the process:
- a value stored under a key that names a secret (password, token, api_key, ...) at any depth
  becomes ``"<redacted>"``;
- every occurrence of a known secret value (an input declared ``"sensitive": true``) inside
  any string becomes ``"<redacted>"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

REDACTED = "<redacted>"

SECRET_KEY_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
)
_SECRET_KEY = re.compile("|".join(re.escape(word) for word in SECRET_KEY_WORDS), re.IGNORECASE)


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (case-insensitive substring match)."""
    return _SECRET_KEY.search(key) is not None


_TOKEN_COUNT = re.compile(r"tokens$", re.IGNORECASE)


def is_token_count(key: str, value: Any) -> bool:
    """True for a number under a key that counts tokens: an exception to :func:`is_secret_key`.

    ``input_tokens``, ``max_tokens`` and ``total_tokens`` hold an LLM call's token counts, not
    credentials; a number there is kept (a number equal to a secret value is still redacted by
    value). A string or anything else under such a key is redacted as before.
    """
    if _TOKEN_COUNT.search(key) is None:
        return False
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


class Redactor:
    """Redacts by key name and by known secret values; cheap when there are no values."""

    __slots__ = ("_pattern", "_secret_set", "secret_values")

    def __init__(self, secret_values: Iterable[Any] = ()) -> None:
        values = {str(value) for value in secret_values if value is not None and str(value)}
        self.secret_values = tuple(sorted(values, key=len, reverse=True))
        self._secret_set = frozenset(values)
        self._pattern = (
            re.compile("|".join(re.escape(value) for value in self.secret_values))
            if self.secret_values
            else None
        )

    def text(self, text: str) -> str:
        """Replace every known secret value inside ``text``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def is_secret_number(self, value: Any) -> bool:
        """True for a number equal to a secret value (a sensitive numeric input, e.g. a PIN)."""
        return (
            bool(self._secret_set)
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and str(value) in self._secret_set
        )

    def value(self, value: Any) -> Any:
        """A redacted copy of a JSON-like value (dicts, lists, strings); others unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: REDACTED
                if isinstance(key, str) and is_secret_key(key) and not is_token_count(key, item)
                else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        if self.is_secret_number(value):
            return REDACTED
        return value


NO_REDACTION = Redactor()
