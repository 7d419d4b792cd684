"""Start-up cost: ``pflow-trace --version`` and ``pflow-trace show`` against ``python -c pass``.

Each command runs in a fresh interpreter several times; the best time counts. Also checks, in a
subprocess, that neither command imports the OTLP exporters or gRPC.

Target: <= 4x the bare interpreter start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ratio

HEAVY_MODULES = (
    "grpc",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.http",
)


def best_wall(command: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def heavy_imports(arguments: list[str]) -> list[str]:
    """Which slow modules a CLI invocation imports (run in a fresh interpreter)."""
    probe = (
        "import sys\n"
        "from pflow_trace.cli.main import cli\n"
        f"try:\n    cli.main(args={arguments!r}, prog_name='pflow-trace', standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    marker = next(line for line in result.stdout.splitlines() if line.startswith("HEAVY:"))
    return [name for name in marker.removeprefix("HEAVY:").split(",") if name]


def small_trace(directory: Path) -> Path:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.observe.export_settings import resolve_export_settings

    workflow = {
        "ir_version": "0.1.0",
        "name": "startup",
        "nodes": [
            {"id": "a", "type": "echo", "params": {"value": 1}},
            {
                "id": "b",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": [1, 2, 3]},
            },
        ],
    }
    path = directory / "small.json"
    api.run(
        workflow,
        {},
        TraceOptions(export=resolve_export_settings("none", env={}), trace_file=str(path)),
    )
    return path


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 10
    script = Path(sys.executable).with_name("pflow-trace")  # what a user runs, when installed
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "pflow_trace"]
    with tempfile.TemporaryDirectory() as directory:
        trace = small_trace(Path(directory))
        baseline = best_wall([sys.executable, "-c", "pass"], repeats)
        version = best_wall([*cli, "--version"], repeats)
        show = best_wall([*cli, "show", str(trace)], repeats)
        imported = {
            "--version": heavy_imports(["--version"]),
            "show": heavy_imports(["show", str(trace)]),
        }
    ratios = {"version": ratio(version, baseline), "show": ratio(show, baseline)}
    return {
        "benchmark": "startup",
        "seconds": {
            "python_pass": round(baseline, 4),
            "version": round(version, 4),
            "show": round(show, 4),
        },
        "ratios": ratios,
        "heavy_imports": imported,
        "target": {"ratio": 4.0, "heavy_imports": "none"},
        "met": max(ratios.values()) <= 4.0 and not any(imported.values()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    json.dump(run(parser.parse_args().quick), sys.stdout, indent=2)
    print()
