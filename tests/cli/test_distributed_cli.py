"""End to end: a Dask scheduler and two workers started as separate processes, as a user would,
and ``pflow-trace run --executor dask --scheduler ADDRESS`` in a subprocess. Everything binds
to 127.0.0.1 on free ports; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from subprocess_env import clean_env

#: A Dask scheduler and workers started as separate processes (about 25 s).
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60
FAILING_FIVE = """
import os
if x == 5:
    raise ValueError("refused with key " + key)
result = [x * x, os.getpid()]
"""


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` plus two ``dask worker`` processes on loopback; yields the address."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "cluster.log").open("wb")
    env = clean_env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            stdout=logs, stderr=subprocess.STDOUT, env=env,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                     "--nthreads", "1", "--no-dashboard", "--death-timeout", "30"],
                    stdout=logs, stderr=subprocess.STDOUT, env=env,
                )
            )  # fmt: skip
        with Client(address, set_as_default=False, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        _stop(processes[::-1])
        logs.close()


def test_run_on_a_cluster_started_as_separate_processes(tmp_path: Path, cluster: str) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "on-a-cluster",
                "inputs": {"key": {"type": "string", "sensitive": True}},
                "nodes": [
                    {
                        "id": "square",
                        "type": "code",
                        "params": {
                            "code": FAILING_FIVE,
                            "inputs": {"x": "${item}", "key": "${key}"},
                        },
                        "batch": {
                            "items": [0, 1, 2, 3, 4, 5],
                            "parallel": True,
                            "error_handling": "continue",
                        },
                    }
                ],
                "outputs": {"squares": "${square.results}"},
            }
        )
    )
    trace = tmp_path / "run.trace.json"
    result = subprocess.run(
        [str(BIN / "pflow-trace"), "run", str(workflow), "key=hunter2-secret",
         "--executor", "dask", "--scheduler", cluster, "--trace-file", str(trace),
         "--output-format", "json"],
        capture_output=True, text=True, timeout=120, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    squares = payload["outputs"]["squares"]
    # results hold the successes in item order, as pflow's do; the failed item is in errors
    assert [entry["result"][0] for entry in squares] == [0, 1, 4, 9, 16]
    assert [entry["original_index"] for entry in squares] == [0, 1, 2, 3, 4]
    document = json.loads(trace.read_text())
    (event,) = document["nodes"]
    records = event["batch_items"]
    addresses = {record["worker_address"] for record in records}
    assert len(addresses) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in addresses)
    assert {record["pid"] for record in records} >= {entry["result"][1] for entry in squares}
    assert records[5]["error"] == "ValueError: refused with key <redacted>"
    table = document["otel"]["spans"]
    kinds = [table["kinds"][row[0]]["name"] for row in table["rows"]]
    assert kinds.count("square batch.item") == 6
    assert kinds.count("square node") == 6
    # The error left the worker redacted: the driver writes item errors and span statuses as
    # they arrive, so the secret would be in the file had the worker not redacted it.
    assert "hunter2-secret" not in trace.read_text()

    shown = subprocess.run(
        [str(BIN / "pflow-trace"), "show", str(trace), "--no-color"],
        capture_output=True, text=True, timeout=60, env=clean_env(),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "by worker (2)" in shown.stdout
    for address in addresses:
        assert address in shown.stdout
