"""Where a batch's item time went: the per-item splits the trace recorded, summed.

Kept apart from ``batch_stats`` because it reads optional fields (traces written before the
split was recorded have none) and because the what-if replay (``what_if.py``) leans on the
same reading of an item: its attempts and retry waits are the work, the rest is the runtime's.
"""

from __future__ import annotations

from pflow_trace.report.summary import TimeSplit
from pflow_trace.tracefile.model import BatchItem


def batch_time_split(items: list[BatchItem]) -> TimeSplit | None:
    """The sums of the items' recorded splits; None when no item has one."""
    lane_wait = attempts = retry_wait = overhead = 0
    covered = 0
    provider_us = 0
    provider_items = 0
    for item in items:
        parts = item.time_us
        if parts is None:
            continue
        covered += 1
        lane_wait += parts[0]
        attempts += parts[1]
        retry_wait += parts[2]
        overhead += parts[3]
        if item.provider_us is not None:
            provider_us += item.provider_us
            provider_items += 1
    if not covered:
        return None
    return TimeSplit(
        items=covered,
        lane_wait_ms=lane_wait / 1000,
        attempts_ms=attempts / 1000,
        retry_wait_ms=retry_wait / 1000,
        overhead_ms=overhead / 1000,
        wall_ms=(lane_wait + attempts + retry_wait + overhead) / 1000,
        provider_ms=provider_us / 1000 if provider_items else None,
        provider_items=provider_items,
    )
