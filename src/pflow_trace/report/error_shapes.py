"""The shape of an error message: what stays when the values that differ per item are taken out.

200 items failing with ``ValueError: bad value 17``, ``... 18`` and so on are one problem, not
200: ``show`` groups failed items by the shape of their message (``ValueError: bad value <n>``)
and shows one real message of each group as its example. URLs, paths, UUIDs, hex strings and
numbers are the values taken out, each replaced by a placeholder naming what it was.
"""

from __future__ import annotations

import re

_VALUE = re.compile(
    r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+)"
    r"|(?P<id>\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b)"
    r"|(?P<path>(?<![\w.<>/-])(?:~|\.{1,2})?/[^\s'\"<>:,;()\[\]]+)"
    r"|(?P<hex>\b0[xX][0-9A-Fa-f]+\b|\b(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])"
    r"[0-9A-Fa-f]{8,}\b)"
    r"|(?P<n>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
)


def _placeholder(match: re.Match[str]) -> str:
    return f"<{match.lastgroup}>"


def error_shape(message: str) -> str:
    """``GET https://x/1 failed after 3.2 s`` -> ``GET <url> failed after <n> s``."""
    return _VALUE.sub(_placeholder, message)
