"""The one percentile definition every ``show`` number uses, per batch and across runs.

It lives apart from the summaries so that the per-run, per-batch and cross-run statistics all
import the same definition, and so that ``docs/show-json.md`` can point at one place.

Percentiles use linear interpolation between closest ranks, the definition numpy uses by
default (``method="linear"``) and ``statistics.quantiles(..., method="inclusive")`` matches:
for sorted values ``x[0..n-1]`` the p-th percentile sits at rank ``h = (n - 1) * p / 100``
and is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``. It never invents a
value outside the data, and p0 / p100 are the minimum / maximum. With one value every
percentile is that value; with none it is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of already sorted values, by linear interpolation."""
    n = len(sorted_values)
    if n == 0:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    rank = (n - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + fraction * (sorted_values[high] - sorted_values[low])


def percentiles(values: Iterable[float], ps: Sequence[float]) -> list[float | None]:
    """Several percentiles of unsorted values, sorting once."""
    ordered = sorted(values)
    return [percentile(ordered, p) for p in ps]
