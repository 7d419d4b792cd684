"""Signals against a real ``pflow-trace run`` in a subprocess: the trace is never lost or wrong.

Each test starts a run, waits for a marker the workflow itself writes (so the signal lands at a
known point, not after a guessed sleep), sends Ctrl-C, SIGTERM or SIGHUP, and then checks the
trace item by item against its own span table: every item that started has exactly one record
and one ``batch.item`` span with the same outcome, and no child process outlives the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.replay.load import load_replay_trace
from pflow_trace.tracefile.replay_model import STATUS_ERROR
from subprocess_env import clean_env

#: Real signals to CLI subprocesses mid-run, and waits for their children.
pytestmark = pytest.mark.slow

#: How long any wait in these tests may take before the test fails instead of hanging.
PATIENCE_S = 60


def write_workflow(directory: Path, nodes: list[dict[str, Any]], **extra: Any) -> Path:
    path = directory / "wf.json"
    document = {"ir_version": "0.1.0", "name": "signals", "nodes": nodes, **extra}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def start_run(workflow: Path, trace: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pflow_trace", "run", str(workflow)]
    return subprocess.Popen(
        [*command, "--trace-file", str(trace), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(PYTHONUNBUFFERED="1"),
    )


def wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            pytest.fail(f"the run ended before {what}: {stdout}\n{stderr}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=PATIENCE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stdout, stderr


def items_against_spans(trace: Path, node_id: str) -> dict[int, str]:
    """index -> status of every item record, after checking each has one matching span."""
    document = json.loads(trace.read_text(encoding="utf-8"))
    (event,) = [node for node in document["nodes"] if node["node_id"] == node_id]
    records = event["batch_items"]
    spans = [span for span in load_replay_trace(trace).spans if span.layer == "batch.item"]
    spans_by_index: dict[int, list[Any]] = {}
    for span in spans:
        spans_by_index.setdefault(span.attributes["pflow.batch.index"], []).append(span)
    statuses: dict[int, str] = {}
    for record in records:
        index = record["index"]
        assert index not in statuses, f"item {index} has two records"
        statuses[index] = record["status"]
        assert len(spans_by_index.get(index, [])) == 1, f"item {index}: not exactly one span"
        (span,) = spans_by_index[index]
        assert span.span_id == record["span_id"]
        if record["status"] == "success":
            assert span.status_code != STATUS_ERROR
        else:
            assert span.status_code == STATUS_ERROR
            assert span.status_message == record["error"]
        if record["status"] == "interrupted":
            assert record["error"] == "interrupted"
    assert sorted(spans_by_index) == sorted(statuses), "a span without a record, or the reverse"
    return statuses


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent (init, here): it runs nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def assert_no_survivors(pid_dir: Path) -> None:
    pids = [int(path.read_text()) for path in pid_dir.glob("*.pid") if path.read_text().strip()]
    assert pids, "no command recorded its pid"
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if alive(pid)] == []


def shell_batch(pid_dir: Path, count: int, lanes: int) -> dict[str, Any]:
    """Items that record their shell's and their ``sleep``'s pids, then sleep for 30 s."""
    command = (
        f"sleep 30 & echo $! > '{pid_dir}'/sleep-${{item}}.pid; "
        f"echo $$ > '{pid_dir}'/sh-${{item}}.pid; wait"
    )
    return {
        "id": "work",
        "type": "shell",
        "params": {"command": command},
        "batch": {"items": list(range(count)), "parallel": True, "max_concurrent": lanes},
    }


@pytest.mark.parametrize(
    ("signal_number", "cause"),
    [
        (signal.SIGINT, "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, "interrupted by SIGTERM"),
        (signal.SIGHUP, "interrupted by SIGHUP"),
    ],
)
def test_a_signal_during_parallel_commands_interrupts_them_and_kills_their_children(
    tmp_path: Path, signal_number: int, cause: str
) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    trace = tmp_path / "run.trace.json"
    process = start_run(write_workflow(tmp_path, [shell_batch(pid_dir, 6, 3)]), trace)
    wait_for(lambda: len(list(pid_dir.glob("sleep-*.pid"))) >= 3, process, "three items ran")
    time.sleep(0.1)  # the third item's shell has written its own pid too
    process.send_signal(signal_number)
    code, stdout, stderr = finish(process)

    assert code == 128 + signal_number, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "status: interrupted" in stdout
    document = json.loads(trace.read_text(encoding="utf-8"))
    assert document["final_status"] == "interrupted" and document["error"] == cause
    statuses = items_against_spans(trace, "work")
    assert statuses == {0: "interrupted", 1: "interrupted", 2: "interrupted"}
    assert_no_survivors(pid_dir)


def test_ctrl_c_on_the_processes_executor_leaves_no_command_running(tmp_path: Path) -> None:
    """Worker processes are stopped with their shell commands (and those commands' children),
    not killed alone, which left each running ``sh`` and its ``sleep`` orphaned."""
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    trace = tmp_path / "run.trace.json"
    workflow = write_workflow(tmp_path, [shell_batch(pid_dir, 4, 2)])
    process = start_run(workflow, trace, "--executor", "processes")
    wait_for(lambda: len(list(pid_dir.glob("sh-*.pid"))) >= 2, process, "two items ran")
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(process)

    assert code == 128 + signal.SIGINT, (stdout, stderr)
    assert "Traceback" not in stderr
    assert_no_survivors(pid_dir)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["while the cluster starts", "as the first item starts"])
def test_a_signal_on_the_dask_executor_leaves_no_command_running(
    tmp_path: Path, signal_number: int, moment: str
) -> None:
    """The run's own ``LocalCluster``: a signal while it starts stops the run before any item
    is handed out; one just after the first command started interrupts it on its worker, and
    the command and its child die with it (a cancel that reached the worker while it was still
    setting the item up used to miss it, leaving ``sh`` and ``sleep`` running)."""
    pytest.importorskip("distributed")
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    trace = tmp_path / "run.trace.json"
    workflow = write_workflow(tmp_path, [shell_batch(pid_dir, 4, 2)])
    process = start_run(workflow, trace, "--executor", "dask")
    if moment == "while the cluster starts":
        # The first worker processes appear while the cluster is still starting.
        wait_for(lambda: bool(_dask_processes(process.pid)), process, "the cluster started")
    else:
        wait_for(lambda: bool(list(pid_dir.glob("sh-*.pid"))), process, "an item started")
    process.send_signal(signal_number)
    code, stdout, stderr = finish(process)

    assert code == 128 + signal_number, (stdout, stderr)
    assert "Traceback" not in stderr
    document = json.loads(trace.read_text(encoding="utf-8"))
    assert document["final_status"] == "interrupted"
    statuses = items_against_spans(trace, "work")
    assert set(statuses.values()) <= {"interrupted"}
    if moment == "while the cluster starts" and not list(pid_dir.glob("*.pid")):
        assert statuses == {}  # nothing was handed out
    else:
        time.sleep(0.2)  # a command that started just now has written its pid
        assert_no_survivors(pid_dir)


def _dask_processes(parent: int) -> list[int]:
    """The run's child processes, started by any of its threads (the cluster's workers are
    started from Dask's event-loop thread)."""
    pids: list[int] = []
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return pids


def test_ctrl_c_during_parallel_code_records_the_items_still_running(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    code = (
        "import time, pathlib\n"
        "if x == 3:\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "time.sleep(0.05 if x < 3 else 30)\n"
        "result = x"
    )
    node = {
        "id": "work",
        "type": "code",
        "params": {"code": code, "inputs": {"x": "${item}"}},
        "batch": {"items": list(range(8)), "parallel": True, "max_concurrent": 2},
    }
    trace = tmp_path / "run.trace.json"
    process = start_run(write_workflow(tmp_path, [node]), trace)
    wait_for(marker.exists, process, "item 3 started")
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code_, stdout, stderr = finish(process)

    assert code_ == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    statuses = items_against_spans(trace, "work")
    # Items 0-2 finished; 3 is asleep on one lane, and the other lane took item 4 and sleeps.
    assert {index: status for index, status in statuses.items() if index < 3} == {
        0: "success",
        1: "success",
        2: "success",
    }
    assert statuses[3] == "interrupted" and statuses[4] == "interrupted"
    assert len(statuses) == 5
    summary = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "show", str(trace), "--json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=PATIENCE_S,
    )
    (run,) = json.loads(summary.stdout)["runs"]
    (batch_node,) = [node for node in run["nodes"] if node["node_id"] == "work"]
    assert batch_node["batch"]["interrupted_count"] == 2
    shown = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "show", str(trace)],
        capture_output=True,
        text=True,
        env=clean_env(NO_COLOR="1"),
        timeout=PATIENCE_S,
    )
    assert "2 interrupted" in shown.stdout


