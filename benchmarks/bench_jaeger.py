"""A large batch exported live to a real Jaeger: what Jaeger holds and what reading it costs.

``pflow-trace run`` a parallel ``echo`` batch of ``--items`` items (default 10,000) with
``--exporter otlp`` into the Jaeger that ``dashboards/jaeger/start.sh`` started (its variables
must be set: ``eval "$(bash dashboards/jaeger/start.sh)"``). Then: how many spans Jaeger returns
for the run's trace, how long ``GET /api/traces/<id>`` takes (best of ``--repeats``) and how big
its answer is, and Jaeger's resident memory (``VmRSS`` and ``VmHWM`` from ``/proc``) before
the run, once it stored the run, and after the reads. Not run by ``run.py``: it needs Jaeger.

``--trace-shape`` (default ``inline``) is passed to the run; in the ``linked`` shape the run's
trace holds only the kept items, and the report adds how many chunk traces the batch span links
to. Spans per second is every span the run exported (chunk roots included) over the run's wall
time, the process's start and exit included. ``--replay`` sends the spans after the run with
``export --to otlp`` (the same shape and ids, with a 60 s deadline per request), and times that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import positive_int


def workflow(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "jaeger-scale",
        "nodes": [
            {
                "id": "fan",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": list(range(count)), "parallel": True, "max_concurrent": 8},
            }
        ],
    }


def jaeger_settings() -> tuple[str, str, int]:
    """(query URL, OTLP/HTTP endpoint, pid) from start.sh's variables; exits 2 without them."""
    names = ("PFLOW_TRACE_JAEGER_URL", "PFLOW_TRACE_JAEGER_OTLP_HTTP", "PFLOW_TRACE_JAEGER_PIDFILE")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        start = 'eval "$(bash dashboards/jaeger/start.sh)"'
        print(f"error: {', '.join(missing)} not set; start Jaeger with: {start}", file=sys.stderr)
        sys.exit(2)
    pid = int(Path(os.environ["PFLOW_TRACE_JAEGER_PIDFILE"]).read_text().strip())
    return os.environ["PFLOW_TRACE_JAEGER_URL"], os.environ["PFLOW_TRACE_JAEGER_OTLP_HTTP"], pid


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident set now (VmRSS) and at its peak (VmHWM), in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def fetch(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        body = response.read()
    return time.perf_counter() - started, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=positive_int, default=10_000)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--trace-shape", choices=("inline", "linked", "auto"), default="inline")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="run without export, then send the trace file with export --to otlp --timeout 60 "
        "(a loaded machine can overrun a live run's 1 s export deadline)",
    )
    args = parser.parse_args()
    query, otlp_http, pid = jaeger_settings()
    before = memory_mib(pid)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "workflow.json"
        path.write_text(json.dumps(workflow(args.items)), encoding="utf-8")
        trace_path = Path(directory) / "run.trace.json"
        export = ["--exporter", "otlp", "--otlp-endpoint", otlp_http]
        if args.replay:
            export = ["--exporter", "none"]
        started = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, "-m", "pflow_trace", "run", str(path), "-q"),
                *("--trace-file", str(trace_path), *export, "--trace-shape", args.trace_shape),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        if args.replay:
            started = time.perf_counter()
            subprocess.run(
                [
                    *(sys.executable, "-m", "pflow_trace", "export", str(trace_path)),
                    *("--to", "otlp", "--endpoint", otlp_http, "--timeout", "60"),
                    *("--trace-shape", args.trace_shape),
                ],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        run_seconds = time.perf_counter() - started
        document = json.loads(trace_path.read_text(encoding="utf-8"))
    stored = memory_mib(pid)
    trace_id = document["otel"]["trace_id"]
    recorded = len(document["otel"]["spans"]["rows"])
    fetches = [fetch(f"{query}/api/traces/{trace_id}") for _ in range(args.repeats)]
    timings, body = [seconds for seconds, _ in fetches], fetches[-1][1]
    spans = [span for trace in json.loads(body)["data"] for span in trace["spans"]]
    chunks = sum(
        1
        for span in spans
        for ref in span["references"]
        if ref["refType"] == "FOLLOWS_FROM" and ref["traceID"] != trace_id
    )
    report = {
        "benchmark": "jaeger",
        "items": args.items,
        "trace_shape": args.trace_shape,
        "sent_by": "export --to otlp" if args.replay else "run (live)",
        "run_with_live_export_s" if not args.replay else "export_s": round(run_seconds, 2),
        "spans_recorded": recorded,
        "spans_in_run_trace": len(spans),
        "chunk_traces": chunks,
        "spans_exported_per_s": round((recorded + chunks) / run_seconds),
        "get_trace_best_s": round(min(timings), 3),
        "get_trace_bytes": len(body),
        "jaeger_mib_before": before,
        "jaeger_mib_stored": stored,
        "jaeger_mib_after_get": memory_mib(pid),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
