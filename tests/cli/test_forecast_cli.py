"""``pflow-trace run --dry-run`` and ``--pilot`` end to end, in subprocesses, on the echo model.

The dry run is compared with a real run of the same workflow (item count and cost range),
before and after there is history in the trace directory; the pilot is answered on a
pseudo-terminal and by ``--yes``; flags that do not go together get one line and exit 2.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from subprocess_env import clean_env

#: CLI subprocesses that make LLM calls on the echo model.
pytestmark = pytest.mark.slow

WORKFLOW: dict[str, Any] = {
    "ir_version": "0.1.0",
    "name": "fc-cli",
    "inputs": {"topics": {"type": "array", "description": "Topics", "required": True}},
    "nodes": [
        {
            "id": "explain",
            "type": "llm",
            "purpose": "Explain each topic",
            "params": {"model": "echo", "prompt": "Explain ${topic} in two sentences."},
            "batch": {"items": "${topics}", "as": "topic", "parallel": True, "max_concurrent": 3},
        }
    ],
    "outputs": {"explained": "${explain.success_count}"},
}
TOPICS = [
    "tides",
    "the water cycle of a small mountain lake in early spring",
    "rust",
    "why bread rises when it is left in a warm kitchen overnight",
    "compound interest",
    "eclipses",
    "how a bicycle stays upright while it moves",
    "lightning",
]


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(WORKFLOW))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"echo": {"input": 3.0, "output": 9.0}}}))
    traces = tmp_path / "traces"
    return {"workflow": workflow, "prices": prices, "traces": traces}


def cli(*arguments: Any, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        stdin=stdin,
    )


def run_args(setup: dict[str, Any], *extra: Any) -> list[Any]:
    return [
        "run", setup["workflow"], f"topics={json.dumps(TOPICS)}", "--prices", setup["prices"],
        "--trace-dir", setup["traces"], *extra,
    ]  # fmt: skip


def real_run(setup: dict[str, Any]) -> dict[str, Any]:
    completed = cli(*run_args(setup, "--output-format", "json"))
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_dry_run_of_an_unseen_workflow_brackets_the_real_run(setup: dict[str, Any]) -> None:
    completed = cli(*run_args(setup, "--dry-run", "--output-format", "json"))
    assert completed.returncode == 0, completed.stderr
    forecast = json.loads(completed.stdout)
    assert forecast["schema"] == "pflow-trace/forecast" and forecast["history_runs"] == 0
    assert not setup["traces"].exists()  # nothing ran, nothing was written
    (node,) = forecast["nodes"]
    assert node["source"] == "prompt sizes" and node["items"]["estimate"] == len(TOPICS)
    assert forecast["items"] == {"estimate": 8, "low": 8, "high": 8}
    text = cli(*run_args(setup, "--dry-run")).stdout
    assert "dry run of fc-cli (no past runs" in text
    assert f"items {len(TOPICS)}" in text and "total LLM cost: $" in text
    assert "total batch items: 8" in text

    real = real_run(setup)
    assert real["llm"]["calls"] == node["items"]["estimate"]
    cost = forecast["cost_usd"]
    assert cost["low"] <= real["llm"]["cost_usd"] <= cost["high"]


def test_dry_run_with_history_uses_the_past_runs(setup: dict[str, Any]) -> None:
    first, second = real_run(setup), real_run(setup)
    completed = cli(*run_args(setup, "--dry-run", "--output-format", "json"))
    forecast = json.loads(completed.stdout)
    assert forecast["history_runs"] == 2
    assert forecast["nodes"][0]["source"] == "history (2 runs)"
    cost = forecast["cost_usd"]
    for real in (first, second):
        assert cost["low"] <= real["llm"]["cost_usd"] <= cost["high"]
    assert "(from 2 past runs)" in cli(*run_args(setup, "--dry-run")).stdout


def test_dry_run_without_a_price_says_price_unknown(setup: dict[str, Any]) -> None:
    arguments = run_args(setup, "--dry-run")
    at = arguments.index("--prices")
    del arguments[at : at + 2]
    text = cli(*arguments).stdout
    assert "price unknown for echo" in text and "$0" not in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dry-run", "--pilot", "2"], "--dry-run sends nothing"),
        (["--yes"], "--yes answers --pilot's question"),
        (["--pilot-seed", "3"], "--pilot-seed is for --pilot K"),
        (["--pilot", "2"], "stdin is not a terminal: add --yes"),
        (["--pilot", "0", "--yes"], "--pilot: expected 1 or more, got 0"),
        (["--pilot", "two", "--yes"], "--pilot: expected a whole number, got 'two'"),
        (["--pilot", "2", "--pilot-seed", "x", "--yes"], "--pilot-seed: expected a whole number"),
        (["--dry-run", "--resume", "x.json"], "--dry-run forecasts a new run"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(
    setup: dict[str, Any], extra: list[str], message: str
) -> None:
    completed = cli(*run_args(setup, *extra))
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and message in completed.stderr
    assert not setup["traces"].exists()


def test_pilot_with_yes_prints_the_projection_and_runs_every_item_once(
    setup: dict[str, Any],
) -> None:
    completed = cli(*run_args(setup, "--pilot", "3", "--pilot-seed", "11", "--yes"))
    assert completed.returncode == 0, completed.stderr
    assert "pilot of batch 'explain': 3 of 8 items (seed 11" in completed.stderr
    assert "the other 5 items on 3 lanes" in completed.stderr
    assert "llm: 8 calls" in completed.stdout  # the pilot's three were not made twice
    (trace,) = setup["traces"].glob("*.json")
    pilot = json.loads(trace.read_text())["nodes"][0]["pilot"]
    assert pilot["seed"] == 11 and len(pilot["indices"]) == 3


def ask_on_a_terminal(arguments: list[Any], answer: bytes) -> tuple[int, str]:
    """Run the CLI with stdin and stdout on a pseudo-terminal; answer the question."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**clean_env(), "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    seen, answered, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(leader, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(timeout=30), seen.decode("utf-8", "replace")


def test_pilot_asks_on_a_terminal_and_no_stops_the_run(setup: dict[str, Any]) -> None:
    code, screen = ask_on_a_terminal(run_args(setup, "--pilot", "2", "--pilot-seed", "5"), b"n\n")
    assert "go on with the other 6 items? [y/N]" in screen
    assert code == 130 and "stopped after the pilot of batch 'explain'" in screen
    code, screen = ask_on_a_terminal(run_args(setup, "--pilot", "2", "--pilot-seed", "5"), b"y\n")
    assert code == 0 and "status: success" in screen and "llm: 8 calls" in screen


def test_a_refused_workflow_in_json_mode_is_one_invalid_object(setup: dict[str, Any]) -> None:
    completed = cli("run", setup["workflow"], "--dry-run", "--output-format", "json")
    assert completed.returncode == 2
    answer = json.loads(completed.stdout)
    assert answer["status"] == "invalid" and "topics" in answer["errors"][0]
