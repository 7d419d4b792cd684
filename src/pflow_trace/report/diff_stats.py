"""The statistics behind ``pflow-trace diff``: two tests and one bootstrap, written out here.

Why our own: scipy is a heavy dependency for three small formulas, and writing them here
lets ``docs/diff.md`` state exactly what is computed.

* :func:`mann_whitney_u` — is one sample of durations shifted against the other? Two-sided,
  by the normal approximation with the tie correction and a continuity correction; it makes
  no assumption about the shape of the distribution (item times are rarely normal).
* :func:`fisher_exact` — did the share of failed (or retried) items change? Two-sided exact
  test on the 2x2 table, summing every table at most as likely as the one observed.
* :func:`bootstrap_interval` — a confidence interval for the change of a statistic (a
  percentile or a mean) of new against base, from resampled items. A sample of at most
  :data:`EXACT_RESAMPLE_LIMIT` values is resampled item by item; a larger one draws each
  resample's statistic from its large-sample distribution (a percentile's rank is binomial,
  a mean is normal), which gives the same interval in constant time per resample, so a
  100,000-item batch costs no more than a 100-item one.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import mul, ne, sub

from pflow_trace.report.percentiles import percentile

#: Samples up to this size are resampled value by value; larger ones use the shortcut above.
EXACT_RESAMPLE_LIMIT = 200


def mann_whitney_u(base: Sequence[float], new: Sequence[float]) -> float | None:
    """The two-sided p-value that ``base`` and ``new`` come from one distribution.

    ``None`` when either sample is empty (nothing to test); 1.0 when every value is equal.
    """
    n_base, n_new = len(base), len(new)
    if not n_base or not n_new:
        return None
    rank_sum_new, tie_term = _rank_sum_of_new(base, new)
    n = n_base + n_new
    u_new = rank_sum_new - n_new * (n_new + 1) / 2
    mean_u = n_base * n_new / 2
    variance = n_base * n_new / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return 1.0
    distance = abs(u_new - mean_u) - 0.5  # continuity correction
    if distance <= 0:
        return 1.0
    z = distance / math.sqrt(variance)
    return min(1.0, math.erfc(z / math.sqrt(2)))


def _rank_sum_of_new(base: Sequence[float], new: Sequence[float]) -> tuple[float, float]:
    """(sum of the new sample's ranks, sum of t^3 - t over groups of t tied values).

    Tied values share the mean of the ranks they span: a value with ``low`` values below it
    and ``high`` at or below it has the rank (low + 1 + high) / 2. Both counts are binary
    searches in the merged sorted sample, done in C by ``map``, which keeps two 100,000-item
    samples to a fraction of a second.
    """
    merged = sorted([*base, *new])
    new = sorted(new)  # searched in order, the merged list stays in the cache
    lows = sum(map(bisect_left, repeat(merged), new))
    highs = sum(map(bisect_right, repeat(merged), new))
    rank_sum = (lows + len(new) + highs) / 2
    return rank_sum, _tie_term(merged)


def _tie_term(merged: list[float]) -> float:
    """The sum of t^3 - t over runs of t equal values in the sorted ``merged``: where the
    value changes is found in C, so only the runs are visited."""
    changes = list(compress(range(1, len(merged)), map(ne, merged, islice(merged, 1, None))))
    if len(changes) == len(merged) - 1:
        return 0.0  # no two values alike
    bounds = [0, *changes, len(merged)]
    return float(sum(t * t * t - t for t in map(sub, bounds[1:], bounds) if t > 1))


def fisher_exact(base_hits: int, base_total: int, new_hits: int, new_total: int) -> float | None:
    """Two-sided p-value that the share of hits is the same in base and new (Fisher's test).

    ``None`` when a side has no items. Tables at most as likely as the observed one (within
    a relative 1e-7, for rounding) are summed, as R's ``fisher.test`` does.
    """
    if base_total <= 0 or new_total <= 0:
        return None
    hits = base_hits + new_hits
    total = base_total + new_total
    low, high = max(0, hits - new_total), min(hits, base_total)

    def log_probability(base_at: int) -> float:
        return (
            _log_choose(base_total, base_at)
            + _log_choose(new_total, hits - base_at)
            - _log_choose(total, hits)
        )

    observed = log_probability(base_hits)
    limit = observed + math.log1p(1e-7)
    p_value = sum(
        math.exp(log_p) for log_p in map(log_probability, range(low, high + 1)) if log_p <= limit
    )
    return min(1.0, p_value)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass(frozen=True, slots=True)
class Statistic:
    """What a bootstrap resamples: the ``percentile``-th percentile, or the mean when None."""

    percentile: float | None = None

    def of_sorted(self, sorted_values: Sequence[float]) -> float | None:
        if self.percentile is None:
            return sum(sorted_values) / len(sorted_values) if sorted_values else None
        return percentile(sorted_values, self.percentile)


MEAN = Statistic()


def bootstrap_interval(
    base_sorted: Sequence[float],
    new_sorted: Sequence[float],
    statistic: Statistic,
    *,
    resamples: int,
    confidence: float,
    rng: random.Random,
) -> tuple[float, float] | None:
    """The ``confidence`` interval of statistic(new) - statistic(base), by the percentile
    bootstrap; ``None`` when a side has fewer than two values (nothing varies)."""
    if len(base_sorted) < 2 or len(new_sorted) < 2 or resamples < 1:
        return None
    base_draw = _resampler(base_sorted, statistic, rng)
    new_draw = _resampler(new_sorted, statistic, rng)
    differences = sorted(new_draw() - base_draw() for _ in range(resamples))
    tail = (1 - confidence) / 2 * 100
    low = percentile(differences, tail)
    high = percentile(differences, 100 - tail)
    assert low is not None and high is not None
    return low, high


def _resampler(
    sorted_values: Sequence[float], statistic: Statistic, rng: random.Random
) -> Callable[[], float]:
    """A function returning the statistic of one resample of ``sorted_values``."""
    n = len(sorted_values)
    if n <= EXACT_RESAMPLE_LIMIT:

        def exact() -> float:
            drawn = sorted(rng.choices(sorted_values, k=n))
            value = statistic.of_sorted(drawn)
            assert value is not None
            return value

        return exact
    if statistic.percentile is None:
        mean = sum(sorted_values) / n
        squares = sum(map(mul, sorted_values, sorted_values))
        spread = math.sqrt(max(squares - n * mean * mean, 0.0) / (n - 1) / n)
        return lambda: rng.gauss(mean, spread)
    share = statistic.percentile / 100
    centre = share * (n - 1)
    spread = math.sqrt(n * share * (1 - share))

    def by_rank() -> float:
        rank = min(max(rng.gauss(centre, spread), 0.0), n - 1.0)
        low = math.floor(rank)
        high = min(low + 1, n - 1)
        return sorted_values[low] + (rank - low) * (sorted_values[high] - sorted_values[low])

    return by_rank
