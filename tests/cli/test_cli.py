"""End to end: ``pflow-trace run`` and ``validate`` in a subprocess, as a user runs them.

Covers the status lines, the capped error list, outputs, the JSON result, every exit code and
the promise that user mistakes are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pflow_trace.cli.main import cli as pflow_trace_cli
from subprocess_env import run_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]


def cli(*arguments: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def write(tmp_path: Path, workflow: dict[str, Any], name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(workflow), encoding="utf-8")
    return path


def batch_workflow(values: list[Any], fail_values: list[Any], handling: str) -> dict[str, Any]:
    """A parallel batch whose items listed in ``fail_values`` fail."""
    return {
        "ir_version": "0.1.0",
        "name": "cli-batch",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {
                    "code": "if x in bad:\n    raise ValueError(f'bad item {x}')\nresult = x * 10",
                    "inputs": {"x": "${item}", "bad": fail_values},
                },
                "batch": {
                    "items": values,
                    "parallel": True,
                    "max_concurrent": 3,
                    "error_handling": handling,
                },
            },
            {"id": "total", "type": "echo", "params": {"value": "${work.success_count}"}},
        ],
        "outputs": {"ok": "${total.value}"},
    }


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- run: text ------------------------------------------------------------------------------


def test_text_output_has_a_line_per_node_capped_errors_and_outputs(tmp_path: Path) -> None:
    workflow = batch_workflow(list(range(10)), [1, 3, 5, 7, 8, 9], "continue")
    result = cli("run", write(tmp_path, workflow), "--trace-dir", tmp_path / "traces")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    work = next(line for line in lines if " work " in f" {line} ")
    assert "4/10 items ok, 6 failed" in work
    assert work.startswith("! work")  # went on past failed items: a warning mark, not ✓
    item_lines = [line.strip() for line in lines if line.strip().startswith("item ")]
    assert item_lines == [f"item {i}: ValueError: bad item {i}" for i in (1, 3, 5, 7, 8)]
    assert "+1 more" in result.stdout
    assert "status: degraded" in result.stdout
    assert "  ok: 4" in lines
    trace_line = next(line for line in lines if line.startswith("trace: "))
    assert Path(trace_line.removeprefix("trace: ")).is_file()


def test_a_batch_whose_items_all_failed_is_never_shown_as_a_success(tmp_path: Path) -> None:
    """Whatever status the runtime gives the run, the node's line and ``show`` say failed."""
    workflow = batch_workflow([1, 2], [1, 2], "continue")
    result = cli("run", write(tmp_path, workflow), "--trace-dir", tmp_path / "traces")
    work = next(line for line in result.stdout.splitlines() if " work " in f" {line} ")
    assert work.startswith("✗ work") and "0/2 items ok, 2 failed" in work
    trace_line = next(line for line in result.stdout.splitlines() if line.startswith("trace: "))
    shown = cli("show", trace_line.removeprefix("trace: "), "--json")
    assert shown.returncode == 0, shown.stderr
    node = json.loads(shown.stdout)["runs"][0]["nodes"][0]
    assert (node["node_id"], node["status"]) == ("work", "failed")


def test_quiet_prints_only_the_outcome(tmp_path: Path) -> None:
    workflow = batch_workflow([1, 2], [], "fail_fast")
    result = cli("run", write(tmp_path, workflow), "--quiet", "--no-trace-file")
    assert result.returncode == 0
    assert "items ok" not in result.stdout
    assert "status: success" in result.stdout
    assert "trace:" not in result.stdout


def test_piped_output_has_no_colour_codes(tmp_path: Path) -> None:
    result = cli("run", write(tmp_path, batch_workflow([1], [], "fail_fast")), "--no-trace-file")
    assert "\x1b[" not in result.stdout


# -- run: json ------------------------------------------------------------------------------


