"""Runs every benchmark, writes their results as JSON and prints a short table.

    python benchmarks/run.py            # full sizes (a few minutes)
    python benchmarks/run.py --quick    # tiny sizes: checks the scripts still work (CI)

Every figure is a ratio against a baseline measured in the same run, because these machines
are shared and noisy; no benchmark asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BENCHMARKS = (
    "bench_per_item",
    "bench_parallel",
    "bench_show",
    "bench_trace_file",
    "bench_snapshots",
    "bench_startup",
    "bench_report",
    "bench_executors",
    "bench_checkpoint",
)


def headline(result: dict[str, Any]) -> str:
    """One line per benchmark: the figures its target is about."""
    name = result.get("benchmark", "?")
    if name == "per_item":
        us = result["per_item_us"]
        r = result["ratios"]
        return (
            f"plain {us['plain_loop']}us  untraced {us['runtime_untraced']}us  traced "
            f"{us['runtime_traced']}us  otlp {us['runtime_traced_otlp']}us  sdk "
            f"{us['bare_sdk_spans']}us  -> traced/untraced {r['traced_vs_untraced']} "
            f"(target <= 2.5), otlp/(untraced+sdk) {r['otlp_vs_untraced_plus_sdk']} "
            "(target <= 1.25)"
        )
    if name == "parallel":
        return (
            "  ".join(
                f"{c['items']}x{c['delay_ms']}ms@{c['max_concurrent']}: eff {c['efficiency']} "
                f"in-flight {c['max_in_flight']}"
                for c in result["cases"]
            )
            + " (target eff >= 0.97 @20, >= 0.85 @100)"
        )
    if name == "startup":
        r = result["ratios"]
        return f"--version {r['version']}x  show {r['show']}x python -c pass (target <= 4)"
    if name == "trace_file":
        return (
            f"{result['bytes_per_item_excluding_results']} B/item, write "
            f"{result['write_share_of_run']:.1%} of run, memory x{result['peak_memory_ratio']}"
        )
    if name == "report":
        r, paint = result["ratios"], result["browser"]
        painted = (
            f"first paint {paint['first_contentful_paint_ms']} ms, waterfall "
            f"{paint['waterfall_drawn_ms']} ms, redraw {paint['redraw_ms']} ms"
            if "skipped" not in paint
            else f"browser skipped: {paint['skipped']}"
        )
        return (
            f"{r['time']}x show --json (target <= 2), page {r['size']}x the trace "
            f"(target <= 3); {painted}"
        )
    if name == "executors":
        return "  ".join(
            f"{kind} {c['executor']}@{c['max_concurrent']}: x{c['speedup_vs_threads']} "
            f"{c['overhead_per_item_us']}us/item"
            for kind in ("cpu_bound", "trivial")
            for c in result[kind]
        )
    if name == "checkpoint":
        us, size = result["per_item_us"], result["size"]
        return (
            f"traced {us['traced_no_checkpoint']}us/item, with checkpoint "
            f"{us['traced_with_checkpoint']}us/item: +{result['checkpoint_extra']:.1%} "
            f"(target < 10%); {size['items']:,} items: {size['checkpoint_bytes']:,} B "
            f"({size['bytes_per_item']} B/item), read back in {size['read_back_s']} s"
        )
    interesting = {k: v for k, v in result.items() if k in ("ratios", "ratio", "met")}
    return json.dumps(interesting)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the pflow-trace benchmarks.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for CI)")
    parser.add_argument("--only", action="append", help="run only these (e.g. bench_parallel)")
    parser.add_argument("--output", default=str(HERE / "results" / "latest.json"))
    arguments = parser.parse_args()
    selected = arguments.only or list(BENCHMARKS)
    results: list[dict[str, Any]] = []
    for module_name in selected:
        module = importlib.import_module(module_name)
        started = time.perf_counter()
        result = module.run(quick=arguments.quick)
        result["elapsed_s"] = round(time.perf_counter() - started, 2)
        results.append(result)
        print(f"{result.get('benchmark', module_name):<12} {headline(result)}", flush=True)
    report = {
        "quick": arguments.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "results": results,
    }
    output = Path(arguments.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
