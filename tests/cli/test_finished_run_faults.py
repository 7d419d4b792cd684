"""A run that finished is reported, whatever goes wrong around it, and a flow never ends silently.

End to end (the CLI in a subprocess): a name too long for a file name, a full disk, values
strict JSON cannot hold, a code node raising KeyboardInterrupt itself, an edge loop that never
ends, and an action no edge follows.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subprocess_env import clean_env


def write_workflow(directory: Path, nodes: list[dict[str, Any]], **extra: Any) -> Path:
    path = directory / "wf.json"
    document = {"ir_version": "0.1.0", "name": "faults", "nodes": nodes, **extra}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def run_cli(*args: Any, preexec_fn: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", "run", *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        preexec_fn=preexec_fn,
    )


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses the NaN / Infinity Python's encoder writes by default."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"bare {constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_workflow_name_too_long_for_a_file_name(tmp_path: Path) -> None:
    name = "n" * 300
    path = write_workflow(tmp_path, [{"id": "a", "type": "echo", "params": {}}], name=name)
    trace_dir = tmp_path / "traces"
    completed = run_cli(path, "--trace-dir", trace_dir)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    (written,) = [file for file in trace_dir.iterdir() if not file.name.endswith(".checkpoint")]
    assert len(written.name) < 200
    assert json.loads(written.read_text(encoding="utf-8"))["workflow_name"] == name


def _mount_tiny_disk(directory: Path) -> bool:
    directory.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return mounted.returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (needs root: skipped elsewhere)."""
    directory = tmp_path / "tiny"
    if not _mount_tiny_disk(directory):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, timeout=10)


