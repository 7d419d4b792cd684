"""pflow's own trace of a compat workflow and ours of the same workflow summarise to the same
counts in ``pflow-trace show --json``.

The fixture is the trace pflow-cli 0.16 wrote (``~/.pflow/debug/workflow-trace-*.json``, JSON
lines) when ``record.py --save-trace 05-continue-failing-items`` recorded that case.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from compat_cases import FIXTURES, WORKFLOWS

from subprocess_env import clean_env

CASE = "05-continue-failing-items"
BATCH_COUNTS = (
    "count",
    "success_count",
    "error_count",
    "skipped_count",
    "item_records",
    "execution_mode",
    "parallel",
    "max_concurrent",
    "max_retries",
)


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *arguments],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def counts(trace: Path) -> dict[str, Any]:
    shown = cli("show", "--json", str(trace))
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)["runs"][0]
    return {
        "workflow_name": run["workflow_name"],
        "final_status": run["final_status"],
        "nodes_run": run["nodes_run"],
        "nodes_failed": run["nodes_failed"],
        "nodes": [
            {
                "node_id": node["node_id"],
                "status": node["status"],
                "success": node["success"],
                "batch": node["batch"] and {key: node["batch"][key] for key in BATCH_COUNTS},
            }
            for node in run["nodes"]
        ],
    }


def test_pflow_trace_and_ours_give_the_same_show_counts(tmp_path: Path) -> None:
    ours = tmp_path / "ours.trace.json"
    ran = cli("run", str(WORKFLOWS / f"{CASE}.pflow.md"), "--trace-file", str(ours))
    assert ran.returncode == 0, ran.stderr
    assert "warning: batch 'parse': 2 of 5 items failed" in ran.stdout
    pflow_counts = counts(FIXTURES / f"pflow-trace-{CASE}.jsonl")
    assert pflow_counts["nodes"][0]["batch"]["error_count"] == 2  # the fixture is what we think
    assert counts(ours) == pflow_counts
