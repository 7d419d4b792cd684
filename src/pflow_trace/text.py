"""Small text helpers every view shares, so one value reads the same in every output.

Each of these existed several times with slightly different rules (one cut the head, one the
tail, two formatted durations differently). There is now one of each; a view that needs a
variant passes an argument instead of writing its own.
"""

from __future__ import annotations

import json
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
