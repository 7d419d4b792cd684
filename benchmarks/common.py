"""Shared helpers for the benchmarks: best-of-N timing, peak memory, a count argument."""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def best_of(repeats: int, action: Callable[[], Any]) -> float:
    """The fastest of ``repeats`` runs, in seconds: the least disturbed by a noisy machine."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def peak_memory_bytes(action: Callable[[], Any]) -> int:
    """Peak traced Python allocation while ``action`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1, else argparse's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("inf")


def significant(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant figures.

    Rounding to a fixed number of decimals turns a small figure into a misleading 0.0 (a
    speed-up of 0.004 x on a busy machine printed as "x0.0"); significant figures keep it.
    """
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def best_interleaved(rounds: int, actions: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Best time of each action over ``rounds`` rounds that run every action once, in turn.

    Interleaving spreads a slow spell of a shared machine over all contenders instead of
    letting it land on one, which is what a ratio between them needs.
    """
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(rounds):
        for name, action in actions.items():
            gc.collect()
            started = time.perf_counter()
            action()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def trace_factory() -> Any:
    """The tests' trace builder; ``tests/`` is not a package, so it is put on the path."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import trace_factory as factory

    return factory