def test_json_output_is_one_object_with_nodes_and_trace_fields(tmp_path: Path) -> None:
    workflow = batch_workflow([0, 1, 2], [1], "continue")
    result = cli("run", write(tmp_path, workflow), "--output-format", "json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) >= {"status", "outputs", "nodes", "duration_ms", "trace_file", "trace_id"}
    assert payload["status"] == "degraded"
    assert payload["outputs"] == {"ok": 2}
    work = payload["nodes"]["work"]
    assert work["results"][0] == {
        "result": 0,
        "stdout": "",
        "stderr": "",
        "item": 0,
        "original_index": 0,
    }
    assert [entry["original_index"] for entry in work["results"]] == [0, 2]
    assert work["errors"] == [{"index": 1, "item": 1, "error": "ValueError: bad item 1"}]
    assert payload["warnings"] == ["batch 'work': 1 of 3 items failed"]
    assert len(payload["trace_id"]) == 32
    assert Path(payload["trace_file"]).is_file()


# -- exit codes ---------------------------------------------------------------------------------


def test_a_failed_workflow_exits_1_and_names_the_node(tmp_path: Path) -> None:
    workflow = batch_workflow([0, 1, 2], [2], "fail_fast")
    result = cli("run", write(tmp_path, workflow))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "status: failed" in result.stdout
    assert "node 'work' failed: item 2 failed: ValueError: bad item 2" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("run", "missing.json"), "missing.json: no such workflow file"),
        (("validate", "missing.json"), "missing.json: no such workflow file"),
        (("run", "wf.json", "novalue"), "input 'novalue' is not NAME=VALUE"),
        (("run", "wf.json", "nope=1"), "unknown input(s) nope (declared: count)"),
        (("run", "wf.json", "count=abc"), "input 'count' must be number, got \"abc\""),
        (("run", "wf.json", "--otlp-endpoint", "localhost:4318"), "needs a scheme"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, arguments: tuple[str, ...], expected: str
) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "inputs": {"count": {"type": "number", "required": True}},
        "nodes": [{"id": "a", "type": "echo", "params": {"value": "${count}"}}],
    }
    write(tmp_path, workflow)
    line = assert_one_line_error(cli(*arguments, cwd=tmp_path), 2)
    assert expected in line


def test_a_missing_required_input_stops_before_anything_runs(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "inputs": {"target": {"type": "string"}},
        "nodes": [
            {"id": "touch", "type": "shell", "params": {"command": f"touch {tmp_path}/ran"}},
            {"id": "b", "type": "echo", "params": {"value": "${target}"}},
        ],
    }
    line = assert_one_line_error(cli("run", write(tmp_path, workflow)), 2)
    assert "missing required input 'target'" in line
    assert not (tmp_path / "ran").exists()


def test_an_unwritable_trace_directory_is_reported_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    workflow = batch_workflow([1], [], "fail_fast")
    line = assert_one_line_error(
        cli("run", write(tmp_path, workflow), "--trace-dir", blocker / "traces"), 2
    )
    assert "cannot create trace directory" in line


# -- validate ----------------------------------------------------------------------------------


def test_validate_accepts_every_example() -> None:
    """In process: an interpreter per example cost seconds and proved nothing more."""
    runner = CliRunner()
    for example in sorted((ROOT / "examples").glob("*.json")):
        result = runner.invoke(pflow_trace_cli, ["validate", str(example)])
        assert result.exit_code == 0, (example, result.output)
        assert "valid" in result.stdout


def test_validate_lists_every_problem_with_its_path_and_exits_2(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {"id": "a", "type": "echo", "batch": {"items": [1], "max_concurrent": 500}},
            {"id": "a", "type": "ecko"},
        ],
        "edges": [{"from": "a", "to": "ghost"}],
    }
    result = cli("validate", write(tmp_path, workflow))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    header, *problems = result.stderr.strip().splitlines()
    assert header.endswith("wf.json: 4 problems")
    assert any(p.startswith("  - nodes[0].batch.max_concurrent: 500 is over 100") for p in problems)
    assert "  - nodes[1].id: duplicate id 'a' (first at nodes[0])" in problems
    assert "  - nodes[1].type: unknown node type 'ecko' (did you mean echo, code?)" in problems
    assert "  - edges[0].to: unknown node 'ghost'" in problems


