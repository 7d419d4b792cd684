"""What the resume checkpoint costs: per item while a run writes it, on disk, and to read back.

1. the traced per-item cost of a sequential batch with the checkpoint off and on, interleaved in
   the same session (so the ratio compares like with like); the extra is the checkpoint's;
2. the checkpoint's size for a 100,000-item run (``--quick``: 2,000), and the time to read it
   back and check its hash, as ``resume`` does before anything runs.

Each item's result is a small dict (a number and a short text), as a ``code`` node leaves it.
Target: the checkpoint adds < 10% to the traced per-item cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import best_interleaved, ratio

SNIPPET = "result = {'n': x * 2, 'text': f'item {x} done'}"
TARGET_EXTRA = 0.10


def workflow(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "checkpoint",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": SNIPPET, "inputs": {"x": "${item}"}},
                "batch": {"items": list(range(count))},
            }
        ],
    }


def _options(directory: Path, name: str, checkpoint: bool) -> Any:
    from pflow_trace.api import TraceOptions
    from pflow_trace.observe.export_settings import resolve_export_settings

    return TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(directory / f"{name}.json"),
        checkpoint=checkpoint,
        join_env_trace_context=False,
    )


def per_item_costs(directory: Path, count: int, repeats: int) -> dict[str, float]:
    from pflow_trace import api
    from pflow_trace.ir.validation import validate_workflow

    wf = validate_workflow(workflow(count))
    off, on = _options(directory, "off", False), _options(directory, "on", True)
    seconds = best_interleaved(
        repeats,
        {
            "traced_no_checkpoint": lambda: api.run(wf, {}, off),
            "traced_with_checkpoint": lambda: api.run(wf, {}, on),
        },
    )
    return {name: round(value / count * 1e6, 2) for name, value in seconds.items()}


def size_and_read(directory: Path, count: int) -> dict[str, Any]:
    from pflow_trace import api
    from pflow_trace.ir.validation import validate_workflow
    from pflow_trace.tracefile.checkpoint import checkpoint_path, read_checkpoint

    options = _options(directory, "size", True)
    outcome = api.run(validate_workflow(workflow(count)), {}, options)
    assert outcome.trace_path is not None
    path = checkpoint_path(outcome.trace_path)
    recorded = json.loads(outcome.trace_path.read_text("utf-8"))["checkpoint"]
    started = time.perf_counter()
    checkpoint = read_checkpoint(path, recorded)
    read_s = time.perf_counter() - started
    (items,) = checkpoint.items.values()
    assert len(items) == count
    size = path.stat().st_size
    return {
        "items": count,
        "checkpoint_bytes": size,
        "bytes_per_item": round(size / count, 1),
        "trace_bytes": outcome.trace_path.stat().st_size,
        "read_back_s": round(read_s, 3),
    }


def run(quick: bool = False) -> dict[str, Any]:
    count = 500 if quick else 20_000
    repeats = 1 if quick else 7
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        per_item_us = per_item_costs(directory, count, repeats)
        size = size_and_read(directory, 2_000 if quick else 100_000)
    extra = ratio(per_item_us["traced_with_checkpoint"], per_item_us["traced_no_checkpoint"]) - 1
    return {
        "benchmark": "checkpoint",
        "items": count,
        "per_item_us": per_item_us,
        "checkpoint_extra": round(extra, 3),
        "size": size,
        "target": {"checkpoint_extra": TARGET_EXTRA},
        "met": extra < TARGET_EXTRA,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    json.dump(run(arguments.quick), sys.stdout, indent=2)
    print()
