"""Benchmark: ``pflow-trace show`` on a 100,000-item trace against plain ``json.load``.

The issue's budget: summarising a trace may cost at most about twice loading that file with
``json.load``, in time and in peak memory. Both sides run in this one process on the same
file, best of five interleaved rounds for time, so the ratio is measured in one run on one
machine and needs no absolute numbers. "show" here is everything the command does after
parsing arguments: read (parse + model), build the summary, render JSON, render plain text
and the terminal table.

The trace is generated with ``tests/trace_factory.py`` (the same builder the tests use) in a
temporary directory: a parallel batch of 100,000 items (10,000 with ``--quick``), shared-store
snapshots capped at 10,000 list entries like the runtime's. It has no ``otel.spans`` table,
which a real run writes (about five span rows per item) and ``show`` never reads: without it
``json.load`` has the least to do, so this is the hard case for the ratio.

    python benchmarks/bench_show.py [--quick] [--output benchmarks/results/show.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import trace_factory

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "show.json"
TARGET_RATIO = 2.0
FULL_ITEMS = 100_000
QUICK_ITEMS = 10_000
REPEATS = 5


def _json_load(path: Path) -> None:
    with open(path, encoding="utf-8") as stream:
        json.load(stream)


def _show(path: Path) -> None:
    from pflow_trace.report.stats import build_summary
    from pflow_trace.report.terminal import render_text
    from pflow_trace.tracefile.readers import read_trace

    summary = build_summary([read_trace(path)])
    summary.to_json()
    render_text(summary, terminal=False)
    render_text(summary, terminal=True, color=True, width=120)


def _best_times(actions: list[Callable[[Path], None]], path: Path) -> list[tuple[float, float]]:
    """Best (wall seconds, CPU seconds) of each action over ``REPEATS`` interleaved rounds.

    Interleaving puts both sides through the same moments of a busy machine; CPU time (this
    process only) is what the work costs, wall time is what a person waits.
    """
    best = [(float("inf"), float("inf")) for _ in actions]
    for _ in range(REPEATS):
        for position, action in enumerate(actions):
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            action(path)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[position] = (min(best[position][0], wall), min(best[position][1], cpu))
    return best


def _peak_bytes(action: Callable[[Path], None], path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(quick: bool = False) -> dict[str, Any]:
    """Generate the trace, measure both sides, and return the figures as a dict."""
    factory = trace_factory()
    items = QUICK_ITEMS if quick else FULL_ITEMS
    with tempfile.TemporaryDirectory(prefix="bench-show-") as tmp:
        path = factory.write_trace(Path(tmp) / "large.json", factory.large_trace(items))
        _show(path)  # warm up: imports (rich included) are not what is measured
        (load_s, load_cpu_s), (show_s, show_cpu_s) = _best_times([_json_load, _show], path)
        load_peak = _peak_bytes(_json_load, path)
        show_peak = _peak_bytes(_show, path)
        file_bytes = path.stat().st_size
    ratio = show_s / load_s
    cpu_ratio = show_cpu_s / load_cpu_s
    memory_ratio = show_peak / load_peak
    return {
        "benchmark": "show",
        "items": items,
        "file_bytes": file_bytes,
        "repeats": REPEATS,
        "json_load_s": round(load_s, 4),
        "show_s": round(show_s, 4),
        "ratio": round(ratio, 3),
        "json_load_cpu_s": round(load_cpu_s, 4),
        "show_cpu_s": round(show_cpu_s, 4),
        "json_load_peak_bytes": load_peak,
        "show_peak_bytes": show_peak,
        "ratios": {
            "time": round(ratio, 3),
            "cpu": round(cpu_ratio, 3),
            "memory": round(memory_ratio, 3),
        },
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO and memory_ratio <= TARGET_RATIO,
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITEMS:,} items")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    verdict = "within" if results["met"] else "OVER"
    ratios = results["ratios"]
    print(
        f"show on {results['items']:,} items ({results['file_bytes'] / 1e6:.1f} MB): "
        f"json.load {results['json_load_s'] * 1000:.0f} ms, "
        f"show {results['show_s'] * 1000:.0f} ms, "
        f"time ratio {ratios['time']:.2f} (CPU {ratios['cpu']:.2f}), "
        f"memory ratio {ratios['memory']:.2f} "
        f"({verdict} the {TARGET_RATIO} target); results in {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
