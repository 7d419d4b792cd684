"""How close ``show --what-if max_concurrent=N`` comes to actually running with N lanes.

A batch of 40 ``echo`` items sleeping 20-50 ms (fixed by a seed) is run once with 4 lanes
(the recording), then with each compared lane count; the recording is replayed with
``--what-if max_concurrent=N`` and the prediction set against the real batch wall time.
Rounds alternate the lane counts so a busy machine weighs on all of them alike; the error per
lane count compares the median prediction with the median real wall time over the rounds
(sleeping items on a shared, busy machine stretch by tens of percent from one run to the next,
so one round against one run measures the machine more than the prediction). Each round's
own error is listed too.

Target: every median-to-median error within 10 %.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RECORDED_LANES = 4
COMPARED_LANES = (1, 2, 8, 16)
TARGET_ERROR = 0.10


def workflow(lanes: int, seed: int = 7) -> dict[str, Any]:
    chosen = random.Random(seed)
    items = [{"n": index, "ms": chosen.randint(20, 50)} for index in range(40)]
    return {
        "ir_version": "0.1.0",
        "name": "what-if",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "batch": {"items": items, "parallel": lanes > 1, "max_concurrent": lanes},
                "params": {"value": "${item.n}", "delay_ms": "${item.ms}"},
            }
        ],
    }


def run_batch(directory: Path, lanes: int, name: str) -> tuple[Path, float]:
    """Run the batch with ``lanes`` lanes; (its trace, the batch's wall time in ms)."""
    source = directory / f"{name}.workflow.json"
    source.write_text(json.dumps(workflow(lanes)), encoding="utf-8")
    trace = directory / f"{name}.trace.json"
    command = [sys.executable, "-m", "pflow_trace", "run", str(source)]
    subprocess.run([*command, "--trace-file", str(trace), "-q"], check=True, capture_output=True)
    document = json.loads(trace.read_text(encoding="utf-8"))
    return trace, float(document["nodes"][0]["duration_ms"])


def predict(trace: Path, lanes: int) -> float:
    command = [sys.executable, "-m", "pflow_trace", "show", str(trace)]
    shown = subprocess.run(
        [*command, "--what-if", f"max_concurrent={lanes}", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(shown.stdout)["what_if"][0]["batches"][0]["predicted_wall_ms"])


def run(rounds: int) -> dict[str, Any]:
    predicted: dict[int, list[float]] = {lanes: [] for lanes in COMPARED_LANES}
    actual: dict[int, list[float]] = {lanes: [] for lanes in COMPARED_LANES}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for number in range(rounds):
            recording, _ = run_batch(directory, RECORDED_LANES, f"recorded-{number}")
            for lanes in COMPARED_LANES:
                predicted[lanes].append(predict(recording, lanes))
                actual[lanes].append(run_batch(directory, lanes, f"lanes-{lanes}-{number}")[1])
    median = statistics.median
    medians = {
        str(lanes): round(median(predicted[lanes]) / median(actual[lanes]) - 1, 4)
        for lanes in COMPARED_LANES
    }
    return {
        "recorded_lanes": RECORDED_LANES,
        "rounds": rounds,
        "median_error": medians,
        "median_predicted_ms": {str(n): round(median(predicted[n]), 1) for n in COMPARED_LANES},
        "median_actual_ms": {str(n): round(median(actual[n]), 1) for n in COMPARED_LANES},
        "round_errors": {
            str(n): [round(p / a - 1, 4) for p, a in zip(predicted[n], actual[n], strict=True)]
            for n in COMPARED_LANES
        },
        "target": TARGET_ERROR,
        "met": all(abs(error) <= TARGET_ERROR for error in medians.values()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    json.dump(run(arguments.rounds), sys.stdout, indent=2)
    print()
