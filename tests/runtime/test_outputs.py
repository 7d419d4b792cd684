"""Declared outputs: one left null by a missing key is said, in the result and the trace file.

An output that cannot be resolved stays ``null`` and the run keeps its status (as in pflow);
what must not happen is a typo such as ``${b.mesage}`` ending a run quietly with a null.
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


def test_a_misspelt_key_warns_with_the_close_key_and_keeps_the_status() -> None:
    result = run_workflow(workflow({"said": "${b.mesage}", "fine": "${b.message}"}))
    assert result.status == "success"
    assert result.outputs == {"said": None, "fine": "hi"}
    assert result.warnings == [
        "output 'said': ${b.mesage} is null: key 'b.mesage' not found (did you mean 'b.message'?)"
    ]
    assert result.record.warnings == result.warnings


def test_no_suggestion_without_a_close_key_and_a_path_into_lists() -> None:
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
    assert result.status == "success"
    assert result.warnings == [
        "output 'far': ${b.zzzzzz} is null: key 'b.zzzzzz' not found",
        "output 'deep': ${b.items[5]} is null: key 'b.items[5]' not found",
        "output 'text': n=${b.cont} is null: key 'b.cont' not found (did you mean 'b.count'?)",
        "output 'same': ${b.b} is null: key 'b.b' not found",  # the second b, not the node
        "output 'node': ${bb.message} is null: key 'bb' not found (did you mean 'b'?)",
        "output 'either': ${b.x ?? b.mesage} is null: 'mesage' not found",
    ]


def test_a_value_that_is_null_and_a_fallback_are_not_missing() -> None:
    result = run_workflow(workflow({"none": "${b.nothing}", "or": "${b.mesage ?? 'none'}"}))
    assert result.outputs == {"none": None, "or": "none"}
    assert result.warnings == []


def test_a_failed_run_does_not_warn_about_its_outputs() -> None:
    failing = workflow({"said": "${b.mesage}"})
    failing["nodes"][0]["params"]["fail"] = True
    result = run_workflow(failing)
    assert result.status == "failed" and result.outputs == {"said": None}
    assert result.warnings == []


def test_the_trace_file_records_the_warning_with_the_run_warnings(tmp_path: Path) -> None:
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow({"said": "${b.mesage}"}), None, options)
    assert outcome.trace_path is not None
    document = json.loads(outcome.trace_path.read_text("utf-8"))
    assert document["final_status"] == "success"
    assert document["warnings"] == outcome.result.warnings
    assert "did you mean 'b.message'" in document["warnings"][0]


def test_a_clean_run_writes_no_warnings_list(tmp_path: Path) -> None:
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow({"fine": "${b.message}"}), None, options)
    assert outcome.trace_path is not None
    assert "warnings" not in json.loads(outcome.trace_path.read_text("utf-8"))


def test_run_prints_the_warning_and_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow({"said": "${b.mesage}"})), "utf-8")
    command = [sys.executable, "-m", "pflow_trace", "run", str(path), "--no-trace-file"]
    text = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert text.returncode == 0, text.stderr
    assert "status: success" in text.stdout
    assert (
        "warning: output 'said': ${b.mesage} is null: key 'b.mesage' not found"
        " (did you mean 'b.message'?)"
    ) in text.stdout.splitlines()
    as_json = subprocess.run(
        [*command, "--output-format", "json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    document = json.loads(as_json.stdout)
    assert document["status"] == "success" and document["outputs"] == {"said": None}
    assert document["warnings"][0].startswith("output 'said': ${b.mesage} is null")
