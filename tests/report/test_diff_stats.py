"""The statistics behind ``diff``, checked against values published for R and scipy."""

from __future__ import annotations

import random

import pytest

from pflow_trace.report.diff_stats import (
    EXACT_RESAMPLE_LIMIT,
    MEAN,
    Statistic,
    bootstrap_interval,
    fisher_exact,
    mann_whitney_u,
)


def test_mann_whitney_separated_samples() -> None:
    # scipy.stats.mannwhitneyu(..., method="asymptotic") gives 0.012185780355344818
    assert mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(0.0121857803553)


def test_mann_whitney_corrects_for_ties() -> None:
    # scipy: mannwhitneyu([1, 2, 2, 3], [2, 3, 3, 4], method="asymptotic").pvalue
    assert mann_whitney_u([1, 2, 2, 3], [2, 3, 3, 4]) == pytest.approx(0.17203370892182296)


def test_mann_whitney_is_symmetric_and_handles_degenerate_samples() -> None:
    base, new = [1.0, 5.0, 3.0, 9.0], [2.0, 8.0, 7.0, 10.0, 11.0]
    assert mann_whitney_u(base, new) == pytest.approx(mann_whitney_u(new, base))
    assert mann_whitney_u([2.0] * 5, [2.0] * 7) == 1.0
    assert mann_whitney_u([], [1.0]) is None


def test_fisher_exact_matches_r() -> None:
    # fisher.test(matrix(c(3, 1, 1, 3), 2)): the lady tasting tea
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857142857)
    # fisher.test(matrix(c(1, 9, 11, 3), 2)) (the Wikipedia example)
    assert fisher_exact(1, 10, 11, 14) == pytest.approx(0.002759456)
    assert fisher_exact(0, 100, 0, 100) == 1.0
    assert fisher_exact(0, 0, 1, 5) is None


def test_fisher_exact_one_new_failure_is_not_significant() -> None:
    assert fisher_exact(0, 100, 1, 100) == pytest.approx(1.0)
    assert fisher_exact(0, 100, 20, 100) < 0.001


@pytest.mark.parametrize("size", [50, EXACT_RESAMPLE_LIMIT + 1_000])
def test_bootstrap_interval_covers_a_known_shift(size: int) -> None:
    rng = random.Random(7)
    base = sorted(rng.uniform(10, 20) for _ in range(size))
    new = sorted(value + 5 for value in base)  # exactly 5 slower
    for statistic in (Statistic(50), Statistic(95), MEAN):
        low, high = bootstrap_interval(
            base, new, statistic, resamples=500, confidence=0.95, rng=random.Random(1)
        )
        assert low < 5 < high
        assert low > 0  # the shift is far outside the noise


def test_bootstrap_interval_needs_two_values_per_side() -> None:
    rng = random.Random(0)
    assert (
        bootstrap_interval([1.0], [2.0, 3.0], MEAN, resamples=10, confidence=0.9, rng=rng) is None
    )


def test_bootstrap_interval_is_repeatable_with_a_seed() -> None:
    base, new = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 5.0, 6.0]
    first = bootstrap_interval(base, new, MEAN, resamples=100, confidence=0.9, rng=random.Random(3))
    again = bootstrap_interval(base, new, MEAN, resamples=100, confidence=0.9, rng=random.Random(3))
    assert first == again
