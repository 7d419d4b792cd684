"""A backend that accepts requests and then trickles its answer costs one warning, not minutes.

The exporters' own timeouts bound each socket read, and a byte every half second resets them;
only the deadline on the whole export (``observe/otel.py``) stops the wait. The subprocess
timeout is the hang detector: without the deadline ``run`` takes about 30 s and ``export`` far
longer, with it both end within about a second of their work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_receiver import trickling_endpoint
from subprocess_env import clean_env

#: A backend that trickles its answer: each run waits for the deadline.
pytestmark = pytest.mark.slow

#: Far above the deadline (about 1 s) plus interpreter start-up, far below the hang (30 s+).
HANG_S = 20


def pflow_trace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=HANG_S,
    )


def write_workflow(directory: Path) -> Path:
    path = directory / "wf.json"
    nodes = [
        {"id": "a", "type": "echo", "params": {"x": 1}},
        {"id": "b", "type": "echo", "params": {"value": "${item}"}, "batch": {"items": [1, 2]}},
    ]
    path.write_text(json.dumps({"ir_version": "0.1.0", "name": "slow", "nodes": nodes}))
    return path


def test_run_and_export_give_a_trickling_backend_one_deadline(tmp_path: Path) -> None:
    trace = tmp_path / "run.trace.json"
    with trickling_endpoint() as endpoint:
        ran = pflow_trace(
            "run",
            str(write_workflow(tmp_path)),
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            endpoint,
            "--trace-file",
            str(trace),
        )
        exported = pflow_trace("export", str(trace), "--to", "otlp", "--endpoint", endpoint)

    assert ran.returncode == 0, ran.stderr
    assert "status: success" in ran.stdout
    warnings = ran.stderr.strip().splitlines()
    assert len(warnings) == 1, ran.stderr
    assert warnings[0].startswith("warning: spans were not exported to ")
    assert "the backend did not answer within 1s" in warnings[0]
    assert str(trace) in warnings[0]

    assert exported.returncode == 1, exported.stderr
    (line,) = exported.stderr.strip().splitlines()
    assert line.startswith("error: could not export ")
    assert "did not answer within 2s" in line
