"""The "where the time went" block of a batch in ``show``: its item time split in parts."""

from __future__ import annotations

from pflow_trace.report.blocks import Fields
from pflow_trace.report.summary import TimeSplit
from pflow_trace.text import format_duration_ms


def _part(value_ms: float, wall_ms: float) -> str:
    share = f" ({value_ms / wall_ms * 100:.1f}%)" if wall_ms > 0 else ""
    return f"{format_duration_ms(value_ms)}{share}"


def time_split_fields(split: TimeSplit) -> Fields:
    """The four parts, each with its share of the items' wall time, and the provider's
    latency (part of the attempts) when items reported one."""
    wall = split.wall_ms
    rows: list[tuple[str, str]] = [
        ("lane wait", _part(split.lane_wait_ms, wall)),
        ("attempts", _part(split.attempts_ms, wall)),
        ("retry waits", _part(split.retry_wait_ms, wall)),
        ("overhead", _part(split.overhead_ms, wall)),
    ]
    if split.provider_ms is not None:
        rows.append(
            (
                "provider",
                f"{format_duration_ms(split.provider_ms)} reported by {split.provider_items} "
                f"item(s), inside attempts",
            )
        )
    rows.append(("items wall", f"{format_duration_ms(wall)} over {split.items} item(s)"))
    return Fields(rows)
