"""Executors compared: threads, 2 worker processes and a 2-worker Dask cluster on one machine.

Two batches, everything on (spans, span table, trace file; exporter none):

- **CPU-bound**: ``code`` items of about 5 ms of pure-Python arithmetic each. Threads share one
  interpreter lock, so on two cores the other executors can be up to 2 x faster; the speed-up
  is threads' batch wall time over the executor's.
- **Trivial**: ``code`` items that do nothing (``result = x``): the batch wall time per item is
  what it costs to ship an item to a worker and its spans and result back.

Per-item overhead = (batch wall time - busy time) / items, where busy time is the sum of the
items' own durations (from their spans) spread over the lanes that can run at once (the lanes,
at most the 2 workers): the time per item that goes to shipping it and its reply, not to
running it. Measured this way it does not depend on how fast the machine runs the items'
work, which a shared machine changes from minute to minute. The Dask cluster is started
once (its start-up is reported separately); process lanes and the Dask client are started by
each run, as a user's run does, and are included. Batch wall time is the batch node's own
duration from the trace; runs are interleaved and the best of ``rounds`` is kept. Figures are
given to three significant figures, so a tiny speed-up reads 0.00412, never 0.0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import significant

CPU_CODE = "total = 0\nfor i in range(n):\n    total += i * i % 7\nresult = total"
TRIVIAL_CODE = "result = x"
#: (cpu items, trivial items, rounds)
SIZES_FULL = (2000, 10_000, 1)
SIZES_QUICK = (40, 200, 1)
#: The executors and their lanes (max_concurrent): 2 workers each; Dask also with tasks
#: queued on each worker (8 in flight), which hides the scheduler round trip.
CONTENDERS = (("threads", 2), ("processes", 2), ("dask", 2), ("dask", 8))


def workflow(code: str, items: int, lanes: int, executor: str, n: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "executors",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": code, "inputs": {"x": "${item}", "n": n}},
                "batch": {
                    "items": list(range(items)),
                    "parallel": True,
                    "max_concurrent": lanes,
                    "executor": executor,
                },
            }
        ],
    }


def loop_size_for_ms(target_ms: float) -> int:
    """How many loop turns of ``CPU_CODE`` take ``target_ms`` here (best of 5)."""
    n = 20_000
    code = compile(CPU_CODE, "<bench>", "exec")
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        exec(code, {"n": n})
        best = min(best, time.perf_counter() - started)
    return max(1, int(n * target_ms / (best * 1000)))


def batch_wall_ms(
    wf: dict[str, Any], directory: Path, scheduler: str | None
) -> tuple[float, float]:
    """(the batch node's duration, the sum of its items' durations), from the trace."""
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.observe.export_settings import resolve_export_settings

    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(directory / "run.json"),
        scheduler=scheduler,
        join_env_trace_context=False,
    )
    outcome = api.run(wf, {}, options)
    assert outcome.status == "success", outcome.result.error
    assert outcome.document is not None
    node = outcome.document["nodes"][0]
    return float(node["duration_ms"]), sum(item["duration_ms"] for item in node["batch_items"])


def measure(
    code: str, items: int, n: int, rounds: int, scheduler: str, directory: Path
) -> list[dict[str, Any]]:
    from pflow_trace.ir.validation import validate_workflow

    best: dict[tuple[str, int], tuple[float, float]] = {}
    for _ in range(rounds):
        for executor, lanes in CONTENDERS:
            wf = validate_workflow(workflow(code, items, lanes, executor, n))
            timed = batch_wall_ms(wf, directory, scheduler if executor == "dask" else None)
            key = (executor, lanes)
            best[key] = min(best.get(key, timed), timed)
    threads_ms = best[("threads", 2)][0]
    return [
        case_figures(executor, lanes, items, wall, busy_ms, threads_ms)
        for (executor, lanes), (wall, busy_ms) in best.items()
    ]


def case_figures(
    executor: str, lanes: int, items: int, wall_ms: float, busy_ms: float, threads_ms: float
) -> dict[str, Any]:
    """One contender's figures, to three significant figures (its wall time to four).

    Significant figures, not fixed decimals: on a busy machine a Dask run can take hundreds of
    times the threads' wall time, and a speed-up rounded to two decimals would read 0.0.
    """
    busy_wall_ms = busy_ms / min(lanes, 2)
    return {
        "executor": executor,
        "max_concurrent": lanes,
        "items": items,
        "wall_ms": significant(wall_ms, 4),
        "speedup_vs_threads": significant(threads_ms / wall_ms),
        "mean_item_ms": significant(busy_ms / items),
        "overhead_per_item_us": significant((wall_ms - busy_wall_ms) / items * 1000),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from pflow_trace.runtime.executors.dask_start import start_local_cluster

    cpu_items, trivial_items, rounds = SIZES_QUICK if quick else SIZES_FULL
    n = loop_size_for_ms(5.0)
    started = time.perf_counter()
    cluster = start_local_cluster(2)
    cluster_start_s = time.perf_counter() - started
    try:
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            address = cluster.scheduler_address
            # Warm-up: the fork server and the workers' first imports are not per-run costs.
            measure(TRIVIAL_CODE, 4, n, 1, address, directory)
            cpu = measure(CPU_CODE, cpu_items, n, rounds, address, directory)
            trivial = measure(TRIVIAL_CODE, trivial_items, n, rounds, address, directory)
    finally:
        cluster.close()
    return {
        "benchmark": "executors",
        "cpu_item_ms": 5.0,
        "loop_turns_per_item": n,
        "dask_cluster_start_s": significant(cluster_start_s),
        "cpu_bound": cpu,
        "trivial": trivial,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    json.dump(run(parser.parse_args().quick), sys.stdout, indent=2)
    print()
