"""The shell-interpolation warning: unit (quoting rules) and end to end (validate, run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.ir.shell_safety import (
    DOUBLE_QUOTED,
    SINGLE_QUOTED,
    UNQUOTED,
    quote_states,
    shell_injection_warnings,
)
from pflow_trace.ir.templates import Interpolation, parse_string


def states(command: str) -> list[tuple[str, str]]:
    compiled = parse_string(command)
    parts = compiled.parts if isinstance(compiled, Interpolation) else (compiled,)
    return [(reference.text, state) for reference, state in quote_states(tuple(parts))]


def test_quote_states_follow_sh_quoting() -> None:
    assert states("echo ${a} \"${b}\" '${c}' \"it's ${d}\" 'say \"${e}\"' \\'${f}") == [
        ("${a}", UNQUOTED),
        ("${b}", DOUBLE_QUOTED),
        ("${c}", SINGLE_QUOTED),
        ("${d}", DOUBLE_QUOTED),
        ("${e}", SINGLE_QUOTED),
        ("${f}", UNQUOTED),  # an escaped quote opens nothing
    ]
    assert states("${whole.command}") == [("${whole.command}", UNQUOTED)]


def shell_workflow(command: str, batch: bool = True) -> dict[str, Any]:
    node: dict[str, Any] = {"id": "run", "type": "shell", "params": {"command": command}}
    if batch:
        node["batch"] = {"items": ["a"], "as": "file"}
    return {
        "ir_version": "0.1.0",
        "name": "shell-safety",
        "inputs": {"who": {"type": "string", "default": "me"}},
        "nodes": [{"id": "list", "type": "echo", "params": {"x": "y"}}, node],
    }


def test_items_and_node_outputs_are_flagged_inputs_and_single_quotes_are_not() -> None:
    command = "wc -l ${file} \"${list.x}\" '${file}' ${who} $${file}"
    warnings = shell_injection_warnings(shell_workflow(command))
    assert len(warnings) == 2
    first, second = warnings
    assert first.startswith("nodes[1].params.command: ${file} (a batch item) is pasted into")
    assert "unquoted" in first
    assert '"env": {"FILE": "${file}"} and write "$FILE" in the command' in first
    assert "${list.x} (output of node 'list')" in second and "inside double quotes" in second
    assert '"env": {"LIST_X": "${list.x}"}' in second


def test_the_safe_form_is_not_flagged() -> None:
    workflow = shell_workflow('wc -l "$FILE"')
    workflow["nodes"][1]["params"]["env"] = {"FILE": "${file}"}
    assert shell_injection_warnings(workflow) == []


def pflow(*arguments: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def risky(tmp_path: Path) -> Path:
    path = tmp_path / "risky.json"
    workflow = shell_workflow("echo ${file}")
    workflow["nodes"][1]["batch"]["items"] = ["a; echo injected"]
    del workflow["inputs"]  # declared and never read: refused, as pflow refuses it
    path.write_text(json.dumps(workflow), encoding="utf-8")
    return path


def test_validate_prints_the_warning_and_still_exits_0(risky: Path) -> None:
    result = pflow("validate", risky)
    assert result.returncode == 0
    assert "valid" in result.stdout and "warning" not in result.stdout
    assert result.stderr.startswith("warning: nodes[1].params.command: ${file} (a batch item)")


def test_run_warns_on_stderr_and_runs(risky: Path, tmp_path: Path) -> None:
    result = pflow("run", risky, "--output-format", "json", "--trace-dir", tmp_path / "traces")
    assert result.returncode == 0, result.stderr
    assert "warning: nodes[1].params.command: ${file}" in result.stderr
    # What the warning is about: the item's text ran as a second command.
    stdout = json.loads(result.stdout)["nodes"]["run"]["results"][0]["stdout"]
    assert stdout == "a\ninjected"  # trailing newline stripped, as pflow's shell node does
