"""A very large batch, whole processes: wall time and peak memory of ``run``, then ``show``.

``pflow-trace run`` a sequential ``code`` batch of ``--items`` items (default 1,000,000;
the items are made by a code step, so the workflow file stays small) with its defaults
(trace file on, no exporter), stdin from /dev/null and a temporary HOME; then ``pflow-trace
show`` on the trace it wrote, against a process that only ``json.load``\\ s the same file.
The same run with ``--no-trace-file`` (no span is recorded) is the baseline for the run's
own figures, measured in the same session because the machine's speed varies.
Peak memory is each process's own maximum resident set (``wait4``).

Targets: 1,000,000 items in under 40 s and 1 GiB; ``show`` <= 2 x ``json.load``. Not run by
``run.py`` (minutes at full size); ``--items 20000`` is a quick check that it still works.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import positive_int, ratio


def workflow(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "scale",
        "nodes": [
            {"id": "numbers", "type": "code", "params": {"code": f"result = list(range({count}))"}},
            {
                "id": "double",
                "type": "code",
                "params": {"code": "result = x * 2", "inputs": {"x": "${item}"}},
                "batch": {"items": "${numbers.result}"},
            },
        ],
        "edges": [{"from": "numbers", "to": "double"}],
    }


def measure(command: list[str], home: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one process."""
    env = {**os.environ, "HOME": str(home)}
    for name in ("TRACEPARENT", "TRACESTATE", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    with open(os.devnull) as stdin, open(os.devnull, "w") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=stdout, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def run(items: int) -> dict[str, Any]:
    cli = [sys.executable, "-m", "pflow_trace"]
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        source = home / "scale.json"
        source.write_text(json.dumps(workflow(items)), encoding="utf-8")
        trace = home / "scale.trace.json"
        run_s, run_mib = measure(
            [*cli, "run", "--quiet", "--trace-file", str(trace), str(source)], home
        )
        size_mib = trace.stat().st_size / 2**20
        bare_s, bare_mib = measure([*cli, "run", "--quiet", "--no-trace-file", str(source)], home)
        show_s, show_mib = measure([*cli, "show", str(trace)], home)
        load = f"import json; json.load(open({str(trace)!r}, encoding='utf-8'))"
        load_s, load_mib = measure([sys.executable, "-c", load], home)
    return {
        "benchmark": "scale",
        "items": items,
        "run": {"wall_s": round(run_s, 2), "peak_rss_mib": round(run_mib, 1)},
        "run_without_trace_file": {"wall_s": round(bare_s, 2), "peak_rss_mib": round(bare_mib, 1)},
        "trace_mib": round(size_mib, 1),
        "show": {"wall_s": round(show_s, 2), "peak_rss_mib": round(show_mib, 1)},
        "json_load": {"wall_s": round(load_s, 2), "peak_rss_mib": round(load_mib, 1)},
        "ratios": {
            "show_vs_json_load": ratio(show_s, load_s),
            "run_vs_no_trace_file_wall": ratio(run_s, bare_s),
            "run_vs_no_trace_file_rss": ratio(run_mib, bare_mib),
        },
        "target": {"run_wall_s": 40, "run_peak_rss_mib": 1024, "show_vs_json_load": 2},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=positive_int, default=1_000_000)
    arguments = parser.parse_args()
    json.dump(run(arguments.items), sys.stdout, indent=2)
    print()
