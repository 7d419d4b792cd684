"""Record what pflow-cli 0.16 does with each of pflow's own workflows, run offline.

Usage::

    python tests/compat/record_repo.py [NAME ...] [--pflow PATH/TO/pflow]

For every case of ``repo_cases.py`` (``NAME`` is its path without ``.pflow.md``) this makes the
offline copy of the workflow, starts the local server of ``compat_server.py``, runs pflow on the
copy (``--output-format json --no-cache``, stdin from /dev/null, a temporary HOME, the case's
working directory as cwd) and writes the facts (``compat_cases.py``) to
``goldens/repo/NAME.json``. pflow-cli is found as ``record.py`` finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from compat_cases import PFLOW_VERSION, batch_facts, normalise
from compat_server import local_server
from record import IR_SCRIPT, find_pflow
from repo_cases import (
    CASES,
    REPO_GOLDENS,
    RepoCase,
    case_by_name,
    offline_copy,
    offline_env,
    prepare_workdir,
)


def pflow_ir(pflow: Path, workflow: Path) -> dict[str, Any]:
    """The workflow as pflow's parser reads it (empty when pflow's parser refuses it)."""
    done = subprocess.run(
        [str(pflow.parent / "python"), "-c", IR_SCRIPT, str(workflow)],
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout) if done.returncode == 0 else {"nodes": []}


def run_case(pflow: Path, case: RepoCase, base_url: str, scratch: Path) -> dict[str, Any]:
    home, workdir = scratch / "home", scratch / "work"
    home.mkdir()
    workdir.mkdir()
    prepare_workdir(case, workdir)
    workflow = offline_copy(case, base_url, scratch, workdir)
    arguments = [
        f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in case.inputs.items()
    ]
    env = {**os.environ, "HOME": str(home), **offline_env(base_url)}
    with open(os.devnull) as devnull:
        done = subprocess.run(
            [str(pflow), "--no-cache", "--output-format", "json", str(workflow), *arguments],
            stdin=devnull,
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=180,
        )
    result = json.loads(done.stdout)
    traces = sorted((home / ".pflow" / "debug").glob("workflow-trace-*.json"))
    records = [json.loads(line) for line in traces[-1].read_text().splitlines()] if traces else []
    steps = result.get("execution", {}).get("steps", [])
    outputs_by_node = {r["node_id"]: r.get("node_output") for r in records if "node_output" in r}
    batches = {
        node["id"]: batch_facts(outputs_by_node[node["id"]] or {})
        for node in pflow_ir(pflow, workflow)["nodes"]
        if "batch" in node and node["id"] in outputs_by_node
    }
    status = result.get("status")
    facts = {
        "status": status,
        "outputs": result.get("result") if status != "failed" else None,
        "nodes": {step["node_id"]: step["status"] for step in steps},
        "batches": batches,
    }
    if status == "failed":  # kept for the reader of the golden, not compared
        facts["pflow_error"] = result.get("error")
    placeholders = {base_url: "<base_url>", str(workdir): "<workdir>", str(scratch): "<tmp>"}
    return normalise(facts, placeholders)


def record(pflow: Path, case: RepoCase) -> None:
    with local_server() as base_url, tempfile.TemporaryDirectory() as scratch:
        facts = run_case(pflow, case, base_url, Path(scratch))
    golden = {
        "workflow": case.path,
        "recorded_with": f"pflow-cli {PFLOW_VERSION}",
        "inputs": case.inputs,
        **facts,
    }
    target = REPO_GOLDENS / f"{case.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(golden, indent=2) + "\n")
    print(f"{case.name}: {golden['status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="cases to record (default: all)")
    parser.add_argument("--pflow", help="path to the pflow executable of pflow-cli 0.16")
    args = parser.parse_args()
    pflow = find_pflow(args.pflow)
    for case in [case_by_name(name) for name in args.names] if args.names else CASES:
        record(pflow, case)


if __name__ == "__main__":
    main()
