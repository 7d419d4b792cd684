"""What ``run`` prints: stdout kept for the JSON object, safe text, -q, counts, colour rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pflow_trace.cli.display import RunTally
from pflow_trace.cli.main import cli as cli_group
from pflow_trace.observe.facts import NodeExecution
from subprocess_env import clean_env


def cli(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )


def write(tmp_path: Path, nodes: list[dict[str, Any]], **extra: Any) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"ir_version": "0.1.0", "nodes": nodes, **extra}), "utf-8")
    return path


def code(node_id: str, source: str) -> dict[str, Any]:
    return {"id": node_id, "type": "code", "params": {"code": source}}


def test_json_stdout_holds_only_the_object_whatever_a_node_prints(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            code("a", "import os\nprint('py-print')\nos.system('echo from-a-child')\nresult = 1"),
            {"id": "s", "type": "shell", "params": {"command": "echo ok"}},
        ],
    )
    result = cli("run", path, "--output-format", "json", "--no-trace-file")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # one object, nothing before or after it
    assert document["status"] == "success"
    assert document["nodes"]["a"]["stdout"] == "py-print\n"
    assert "from-a-child" in result.stderr  # moved, not lost


def test_a_deeply_nested_result_is_capped_in_the_json_output(tmp_path: Path) -> None:
    source = "r = []\nx = r\nfor _ in range(100000):\n    x.append([])\n    x = x[0]\nresult = r"
    result = cli(
        "run", write(tmp_path, [code("a", source)]), "--output-format", "json", "--no-trace-file"
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-800:]
    assert '"<nested deeper than 100 levels>"' in json.dumps(json.loads(result.stdout))


def test_usage_errors_print_an_invalid_object_in_json_mode(tmp_path: Path) -> None:
    node = {"id": "a", "type": "echo", "params": {"n": "${n}"}}
    path = write(tmp_path, [node], inputs={"n": {"type": "number"}})
    result = cli("run", path, "n=x", "--output-format", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "status": "invalid",
        "errors": ["input 'n' must be number, got \"x\""],
    }
    assert result.stderr.startswith("error: ")
    missing = cli("run", tmp_path / "nope.json", "--output-format", "json")
    assert json.loads(missing.stdout)["status"] == "invalid" and missing.returncode == 2


def test_quiet_prints_only_the_status_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"id": "a", "type": "echo", "params": {"message": "hi"}},
            {"id": "b", "type": "echo", "params": {"fail": True}},
        ],
    )
    result = cli("run", path, "-q", "--no-trace-file")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("status: failed  (2 nodes run, ")


def test_the_status_line_counts_executions_from_the_facts() -> None:
    tally = RunTally()
    for node_id in ["a", "b", "a", "b", "a", "b", "c"]:  # a loop that ran 7 nodes
        execution = NodeExecution(node_id, "echo")
        execution.success = node_id != "c"
        tally.node_finished(execution, {})
    assert (tally.executions, tally.failed) == (7, 1)


def test_names_and_command_output_cannot_act_on_the_terminal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "id": "a",
                "type": "shell",
                "params": {"command": "printf '\\033]0;pwned\\007\\nforged line' >&2; exit 3"},
            }
        ],
        name="wf\x1b]0;title\x07\nstatus: success",
    )
    trace = tmp_path / "t.json"
    result = cli("run", path, "--trace-file", trace)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\e]0;pwned\\x07" in result.stdout
    shown = CliRunner().invoke(cli_group, ["show", str(trace)])
    assert "\x1b" not in shown.stdout
    # The name's line break is shown as \n: it cannot forge a "status: success" line.
    assert "workflow wf\\e]0;title\\x07\\nstatus: success" in shown.stdout
    assert not any(line.startswith("status: success") for line in shown.stdout.splitlines())


def test_a_failing_node_keeps_its_partial_outputs_in_the_trace(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [{"id": "s", "type": "shell", "params": {"command": "echo part; echo bad >&2; exit 4"}}],
    )
    trace = tmp_path / "t.json"
    assert cli("run", path, "--trace-file", trace).returncode == 1
    node = json.loads(trace.read_text())["nodes"][0]
    partial = node["shared_after"]["s"]
    assert (partial["stdout"], partial["stderr"], partial["exit_code"]) == ("part", "bad\n", 4)


def test_export_creates_missing_parent_directories(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    cli("run", write(tmp_path, [{"id": "a", "type": "echo"}]), "--trace-file", trace)
    output = tmp_path / "new" / "deeper" / "c.json"
    result = CliRunner().invoke(
        cli_group, ["export", str(trace), "--format", "chrome", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["traceEvents"]


def test_run_prints_its_summary_without_decoding_the_trace_document(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A million-item trace decoded back into lists would cost gigabytes after the run."""
    from pflow_trace import api

    def refuse(document: Any) -> Any:
        raise AssertionError("the whole trace document was decoded")

    monkeypatch.setattr(api, "plain_document", refuse)
    nodes = [
        {
            "id": "work",
            "type": "code",
            "params": {"code": "result = x", "inputs": {"x": "${item}"}},
            "batch": {"items": list(range(50))},
        }
    ]
    path = write(tmp_path, nodes)
    trace = tmp_path / "run.trace.json"
    runner = CliRunner()
    for output_format in ("text", "json"):
        result = runner.invoke(
            cli_group,
            ["run", "--output-format", output_format, "--trace-file", str(trace), str(path)],
        )
        assert result.exit_code == 0, result.output
        assert "success" in result.output
    assert json.loads(trace.read_text(encoding="utf-8"))["final_status"] == "success"


def test_json_output_prints_an_output_holding_json_text_parsed_as_pflow_does(
    tmp_path: Path,
) -> None:
    command = "printf '{\"a\": [1]}'"
    path = write(
        tmp_path,
        [
            {"id": "n", "type": "shell", "params": {"command": "printf ' 3\\n'"}},
            {"id": "j", "type": "shell", "params": {"command": command}},
        ],
        edges=[{"from": "n", "to": "j"}],
        outputs={
            "number": {"source": "${n.stdout}"},
            "object": {"source": "${j.stdout}"},
            "text": {"source": "n=${n.stdout}"},
        },
    )
    result = cli("run", path, "--output-format", "json", "--no-trace-file")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs == {"number": 3, "object": {"a": [1]}, "text": "n= 3"}
