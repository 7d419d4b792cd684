"""Benchmark: store snapshots must not make a run quadratic in nodes or output size.

A chain of N ``code`` nodes, each producing a distinct 100 KB string, runs twice in this one
process:

* untraced: ``run_workflow`` with the default ``RunContext`` (no-op tracer, no observers);
* traced: ``traced_run`` with everything a ``pflow-trace run`` does (spans, span table, store
  snapshots before and after every node, the trace file), exporter ``none``.

For N = 50, 100 and 200 (20 and 40 with ``--quick``) it reports wall time (best of 7) and peak
Python memory (tracemalloc, a separate run), the traced/untraced ratios, the trace file size and
the time and file bytes per node. Linear behaviour shows as per-node figures that stay flat as
N grows; quadratic behaviour would double them every time N doubles.

    python benchmarks/bench_snapshots.py [--quick] [--output benchmarks/results/snapshots.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_of, peak_memory_bytes, ratio

OUTPUT_CHARS = 100 * 1024
FULL_SIZES = (50, 100, 200)
QUICK_SIZES = (20, 40)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "snapshots.json"


def workflow(node_count: int) -> dict[str, Any]:
    """N code nodes, each producing its own 100 KB string (distinct objects, distinct text)."""
    code = f"result = ('%06d' % n) * {OUTPUT_CHARS // 6}"
    return {
        "ir_version": "0.1.0",
        "name": f"snapshots-{node_count}",
        "nodes": [
            {
                "id": f"n{index:03d}",
                "type": "code",
                "params": {"code": code, "inputs": {"n": index}},
            }
            for index in range(node_count)
        ],
    }


def measure(node_count: int, repeats: int) -> dict[str, Any]:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.ir.validation import validate_workflow
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.runtime.workflow_run import run_workflow

    wf = validate_workflow(workflow(node_count))
    with tempfile.TemporaryDirectory() as directory:
        trace_path = Path(directory) / "bench.json"
        options = TraceOptions(
            export=resolve_export_settings("none", env={}),
            trace_file=str(trace_path),
            join_env_trace_context=False,
        )

        def untraced() -> None:
            result = run_workflow(wf, {})
            assert result.status == "success", result.error

        def traced() -> None:
            outcome = api.run(wf, {}, options)
            assert outcome.result.status == "success", outcome.result.error

        seconds = {"untraced": best_of(repeats, untraced), "traced": best_of(repeats, traced)}
        peak = {"untraced": peak_memory_bytes(untraced), "traced": peak_memory_bytes(traced)}
        file_bytes = trace_path.stat().st_size
    return {
        "nodes": node_count,
        "seconds": {name: round(value, 4) for name, value in seconds.items()},
        "peak_memory_mb": {name: round(value / 2**20, 2) for name, value in peak.items()},
        "ratios": {
            "time_traced_vs_untraced": ratio(seconds["traced"], seconds["untraced"]),
            "memory_traced_vs_untraced": ratio(peak["traced"], peak["untraced"]),
        },
        "trace_file_bytes": file_bytes,
        "per_node": {
            "untraced_ms": round(seconds["untraced"] / node_count * 1e3, 3),
            "traced_ms": round(seconds["traced"] / node_count * 1e3, 3),
            "tracing_overhead_ms": round(
                (seconds["traced"] - seconds["untraced"]) / node_count * 1e3, 3
            ),
            "trace_file_kb": round(file_bytes / node_count / 1024, 2),
            "extra_memory_kb": round((peak["traced"] - peak["untraced"]) / node_count / 1024, 2),
        },
    }


def growth(rows: list[dict[str, Any]], key: str) -> float:
    """How much a per-node figure grows from the smallest to the largest run (1.0: linear)."""
    first, last = rows[0]["per_node"][key], rows[-1]["per_node"][key]
    return ratio(last, first)


def run(quick: bool = False) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    repeats = 1 if quick else 7
    rows = [measure(size, repeats) for size in sizes]
    size_growth = ratio(sizes[-1], sizes[0])
    largest = rows[-1]
    return {
        "benchmark": "snapshots",
        "output_chars_per_node": OUTPUT_CHARS,
        "python": platform.python_version(),
        "runs": rows,
        # The headline (benchmarks/run.py prints "ratios"): the largest run, and how much the
        # per-node tracing cost grew from the smallest run to it.
        "ratios": {
            "nodes": largest["nodes"],
            **largest["ratios"],
            "per_node_overhead_growth": growth(rows, "tracing_overhead_ms"),
            "per_node_file_growth": growth(rows, "trace_file_kb"),
        },
        # Per-node figures at the largest N over those at the smallest. A linear run keeps
        # these near 1.0; a quadratic one would reach about ``node_count_growth``.
        "node_count_growth": size_growth,
        "per_node_growth": {
            "traced_ms": growth(rows, "traced_ms"),
            "tracing_overhead_ms": growth(rows, "tracing_overhead_ms"),
            "trace_file_kb": growth(rows, "trace_file_kb"),
            "extra_memory_kb": growth(rows, "extra_memory_kb"),
        },
    }


def table(report: dict[str, Any]) -> str:
    header = (
        f"{'nodes':>5}  {'untraced s':>10}  {'traced s':>9}  {'time x':>6}  "
        f"{'untraced MB':>11}  {'traced MB':>9}  {'mem x':>5}  {'file KB':>8}  "
        f"{'ms/node':>7}  {'overhead ms/node':>16}  {'file KB/node':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in report["runs"]:
        lines.append(
            f"{row['nodes']:>5}  {row['seconds']['untraced']:>10.3f}  "
            f"{row['seconds']['traced']:>9.3f}  {row['ratios']['time_traced_vs_untraced']:>6.2f}  "
            f"{row['peak_memory_mb']['untraced']:>11.1f}  {row['peak_memory_mb']['traced']:>9.1f}  "
            f"{row['ratios']['memory_traced_vs_untraced']:>5.2f}  "
            f"{row['trace_file_bytes'] / 1024:>8.1f}  {row['per_node']['traced_ms']:>7.3f}  "
            f"{row['per_node']['tracing_overhead_ms']:>16.3f}  "
            f"{row['per_node']['trace_file_kb']:>12.2f}"
        )
    growth_text = ", ".join(f"{key} x{value}" for key, value in report["per_node_growth"].items())
    lines.append(
        f"per-node growth from {report['runs'][0]['nodes']} to {report['runs'][-1]['nodes']} "
        f"nodes (x{report['node_count_growth']} nodes): {growth_text}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 and 40 nodes, one repeat")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    arguments = parser.parse_args()
    report = run(arguments.quick)
    print(table(report))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written: {arguments.output}")
