"""End to end: what nodes say on their own — exceptions, stderr, logging, a provider's fields —
reaches no output with a secret in it, on every executor.

A ``code`` batch writes a sensitive input to ``sys.stderr`` and ``logging`` and raises
``asyncio.CancelledError`` and a ``BaseException`` of its own quoting it; an ``llm`` node talks
to a server that echoes a short API key in the response's id, model and finish reason. Each
runs through the CLI in a subprocess; its stdout and stderr, the trace, ``show --json`` and an
export are searched for the secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_server import chat_server, configure_model
from subprocess_env import clean_env

PIN = "pin-7c1d-secret-5511"
SHORT_KEY = "k-7q2"

CODE = """\
import asyncio, logging, sys
sys.stderr.write('stderr ' + pin + '\\n')
logging.warning('logged %s', pin)
class Mine(BaseException):
    pass
if item == 2:
    raise asyncio.CancelledError('cancelled ' + pin)
if item == 3:
    raise Mine('mine\\n' + pin)
result = item
"""


def cli(*arguments: Any, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def code_workflow() -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "code-secrets",
        "inputs": {"pin": {"type": "string", "sensitive": True}},
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": CODE, "inputs": {"pin": "${pin}", "item": "${item}"}},
                "batch": {"items": [1, 2, 3], "parallel": True, "error_handling": "continue"},
            }
        ],
    }


@pytest.mark.parametrize("executor", ["threads", "processes", "dask"])
def test_a_code_nodes_exceptions_stderr_and_logging_leak_nowhere(
    tmp_path: Path, executor: str
) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(code_workflow()))
    trace = tmp_path / "run.trace.json"
    env = clean_env()
    text = cli(
        "run", workflow, f"pin={PIN}", "--executor", executor, "--trace-file", trace, env=env
    )
    assert text.returncode == 0, text.stderr  # two items failed: degraded, not a crash
    assert "Traceback" not in text.stderr
    assert "CancelledError: cancelled <redacted>" in text.stdout
    assert "Mine: mine | <redacted>" in text.stdout
    as_json = cli(
        "run", workflow, f"pin={PIN}", "--executor", executor, "--output-format", "json",
        "--no-trace-file", env=env,
    )  # fmt: skip
    shown = cli("show", trace, "--json", env=env)
    recorded = trace.read_text()
    assert "logged <redacted>" in recorded and "stderr <redacted>" in recorded
    for where, output in {
        "run stdout": text.stdout,
        "run stderr": text.stderr,
        "json stdout": as_json.stdout,
        "json stderr": as_json.stderr,
        "trace": recorded,
        "show --json": shown.stdout + shown.stderr,
    }.items():
        assert PIN not in output, f"{where} leaks the pin"


def test_a_short_key_echoed_by_the_server_leaks_nowhere(tmp_path: Path) -> None:
    user_dir = tmp_path / "llm-user"
    workflow = tmp_path / "wf.json"
    params = {"prompt": "ECHO-KEY ${item}", "model": "local-gpt"}
    node = {"id": "ask", "type": "llm", "params": params, "batch": {"items": ["a", "b"]}}
    workflow.write_text(json.dumps({"ir_version": "0.1.0", "name": "echo-key", "nodes": [node]}))
    trace = tmp_path / "run.trace.json"
    exported = tmp_path / "run.otlp.json"
    env = clean_env(LLM_USER_PATH=str(user_dir), OPENAI_API_KEY=SHORT_KEY)
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base, key_name="openai")
        text = cli("run", workflow, "--exporter", "console", "--trace-file", trace, env=env)
        as_json = cli("run", workflow, "--output-format", "json", "--no-trace-file", env=env)
    assert text.returncode == 0, text.stderr
    assert log.requests[0]["auth"] == f"Bearer {SHORT_KEY}"  # sent, and echoed back
    usage = json.loads(as_json.stdout)["nodes"]["ask"]["results"][0]["llm_usage"]
    assert usage["response_id"] == "chatcmpl-<redacted>"
    export = cli("export", trace, "--format", "otlp-json", "-o", exported, env=env)
    shown = cli("show", trace, "--json", env=env)
    for where, output in {
        "run (console spans)": text.stdout + text.stderr,
        "run json": as_json.stdout + as_json.stderr,
        "trace": trace.read_text(),
        "export": exported.read_text() + export.stdout + export.stderr,
        "show --json": shown.stdout + shown.stderr,
    }.items():
        assert SHORT_KEY not in output, f"{where} leaks the key"
