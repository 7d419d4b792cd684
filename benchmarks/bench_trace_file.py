"""What the trace file costs for a large batch: bytes per item, write time, peak memory.

A sequential batch of ``code`` items runs traced (spans, span table, trace file; exporter none)
and untraced. Reported: trace-file bytes per batch item excluding the items' own results (the
file is measured again with the results list emptied), the share of run time spent building and
writing the file, and peak traced memory, traced against untraced.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import peak_memory_bytes, ratio

SNIPPET = "result = x + 1"


def workflow(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "trace-file-size",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": SNIPPET, "inputs": {"x": "${item}"}},
                "batch": {"items": list(range(count))},
            }
        ],
    }


def run(quick: bool = False) -> dict[str, Any]:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.ir.validation import validate_workflow
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.runtime.workflow_run import run_workflow

    count = 5_000 if quick else 100_000
    wf = validate_workflow(workflow(count))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "large.json"
        options = TraceOptions(export=resolve_export_settings("none", env={}), trace_file=str(path))

        started = time.perf_counter()
        outcome = api.run(wf, {}, options)
        traced_seconds = time.perf_counter() - started
        file_bytes = path.stat().st_size
        document = outcome.document
        assert document is not None
        document["nodes"][0]["shared_after"]["work"]["results"] = []
        without_results = len(json.dumps(document, ensure_ascii=False))

        started = time.perf_counter()
        run_workflow(wf, {})
        untraced_seconds = time.perf_counter() - started

        traced_peak = peak_memory_bytes(lambda: api.run(wf, {}, options))
        untraced_peak = peak_memory_bytes(lambda: run_workflow(wf, {}))
    return {
        "benchmark": "trace_file",
        "items": count,
        "file_bytes": file_bytes,
        "bytes_per_item_excluding_results": round(without_results / count, 1),
        "run_seconds_traced": round(traced_seconds, 3),
        "run_seconds_untraced": round(untraced_seconds, 3),
        "write_seconds": round(outcome.trace_write_seconds, 3),
        "write_share_of_run": ratio(outcome.trace_write_seconds, traced_seconds),
        "peak_memory_mb": {
            "traced": round(traced_peak / 2**20, 1),
            "untraced": round(untraced_peak / 2**20, 1),
        },
        "peak_memory_ratio": ratio(traced_peak, untraced_peak),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    json.dump(run(parser.parse_args().quick), sys.stdout, indent=2)
    print()
