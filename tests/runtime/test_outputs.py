"""Declared outputs: as in pflow-cli 0.16, one that cannot be resolved fails the run, saying
why (with the close key when there is one); a ``??`` chain none of whose nodes ran, and a value
that is null, are left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pflow_trace
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.runtime.workflow_run import run_workflow
from subprocess_env import clean_env


def workflow(outputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``b`` echoes ``message``, ``count``, ``items`` and a ``nothing`` that is null."""
    params = {"message": "hi", "count": 3, "items": ["x", "y"], "nothing": None}
    return {
        "ir_version": "0.1.0",
        "nodes": [{"id": "b", "type": "echo", "params": params}],
        "outputs": outputs,
        **extra,
    }


def test_a_misspelt_key_fails_the_run_naming_the_close_key() -> None:
    result = run_workflow(workflow({"said": "${b.mesage}", "fine": "${b.message}"}))
    assert result.status == "failed"
    assert result.error == (
        "output 'said': cannot resolve ${b.mesage}: key 'b.mesage' not found"
        " (did you mean 'b.message'?)"
    )
    assert result.outputs == {"fine": "hi"}


def test_every_output_that_cannot_be_resolved_is_named() -> None:
    result = run_workflow(
        workflow(
            {
                "far": "${b.zzzzzz}",
                "deep": "${b.items[5]}",
                "text": "n=${b.cont}",
                "same": "${b.b}",
                "node": "${bb.message}",
                "either": "${b.x ?? b.mesage}",
            }
        )
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.split("; ") == [
        "output 'far': cannot resolve ${b.zzzzzz}: key 'b.zzzzzz' not found",
        "output 'deep': cannot resolve ${b.items[5]}: key 'b.items[5]' not found",
        "output 'text': cannot resolve n=${b.cont}: key 'b.cont' not found"
        " (did you mean 'b.count'?)",
        "output 'same': cannot resolve ${b.b}: key 'b.b' not found",  # the second b
        "output 'node': cannot resolve ${bb.message}: key 'bb' not found (did you mean 'b'?)",
        "output 'either': cannot resolve ${b.x ?? b.mesage}: 'mesage' not found",
    ]


def test_a_null_value_is_left_out_and_a_fallback_applies() -> None:
    result = run_workflow(workflow({"none": "${b.nothing}", "or": "${b.mesage ?? 'none'}"}))
    assert result.status == "success"
    assert result.outputs == {"or": "none"}


def test_a_fallback_chain_of_nodes_that_did_not_run_is_left_out() -> None:
    result = run_workflow(workflow({"branch": "${x.out ?? y.out}", "fine": "${b.count}"}))
    assert result.status == "success" and result.outputs == {"fine": 3}


def test_a_failed_run_reports_its_node_error_not_its_outputs() -> None:
    failing = workflow({"said": "${b.mesage}"})
    failing["nodes"][0]["params"]["fail"] = True
    result = run_workflow(failing)
    assert result.status == "failed" and result.outputs == {}
    assert result.error is not None and "output" not in result.error


def test_the_trace_file_records_why_the_run_failed(tmp_path: Path) -> None:
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow({"said": "${b.mesage}"}), None, options)
    assert outcome.trace_path is not None
    document = json.loads(outcome.trace_path.read_text("utf-8"))
    assert document["final_status"] == "failed"
    assert "did you mean 'b.message'" in document["error"]


def test_a_clean_run_writes_no_warnings_list(tmp_path: Path) -> None:
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow({"fine": "${b.message}"}), None, options)
    assert outcome.trace_path is not None
    assert "warnings" not in json.loads(outcome.trace_path.read_text("utf-8"))


def test_run_prints_the_problem_and_exits_one(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow({"said": "${b.mesage}"})), "utf-8")
    command = [sys.executable, "-m", "pflow_trace", "run", str(path), "--no-trace-file"]
    text = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert text.returncode == 1, text.stderr
    assert "Traceback" not in text.stderr
    assert (
        "error: output 'said': cannot resolve ${b.mesage}: key 'b.mesage' not found"
        " (did you mean 'b.message'?)"
    ) in text.stdout.splitlines()
