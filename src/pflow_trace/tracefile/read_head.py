"""Refuse a file that is plainly not a trace after reading its head, not all of it.

A trace is read whole (one parse, as ``json.load`` does), which for a large garbage file costs
memory in proportion to its size before the parser even gets to say no: a 200 MB file of noise
took gigabytes to reject. So the first megabyte is looked at first. A file whose head is not
UTF-8, does not start like a JSON object, or fails to parse well before the head ends can be no
trace of any supported format, and is refused with the same one-line errors as a small file.
A file smaller than the head is left to the full reader, whose messages are more precise.
"""

from __future__ import annotations

import codecs
import json

from pflow_trace.errors import TraceReadError
from pflow_trace.tracefile.read_common import TRACE_DECODER, cut_off

#: How much of a file is looked at before it is read whole.
HEAD_BYTES = 1 << 20
#: A parse error this close to the end of the head may just be where the head was cut.
_EDGE_CHARS = 64
_KIND_BY_FIRST_CHAR = {"[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}


def sniff_head(name: str) -> None:
    """Raise :class:`TraceReadError` when the file's head already shows it is not a trace.

    ``OSError`` (missing file, a directory) propagates for the caller to word.
    """
    with open(name, "rb") as stream:
        head = stream.read(HEAD_BYTES)
    if len(head) < HEAD_BYTES:
        return
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise TraceReadError(f"{name}: not JSON (the file is not UTF-8 text)") from None
    del head
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        return
    first = text[start]
    if first != "{":
        kind = _KIND_BY_FIRST_CHAR.get(first, "number" if first in "-0123456789" else None)
        if kind is None:
            raise TraceReadError(f"{name}: not JSON (it does not start with a JSON value)")
        raise TraceReadError(f"{name}: unknown trace format (a JSON {kind}, not a trace object)")
    try:
        TRACE_DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if exc.pos < len(text) - _EDGE_CHARS and not cut_off(text, exc):
            raise TraceReadError(
                f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
    except RecursionError:
        raise TraceReadError(f"{name}: nested too deeply to read, not a trace") from None
    except ValueError as exc:
        raise TraceReadError(f"{name}: not JSON ({exc})") from None
