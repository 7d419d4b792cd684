"""Conversions from the units trace files record (ms floats, ISO 8601 times) to Unix ns.

Both the span-table decoder and the tree synthesized from a pflow trace place spans in
absolute nanoseconds; they convert the same way, here, so a time never rounds two ways.
"""

from __future__ import annotations

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_ns(milliseconds: float) -> int:
    """Milliseconds (as traces record durations) to whole nanoseconds, rounded."""
    return round(milliseconds * 1_000_000)


def iso_to_ns(text: str) -> int | None:
    """An ISO 8601 time as exact Unix ns (µs precision); a time without an offset is UTC.

    Integer arithmetic on the timedelta, not ``timestamp()``: a float would lose the
    microseconds of a present-day time. ``None`` when ``text`` is not ISO 8601.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
