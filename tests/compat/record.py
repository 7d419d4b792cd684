"""Record what pflow-cli 0.16 does with each compat workflow, as golden files.

Usage::

    python tests/compat/record.py [CASE ...] [--pflow PATH/TO/pflow]

For every ``workflows/<case>.pflow.md`` this:

1. writes ``workflows/<case>.json``: the same workflow as pflow's own JSON IR, produced by
   pflow's markdown parser (pflow 0.16 no longer runs JSON files, so the IR is taken from it);
2. runs the markdown file through pflow (``--output-format json --no-cache``, stdin from
   /dev/null, a temporary HOME), with the local server of ``compat_server.py`` running (an
   ``llm`` step reaches its offline model through ``OPENAI_BASE_URL``) and a scratch
   directory, exactly as the tests do;
3. reads pflow's JSON result and the trace pflow wrote (``~/.pflow/debug/workflow-trace-*``)
   and stores the facts in ``goldens/<case>.json`` (see ``compat_cases.py``).

``--save-trace CASE`` also keeps pflow's trace of that case under ``fixtures/``.

pflow-cli is found through ``--pflow``, else ``$PFLOW_CLI``, else a virtual environment of its
own under ``~/.cache/pflow-trace/pflow-cli-0.16.0``, created with pip on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from compat_cases import (
    FIXTURES,
    GOLDENS,
    MARKDOWN_ONLY,
    PFLOW_VERSION,
    RUN_IN_CASE_DIR,
    WORKFLOWS,
    batch_facts,
    case_inputs,
    case_names,
    normalise,
)
from compat_server import local_server
from repo_cases import offline_env

CACHED_VENV = Path.home() / ".cache" / "pflow-trace" / f"pflow-cli-{PFLOW_VERSION}"
IR_SCRIPT = """
import json, sys
from pflow.core.markdown_parser import parse_markdown
ir = parse_markdown(open(sys.argv[1], encoding="utf-8").read()).ir
print(json.dumps({"ir_version": "0.1.0", **ir}, indent=2))
"""


def find_pflow(explicit: str | None) -> Path:
    """pflow-cli 0.16: given, from $PFLOW_CLI, or installed into a cached venv of its own."""
    for candidate in (explicit, os.environ.get("PFLOW_CLI")):
        if candidate:
            return Path(candidate)
    pflow = CACHED_VENV / "bin" / "pflow"
    if not pflow.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CACHED_VENV)], check=True)
        pip = CACHED_VENV / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", f"pflow-cli=={PFLOW_VERSION}"], check=True)
    return pflow


def write_json_ir(pflow: Path, case: str) -> None:
    python = pflow.parent / "python"
    source = WORKFLOWS / f"{case}.pflow.md"
    done = subprocess.run(
        [str(python), "-c", IR_SCRIPT, str(source)], capture_output=True, text=True, check=True
    )
    (WORKFLOWS / f"{case}.json").write_text(done.stdout)


def run_pflow(
    pflow: Path, case: str, inputs: dict[str, Any], home: Path, base_url: str
) -> dict[str, Any]:
    """pflow's JSON result and the records of the trace it wrote (an ``llm`` step reaches the
    local server's offline model)."""
    arguments = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in inputs.items()]
    env = {**os.environ, "HOME": str(home), **offline_env(base_url)}
    with open(os.devnull) as devnull:
        done = subprocess.run(
            [
                str(pflow),
                "--no-cache",
                "--output-format",
                "json",
                str(WORKFLOWS / f"{case}.pflow.md"),
                *arguments,
            ],
            stdin=devnull,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=WORKFLOWS if case in RUN_IN_CASE_DIR else None,
        )
    result = json.loads(done.stdout)
    traces = sorted((home / ".pflow" / "debug").glob("workflow-trace-*.json"))
    records = [json.loads(line) for line in traces[-1].read_text().splitlines()] if traces else []
    return {"result": result, "records": records, "trace": traces[-1] if traces else None}


def facts(case: str, run: dict[str, Any]) -> dict[str, Any]:
    result, records = run["result"], run["records"]
    steps = result.get("execution", {}).get("steps", [])
    outputs_by_node = {r["node_id"]: r.get("node_output") for r in records if "node_output" in r}
    ir_path = WORKFLOWS / f"{case}.json"
    ir = json.loads(ir_path.read_text()) if ir_path.exists() else {"nodes": []}
    batches = {
        node["id"]: batch_facts(outputs_by_node[node["id"]] or {})
        for node in ir["nodes"]
        if "batch" in node and node["id"] in outputs_by_node
    }
    return {
        "status": result.get("status"),
        "outputs": result.get("result") if result.get("status") != "failed" else None,
        "nodes": {step["node_id"]: step["status"] for step in steps},
        "batches": batches,
    }


def record(pflow: Path, case: str, save_trace: bool) -> None:
    if case not in MARKDOWN_ONLY:
        write_json_ir(pflow, case)
    with local_server() as base_url, tempfile.TemporaryDirectory() as scratch:
        home, workdir = Path(scratch) / "home", Path(scratch) / "work"
        home.mkdir()
        workdir.mkdir()
        inputs = case_inputs(case, base_url, str(workdir))
        run = run_pflow(pflow, case, inputs, home, base_url)
        placeholders = {base_url: "<base_url>", str(workdir): "<workdir>"}
        golden = {
            "case": case,
            "recorded_with": f"pflow-cli {PFLOW_VERSION}",
            "inputs": normalise(inputs, placeholders),
            **normalise(facts(case, run), placeholders),
        }
        (GOLDENS / f"{case}.json").write_text(json.dumps(golden, indent=2) + "\n")
        if save_trace and run["trace"] is not None:
            FIXTURES.mkdir(exist_ok=True)
            shutil.copy(run["trace"], FIXTURES / f"pflow-trace-{case}.jsonl")
    print(f"{case}: {golden['status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help="cases to record (default: all)")
    parser.add_argument("--pflow", help="path to the pflow executable of pflow-cli 0.16")
    parser.add_argument("--save-trace", action="append", default=[], metavar="CASE")
    args = parser.parse_args()
    pflow = find_pflow(args.pflow)
    for case in args.cases or case_names():
        record(pflow, case, case in args.save_trace)


if __name__ == "__main__":
    main()
