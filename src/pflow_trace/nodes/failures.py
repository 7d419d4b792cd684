"""How node types word a failure that quotes what a program, file or server produced.

The quote is one line cut to its tail (:func:`pflow_trace.text.one_line` with ``keep="tail"``):
the end of a program's output is usually where it says what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pflow_trace.nodes.base import NodeFailure
from pflow_trace.text import one_line

#: How much of an unparseable document a "not valid JSON" failure quotes.
JSON_EXCERPT_CHARS = 200


def parse_json_or_fail(
    text: str, complaint: str, outputs: Mapping[str, Any], *, position: bool = True
) -> Any:
    """``json.loads(text)``, or a :class:`NodeFailure` quoting the tail of ``text``.

    The message reads ``<complaint> (<parser's reason>[ at line L column C]): <excerpt>``;
    ``outputs`` go on the failure so a trace still shows what the node produced.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if position else ""
        quoted = one_line(text, JSON_EXCERPT_CHARS, keep="tail") or "<empty>"
        raise NodeFailure(f"{complaint} ({exc.msg}{where}): {quoted}", outputs=outputs) from None