def _limit_file_size() -> None:
    """In the child: files may not grow past 64 KiB, and writing past it is EFBIG, not death."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))


def big_output_workflow(tmp_path: Path) -> Path:
    node = {"id": "big", "type": "code", "params": {"code": "result = 'x' * 1500"}}
    batch = {
        "id": "many",
        "type": "code",
        "params": {"code": "result = 'y' * 1500"},
        "batch": {"items": list(range(200))},
    }
    return write_workflow(tmp_path, [node, batch], outputs={"size": "${many.count}"})


def assert_reported_not_written(completed: subprocess.CompletedProcess[str], path: Path) -> None:
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "status: success" in completed.stdout and "size: 200" in completed.stdout
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    assert errors[0].startswith(f"error: cannot write the trace file {path}: ")
    assert not path.exists()


def test_a_full_disk_still_prints_the_summary_then_one_error_line(
    tmp_path: Path, tiny_disk: Path
) -> None:
    target = tiny_disk / "run.trace.json"
    completed = run_cli(big_output_workflow(tmp_path), "--trace-file", target)
    assert_reported_not_written(completed, target)
    assert completed.stderr.strip().endswith("No space left on device")
    assert [entry.name for entry in tiny_disk.iterdir()] == []


def test_a_file_size_limit_is_reported_the_same_way(tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.trace.json"
    completed = run_cli(
        big_output_workflow(tmp_path), "--trace-file", target, preexec_fn=_limit_file_size
    )
    assert_reported_not_written(completed, target)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(
    "code",
    [
        "result = {'nan': float('nan'), 'inf': float('inf'), 'big': 10 ** 5000}",
        "result = [float('-inf'), -(10 ** 4400)]",
    ],
)
def test_values_json_cannot_hold_keep_every_output_valid_json(tmp_path: Path, code: str) -> None:
    nodes = [
        {"id": "odd", "type": "code", "params": {"code": code}},
        {
            "id": "per_item",
            "type": "code",
            "params": {"code": code.replace("result =", "result = x if False else")},
            "batch": {"items": [1, 2]},
        },
    ]
    path = write_workflow(tmp_path, nodes, outputs={"odd": "${odd.result}"})
    trace = tmp_path / "run.trace.json"
    completed = run_cli(path, "--output-format", "json", "--trace-file", trace)
    assert completed.returncode == 0, completed.stderr
    payload = strict_json(completed.stdout)
    assert payload["status"] == "success"
    rendered = json.dumps(payload["outputs"])
    assert "nan" in rendered or "inf" in rendered
    strict_json(trace.read_text(encoding="utf-8"))
    text = run_cli(path, "--trace-file", tmp_path / "text.trace.json")
    assert text.returncode == 0 and "Traceback" not in text.stderr


def test_a_code_node_raising_keyboard_interrupt_is_that_node_failing(tmp_path: Path) -> None:
    nodes = [
        {"id": "bad", "type": "code", "params": {"code": "raise KeyboardInterrupt('mine')"}},
        {"id": "after", "type": "echo", "params": {}},
    ]
    completed = run_cli(write_workflow(tmp_path, nodes), "--output-format", "json")
    assert completed.returncode == 1, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["status"] == "failed"
    assert payload["error"] == "node 'bad' failed: KeyboardInterrupt: mine"


def test_a_code_batch_item_raising_keyboard_interrupt_fails_only_that_item(tmp_path: Path) -> None:
    node = {
        "id": "items",
        "type": "code",
        "params": {
            "code": "if x == 1:\n    raise KeyboardInterrupt\nresult = x",
            "inputs": {"x": "${item}"},
        },
        "batch": {"items": [0, 1, 2], "parallel": True, "error_handling": "continue"},
    }
    completed = run_cli(write_workflow(tmp_path, [node]), "--output-format", "json")
    assert completed.returncode == 0, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["status"] == "degraded"
    assert payload["nodes"]["items"]["errors"] == [
        {"index": 1, "item": 1, "error": "KeyboardInterrupt"}
    ]


def loop_workflow(tmp_path: Path) -> Path:
    nodes = [
        {"id": "start", "type": "echo", "params": {}},
        {"id": "a", "type": "echo", "params": {"__action__": "again"}},
        {"id": "b", "type": "echo", "params": {"__action__": "again"}},
    ]
    edges = [
        {"from": "start", "to": "a"},
        {"from": "a", "to": "b", "action": "again"},
        {"from": "b", "to": "a", "action": "again"},
    ]
    return write_workflow(tmp_path, nodes, edges=edges)


def test_an_endless_edge_loop_fails_at_the_limit_naming_the_loop(tmp_path: Path) -> None:
    trace = tmp_path / "run.trace.json"
    completed = run_cli(
        loop_workflow(tmp_path),
        "--max-node-visits",
        "41",
        "--output-format",
        "json",
        "--trace-file",
        trace,
    )
    assert completed.returncode == 1, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["status"] == "failed"
    assert payload["error"].startswith(
        "node 'a' failed: the run reached its limit of 41 node executions in the loop a → b → a;"
    )
    assert "--max-node-visits" in payload["error"]
    document = json.loads(trace.read_text(encoding="utf-8"))
    # The refused 42nd execution never started, so it has no event.
    assert document["nodes_executed"] == 41 and document["failed_node"] == "a"


@pytest.mark.slow
def test_the_default_limit_stops_a_loop_too(tmp_path: Path) -> None:
    completed = run_cli(loop_workflow(tmp_path), "--no-trace-file", "--output-format", "json")
    assert completed.returncode == 1
    assert "limit of 10,000 node executions in the loop" in json.loads(completed.stdout)["error"]


def test_an_action_no_edge_follows_fails_the_run(tmp_path: Path) -> None:
    nodes = [
        {"id": "route", "type": "echo", "params": {"__action__": "nope"}},
        {"id": "next", "type": "echo", "params": {}},
        {"id": "other", "type": "echo", "params": {}},
        {"id": "end", "type": "echo", "params": {"__action__": "done"}},
    ]
    edges = [
        {"from": "route", "to": "next"},
        {"from": "route", "to": "other", "action": "blocked"},
    ]
    completed = run_cli(
        write_workflow(tmp_path, nodes, edges=edges), "--output-format", "json", "--no-trace-file"
    )
    assert completed.returncode == 1, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["status"] == "failed"
    assert payload["error"] == (
        "node 'route' failed: returned action 'nope', but no edge from 'route' has that action "
        "(its edges: 'default', 'blocked')"
    )


def test_a_node_without_edges_out_may_return_any_action(tmp_path: Path) -> None:
    nodes = [
        {"id": "first", "type": "echo", "params": {}},
        {"id": "end", "type": "echo", "params": {"__action__": "done"}},
    ]
    edges = [{"from": "first", "to": "end"}]
    completed = run_cli(
        write_workflow(tmp_path, nodes, edges=edges), "--output-format", "json", "--no-trace-file"
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["status"] == "success"