def test_run_refuses_an_invalid_workflow_with_every_problem(tmp_path: Path) -> None:
    workflow = {"ir_version": "0.2.0", "nodes": []}
    result = cli("run", write(tmp_path, workflow))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # One problem per line under the error line, not 900 characters on one.
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[0].endswith("2 problems:")
    assert lines[1].startswith("  - ir_version: ") and lines[2].startswith("  - nodes: ")
    assert len(lines) == 3
    as_json = cli("run", write(tmp_path, workflow), "--output-format", "json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {
        "status": "invalid",
        "errors": ['ir_version: expected "0.1.0", got "0.2.0"', "nodes: [] should be non-empty"],
    }


def test_invalid_json_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"ir_version": "0.1.0",\n "nodes": [}\n')
    result = cli("validate", path)
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr and "line 2" in result.stderr


# -- help and version ---------------------------------------------------------------------------


def test_help_lists_every_command_and_version_prints() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "show", "export"):
        assert f"  {command} " in result.stdout
    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("pflow-trace, version ")


# -- terminal ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_long_batch_draws_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """Any batch still running after half a second gets a bar, also one of a few items, and
    before its first item has finished."""
    workflow = {
        "ir_version": "0.1.0",
        "name": "progress",
        "nodes": [
            {
                "id": "slow",
                "type": "echo",
                "params": {"value": "${item}", "delay_ms": 250},
                "batch": {"items": list(range(3)), "parallel": False},
            }
        ],
    }
    path = write(tmp_path, workflow)
    drawn = run_on_a_terminal("run", str(path), "--no-trace-file")
    assert re.search(r"(?<![0-9])[0-2]/3(?! items)", drawn), drawn  # the bar's "done/total"
    assert "\x1b[32m" in drawn  # green on a terminal
    assert "3/3 items ok" in drawn
    piped = cli("run", path, "--no-trace-file")
    assert not re.search(r"\b\d+/3\b(?! items)", piped.stdout)
    assert "\x1b[" not in piped.stdout
    for plain in (
        run_on_a_terminal("run", str(path), "--no-trace-file", env={"NO_COLOR": "1"}),
        run_on_a_terminal("run", str(path), "--no-trace-file", "--no-color"),
    ):
        assert "3/3 items ok" in plain
        assert not re.search(r"\x1b\[(?:[0-9]+;)*3[0-8][;m]", plain), plain  # no colour at all


def test_the_progress_line_counts_failed_items_and_gives_an_eta(tmp_path: Path) -> None:
    """While a batch runs, its bar says how many items failed and when it should end."""
    workflow = {
        "ir_version": "0.1.0",
        "name": "progress-line",
        "nodes": [
            {
                "id": "slow",
                "type": "echo",
                "params": {"value": "${item}", "delay_ms": 200, "fail_if": 0},
                "batch": {"items": list(range(5)), "error_handling": "continue"},
            }
        ],
    }
    path = write(tmp_path, workflow)
    drawn = run_on_a_terminal("run", str(path), "--no-trace-file")
    assert re.search(r"1 failed · ETA \d", drawn), drawn
    piped = cli("run", path, "--no-trace-file")
    assert "ETA" not in piped.stdout and "ETA" not in piped.stderr


def test_a_reader_that_goes_away_does_not_cut_the_run_short(tmp_path: Path) -> None:
    """``pflow-trace run wf.json | head -1``: the run finishes, writes its trace, exits 0."""
    workflow = {
        "ir_version": "0.1.0",
        "name": "piped",
        "nodes": [
            {"id": f"step{n}", "type": "echo", "params": {"value": n, "delay_ms": 30}}
            for n in range(6)
        ],
    }
    trace = tmp_path / "piped.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pflow_trace",
            "run",
            str(write(tmp_path, workflow)),
            "--trace-file",
            str(trace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert "step0" in process.stdout.readline()
    process.stdout.close()  # the reader goes away while five nodes are still to run
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == ""
    assert json.loads(trace.read_text())["nodes_executed"] == 6