def test_ctrl_c_in_a_sequential_batch_records_the_item_it_cut_short(tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    node = shell_batch(pid_dir, 5, 1)
    node["batch"] = {"items": list(range(5))}
    before = {"id": "quick", "type": "shell", "params": {"command": "true"}}
    trace = tmp_path / "run.trace.json"
    process = start_run(write_workflow(tmp_path, [before, node]), trace)
    wait_for(lambda: (pid_dir / "sh-0.pid").exists(), process, "item 0 started")
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(process)

    assert code == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert items_against_spans(trace, "work") == {0: "interrupted"}
    assert_no_survivors(pid_dir)


def test_a_signal_while_the_trace_is_written_waits_for_the_trace(tmp_path: Path) -> None:
    """A finished run of many items; Ctrl-C lands while it is being recorded and written."""
    marker = tmp_path / "last-item-done"
    count = 3000
    node = {
        "id": "work",
        "type": "code",
        "params": {
            "code": f"result = x\nif x == {count - 1}:\n    open({str(marker)!r}, 'w').close()",
            "inputs": {"x": "${item}"},
        },
        "batch": {"items": list(range(count))},
    }
    trace = tmp_path / "run.trace.json"
    process = start_run(write_workflow(tmp_path, [node]), trace)
    wait_for(marker.exists, process, "the last item finished")
    # At once: recording 3,000 items and writing the trace take tens of milliseconds on a quiet
    # machine, and a signal after the process has finished would find no run to stop.
    process.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(process)

    assert code == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    document = json.loads(trace.read_text(encoding="utf-8"))
    assert document["final_status"] == "success"
    statuses = items_against_spans(trace, "work")
    assert len(statuses) == count and set(statuses.values()) == {"success"}
    assert not list(tmp_path.glob(".trace-*"))


@pytest.mark.parametrize("module", ["click", "pflow_trace.cli.run", "pflow_trace.api"])
def test_ctrl_c_while_the_command_loads_is_one_line(tmp_path: Path, module: str) -> None:
    """Ctrl-C in the first moments lands in an import; it stands in for the signal here, raised
    by an import hook exactly when ``module`` loads (a real signal's timing depends on the
    machine, and before Python itself is up nothing of ours can answer it)."""
    workflow = write_workflow(tmp_path, [{"id": "a", "type": "echo", "params": {}}])
    program = (
        "import sys\n"
        "from pflow_trace.cli.entry import main\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        f"main(['run', {str(workflow)!r}, '--no-trace-file'])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=PATIENCE_S,
    )
    assert completed.returncode == 130, completed.stderr
    assert completed.stderr == "interrupted\n"
