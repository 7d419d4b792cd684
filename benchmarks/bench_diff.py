"""Benchmark: ``pflow-trace diff``'s false-alarm rate on A/A pairs, and its time on big traces.

Two figures:

* **False alarms.** ``--pairs`` (default 40) pairs of runs of one small workflow — an ``echo``
  batch of ``--items`` (100) items that each sleep ``--sleep-ms`` (5) — run back to back on this
  machine, each pair compared with the default gate (``--fail-on default``). Nothing changed
  between the two runs of a pair, so every crossed gate is a false alarm, and so is every
  change the diff *calls* (the stricter count). alpha is 0.05 per test; the minimum effects
  are what keep the gate quiet (docs/diff.md).
* **Time.** A diff of two 100,000-item traces (``tests/trace_factory.py``'s large trace, the
  new one 3 % slower) — read both, compare, render JSON — against ``show --json`` on one of
  them (read, summarise, render JSON). Target: the diff costs less than twice ``show --json``
  of both traces, i.e. ratio ``diff / (2 x show)`` < 2. Best of interleaved rounds.

    python benchmarks/bench_diff.py [--quick] [--pairs N] [--output benchmarks/results/diff.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import best_interleaved, positive_int, trace_factory

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "diff.json"
TARGET_RATIO = 2.0
FULL_ITEMS = 100_000
QUICK_ITEMS = 5_000
ROUNDS = 3


def _echo_workflow(items: int, sleep_ms: float) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "a-a",
        "nodes": [
            {"id": "start", "type": "echo", "params": {"value": "go", "delay_ms": sleep_ms}},
            {
                "id": "nap",
                "type": "echo",
                "params": {"value": "${item}", "delay_ms": sleep_ms},
                "batch": {"items": list(range(items))},
            },
        ],
    }


def false_alarms(pairs: int, items: int, sleep_ms: float) -> dict[str, Any]:
    """Run ``pairs`` A/A pairs; count crossed default gates and called changes."""
    import pflow_trace
    from pflow_trace.observe.export_settings import resolve_export_settings

    workflow = pflow_trace.validate_workflow(_echo_workflow(items, sleep_ms))
    gate_failures = 0
    called: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-diff-aa-") as tmp:

        def one_run(name: str) -> Path:
            options = pflow_trace.TraceOptions(
                export=resolve_export_settings("none", env={}),
                trace_file=str(Path(tmp) / f"{name}.json"),
                join_env_trace_context=False,
            )
            outcome = pflow_trace.run(workflow, {}, options)
            assert outcome.trace_path is not None
            return outcome.trace_path

        for pair in range(pairs):
            base, new = one_run(f"{pair}-a"), one_run(f"{pair}-b")
            result = pflow_trace.diff(base, new, fail_on=["default"])
            gate_failures += result.gate_failed
            called += [
                f"pair {pair}: {node.node_id} {m.metric} {m.verdict}"
                for node in result.nodes
                for m in node.metrics
                if m.verdict not in ("no change", "untested")
            ]
    return {
        "pairs": pairs,
        "items": items,
        "sleep_ms": sleep_ms,
        "gate_failures": gate_failures,
        "false_alarm_rate": round(gate_failures / pairs, 4),
        "called_changes": called,
    }


def timing(items: int) -> dict[str, Any]:
    """Best time of a diff of two ``items``-item traces and of ``show --json`` of one."""
    from pflow_trace.report.diff_build import build_diff
    from pflow_trace.report.diff_gate import parse_rules
    from pflow_trace.report.stats import build_summary
    from pflow_trace.tracefile.readers import read_trace

    factory = trace_factory()
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        base = factory.write_trace(Path(tmp) / "base.json", factory.large_trace(items, seed=6))
        slower = factory.large_trace(items, seed=7)
        for record in slower["nodes"][1]["batch_items"]:
            record["duration_ms"] = round(record["duration_ms"] * 1.03, 3)
        new = factory.write_trace(Path(tmp) / "new.json", slower)
        rules = parse_rules(["default"])

        def diff() -> None:
            build_diff([read_trace(base)], [read_trace(new)], rules=rules).to_json()

        def show() -> None:
            build_summary([read_trace(base)]).to_json()

        diff()  # warm up: imports are not what is measured
        best = best_interleaved(ROUNDS, {"diff": diff, "show": show})
    ratio = best["diff"] / (2 * best["show"])
    return {
        "items": items,
        "rounds": ROUNDS,
        "diff_s": round(best["diff"], 4),
        "show_json_one_s": round(best["show"], 4),
        "diff_vs_show_one": round(best["diff"] / best["show"], 3),
        "diff_vs_show_two": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "met": ratio < TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 pairs, 5,000-item traces")
    parser.add_argument("--pairs", type=positive_int, default=40)
    parser.add_argument("--items", type=positive_int, default=100, help="items per A/A run")
    parser.add_argument("--sleep-ms", type=float, default=5.0, help="each item's sleep")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    pairs = 4 if args.quick else args.pairs
    results = {
        "benchmark": "diff",
        "a_a": false_alarms(pairs, args.items, args.sleep_ms),
        "time": timing(QUICK_ITEMS if args.quick else FULL_ITEMS),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    a_a, time_ = results["a_a"], results["time"]
    print(
        f"A/A: {a_a['gate_failures']} of {a_a['pairs']} pairs failed the default gate "
        f"(false-alarm rate {a_a['false_alarm_rate']:.1%}; {len(a_a['called_changes'])} "
        f"change(s) called); diff of two {time_['items']:,}-item traces "
        f"{time_['diff_s'] * 1000:.0f} ms vs show --json of one "
        f"{time_['show_json_one_s'] * 1000:.0f} ms: {time_['diff_vs_show_two']:.2f} x two shows "
        f"({'within' if time_['met'] else 'OVER'} the {TARGET_RATIO} target); "
        f"results in {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
