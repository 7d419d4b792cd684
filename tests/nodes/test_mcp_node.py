"""MCP tool nodes run for real against ``tests/mcp_server.py`` (the ``mcp`` SDK's own server),
over stdio and over streamable HTTP on 127.0.0.1.

Each test writes an MCP config in pflow's format to a temporary file named by
``PFLOW_TRACE_MCP_CONFIG``, runs a workflow with the public API (or the CLI in a subprocess)
and reads the outputs, the spans (through the SDK's in-memory exporter) and the trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace import api
from pflow_trace.api import TracedRun, TraceOptions
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import WorkCancelled, cancel_running_work, reset_cancellation
from pflow_trace.nodes.mcp_config import ENV_MCP_CONFIG, server_config
from pflow_trace.nodes.mcp_sessions import pool
from pflow_trace.nodes.registry import default_registry
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from subprocess_env import clean_env

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "mcp_server.py"
SECRET = "mcp-env-secret-4e7a91"
TOKEN = "mcp-bearer-token-93b1c2"
#: A "server" that answers with a line that is not JSON-RPC, says why on stderr, and exits.
GARBLED_SERVER = "import sys; print('not json'); sys.stderr.write('cannot open db\\n')"


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def stdio_entry() -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT)],
        "env": {"MCP_TEST_SECRET": "${MCP_TEST_SECRET_SOURCE}"},
    }


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config with the test server (a dash in its name) and one that cannot start."""
    path = write_config(
        tmp_path / "mcp-servers.json",
        {
            "test-srv": stdio_entry(),
            "broken": {"command": str(tmp_path / "no-such-server")},
            "garbled": {"command": sys.executable, "args": ["-c", GARBLED_SERVER]},
        },
    )
    monkeypatch.setenv(ENV_MCP_CONFIG, str(path))
    monkeypatch.setenv("MCP_TEST_SECRET_SOURCE", SECRET)
    yield path
    pool.close_all()


def workflow(node_type: str, params: dict[str, Any], **node: Any) -> dict[str, Any]:
    document = {
        "ir_version": "0.1.0",
        "name": "mcp",
        "nodes": [{"id": "call", "type": node_type, "params": params, **node}],
    }
    return validate_workflow(document)


def run_traced(document: dict[str, Any], **options: Any) -> tuple[TracedRun, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    outcome = api.run(
        document,
        {},
        TraceOptions(
            export=resolve_export_settings("none", env={}),
            join_env_trace_context=False,
            extra_processors=[SimpleSpanProcessor(exporter)],
            **{"write_trace_file": False, **options},
        ),
    )
    return outcome, list(exporter.get_finished_spans())


def call_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith("tools/call")]


# -- calls ---------------------------------------------------------------------------------


def test_a_tool_call_outputs_its_result(config: Path) -> None:
    outcome, _ = run_traced(workflow("mcp-test-srv-echo", {"text": "hello"}))
    assert outcome.result.record.status == "success"
    assert outcome.result.nodes["call"]["result"] == "hello"


def test_json_text_becomes_data_and_structured_content_wins(config: Path) -> None:
    outcome, _ = run_traced(workflow("mcp-test-srv-echo", {"text": '{"count": 3}'}))
    assert outcome.result.nodes["call"]["result"] == {"count": 3}
    outcome, _ = run_traced(workflow("mcp-test-srv-session", {}))
    assert set(outcome.result.nodes["call"]["result"]) == {"pid", "session"}


def test_result_format_json_block_parses_the_fenced_block(config: Path) -> None:
    params = {"body": '{"count": 42}', "result_format": "json_block"}
    outcome, _ = run_traced(workflow("mcp-test-srv-fenced", params))
    assert outcome.result.nodes["call"]["result"] == {"count": 42}
    without, _ = run_traced(workflow("mcp-test-srv-fenced", {"body": "{}"}))
    assert without.result.nodes["call"]["result"].startswith("Here is the answer:")


def test_result_format_json_block_without_one_block_fails(config: Path) -> None:
    params = {"text": "no block here", "result_format": "json_block"}
    outcome, spans = run_traced(workflow("mcp-test-srv-echo", params))
    assert outcome.result.record.error == (
        "node 'call' failed: mcp: test-srv/echo: result_format 'json_block' needs exactly one "
        "```json block; the text has 0"
    )
    assert call_spans(spans)[0].attributes[conv.ATTR_ERROR_TYPE] == "result_format"


def test_an_unknown_result_format_is_refused(config: Path) -> None:
    outcome, _ = run_traced(workflow("mcp-test-srv-echo", {"text": "x", "result_format": "yaml"}))
    assert "'result_format' 'yaml' is not supported" in outcome.result.record.error


def test_a_batch_reuses_one_session(config: Path) -> None:
    node = workflow(
        "mcp-test-srv-session",
        {},
        batch={"items": list(range(6)), "parallel": True, "max_concurrent": 3},
    )
    outcome, spans = run_traced(node)
    assert outcome.result.record.status == "success"
    answers = [item["result"] for item in outcome.result.nodes["call"]["results"]]
    assert len(answers) == 6
    assert len({(answer["pid"], answer["session"]) for answer in answers}) == 1
    assert len(call_spans(spans)) == 6
    # A second run in the same process still talks to the same server process.
    again, _ = run_traced(workflow("mcp-test-srv-session", {}))
    assert again.result.nodes["call"]["result"]["pid"] == answers[0]["pid"]
    assert pool.open_count() == 1


def test_a_batch_starts_the_server_before_its_items(config: Path) -> None:
    node_class = default_registry().get("mcp-test-srv-echo")
    assert node_class is not None and pool.open_count() == 0
    node_class("call").prepare()
    assert pool.open_count() == 1
    default_registry().get("mcp-broken-echo")("call").prepare()  # type: ignore[misc]
    assert pool.open_count() == 1  # a server that does not start is left to the items


def test_an_is_error_result_fails_the_node_with_error_outputs(config: Path) -> None:
    outcome, spans = run_traced(workflow("mcp-test-srv-fail", {"message": "disk full"}))
    record = outcome.result.record
    assert record.status == "failed" and record.failed_node == "call"
    assert "mcp: test-srv/fail: the tool reported an error" in record.error
    assert "disk full" in record.error and "\n" not in record.error
    node = outcome.result.nodes["call"]
    assert "disk full" in node["error"]
    assert node["error_details"] == {"server": "test-srv", "tool": "fail", "is_tool_error": True}
    (span,) = call_spans(spans)
    assert span.attributes[conv.ATTR_ERROR_TYPE] == conv.MCP_ERROR_TOOL
    assert span.status.status_code.name == "ERROR"


def test_an_error_edge_routes_a_tool_error(config: Path) -> None:
    document = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "mcp",
            "nodes": [
                {"id": "call", "type": "mcp-test-srv-fail", "params": {"message": "nope"}},
                {"id": "said", "type": "mcp-test-srv-echo", "params": {"text": "recovered"}},
            ],
            "edges": [{"from": "call", "to": "said", "action": "error"}],
        }
    )
    outcome, _ = run_traced(document)
    assert outcome.result.record.status == "degraded"
    assert outcome.result.nodes["said"]["result"] == "recovered"


def test_a_missing_tool_is_one_line_naming_the_tools(config: Path) -> None:
    outcome, _ = run_traced(workflow("mcp-test-srv-nope", {}))
    error = outcome.result.record.error
    assert error.startswith(
        "node 'call' failed: mcp: test-srv/nope: server 'test-srv' has no tool 'nope'"
    )
    assert "echo" in error and "Traceback" not in error and "\n" not in error


def test_a_server_that_does_not_start_is_one_line(config: Path) -> None:
    outcome, _ = run_traced(workflow("mcp-broken-echo", {}))
    error = outcome.result.record.error
    assert error.startswith(
        "node 'call' failed: mcp: broken/echo: MCP server 'broken' did not start:"
    )
    assert "\n" not in error and "Traceback" not in error


def test_a_server_that_exits_says_what_it_wrote_on_stderr_and_prints_no_traceback(
    config: Path, tmp_path: Path
) -> None:
    document = tmp_path / "flow.json"
    node = {"id": "call", "type": "mcp-garbled-echo", "params": {}}
    document.write_text(
        json.dumps({"ir_version": "0.1.0", "name": "garbled", "nodes": [node]}), encoding="utf-8"
    )
    env = clean_env(**{ENV_MCP_CONFIG: str(config), "MCP_TEST_SECRET_SOURCE": SECRET})
    finished = cli("run", document, "--no-trace-file", env=env)
    assert finished.returncode != 0
    assert (
        "mcp: garbled/echo: MCP server 'garbled' did not start: it closed the connection "
        "before answering (its stderr: cannot open db)"
    ) in finished.stderr + finished.stdout
    assert "Traceback" not in finished.stderr + finished.stdout


def test_a_call_past_its_timeout_fails(config: Path) -> None:
    outcome, spans = run_traced(workflow("mcp-test-srv-sleep", {"seconds": 30, "timeout": 0.5}))
    assert outcome.result.record.error == (
        "node 'call' failed: mcp: test-srv/sleep: no answer within 0.5 s (the 'timeout' param)"
    )
    assert call_spans(spans)[0].attributes[conv.ATTR_ERROR_TYPE] == "timeout"


def test_cancelling_running_work_stops_a_call_in_flight(config: Path) -> None:
    node_class = default_registry().get("mcp-test-srv-sleep")
    assert node_class is not None
    node = node_class("call")
    pool.session(
        server_config(
            "test-srv", json.loads(config.read_text())["mcpServers"]["test-srv"], os.environ
        )
    )
    ended: list[BaseException] = []

    def work() -> None:
        try:
            node.exec({"seconds": 120})
        except BaseException as exc:
            ended.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        for _ in range(6000):  # until the call has registered how to stop it
            if cancel_running_work():
                break
            reset_cancellation()
            time.sleep(0.01)
        else:
            pytest.fail("the call registered no way to cancel it")
        worker.join(60)
    finally:
        reset_cancellation()
    assert len(ended) == 1 and isinstance(ended[0], WorkCancelled)


def test_a_missing_variable_in_the_config_is_one_line(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCP_TEST_SECRET_SOURCE")
    outcome, _ = run_traced(workflow("mcp-test-srv-echo", {"text": "x"}))
    assert outcome.result.record.error == (
        "node 'call' failed: mcp: test-srv/echo: environment variable MCP_TEST_SECRET_SOURCE "
        "is not set (the config of MCP server 'test-srv' refers to it)"
    )


# -- validation ----------------------------------------------------------------------------


def test_a_type_of_no_configured_server_is_one_validation_line(config: Path) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        workflow("mcp-github-create_issue", {})
    (problem,) = caught.value.problems
    assert problem == (
        "nodes[0].type: unknown node type 'mcp-github-create_issue': no configured MCP server "
        f"matches 'mcp-github-create_issue' (in {config}: broken, garbled, test-srv)"
    )


def test_no_config_file_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MCP_CONFIG, str(tmp_path / "absent.json"))
    with pytest.raises(WorkflowValidationError) as caught:
        workflow("mcp-any-tool", {})
    assert "no MCP servers are configured (looked in" in caught.value.problems[0]


# -- spans ---------------------------------------------------------------------------------


def test_each_call_is_a_client_span_under_the_node_span(config: Path) -> None:
    _, spans = run_traced(workflow("mcp-test-srv-echo", {"text": "hi"}))
    (call,) = call_spans(spans)
    (node,) = [span for span in spans if span.attributes.get(conv.ATTR_LAYER) == conv.LAYER_NODE]
    assert call.name == "tools/call echo"
    assert call.kind.name == "CLIENT"
    assert call.parent is not None and call.parent.span_id == node.context.span_id
    attributes = dict(call.attributes)
    assert attributes[conv.MCP_METHOD_NAME] == "tools/call"
    assert attributes[conv.GEN_AI_TOOL_NAME] == "echo"
    assert attributes[conv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attributes[conv.ATTR_MCP_SERVER] == "test-srv"
    assert attributes[conv.NETWORK_TRANSPORT] == "pipe"
    assert attributes[conv.MCP_PROTOCOL_VERSION]
    assert call.status.status_code.name == "UNSET"


# -- secrets -------------------------------------------------------------------------------


def test_an_env_secret_a_tool_echoes_reaches_no_output(config: Path, tmp_path: Path) -> None:
    document = tmp_path / "flow.json"
    document.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "mcp-secret",
                "nodes": [{"id": "leak", "type": "mcp-test-srv-env_secret", "params": {}}],
            }
        ),
        encoding="utf-8",
    )
    trace = tmp_path / "trace.json"
    env = clean_env(**{ENV_MCP_CONFIG: str(config), "MCP_TEST_SECRET_SOURCE": SECRET})
    outputs = [
        cli("run", document, "--trace-file", trace, "--exporter", "console", env=env),
        cli("run", document, "--output-format", "json", "--no-trace-file", env=env),
        cli("show", trace, env=env),
        cli("show", trace, "--json", env=env),
    ]
    for finished in outputs:
        assert finished.returncode == 0, finished.stderr
        assert SECRET not in finished.stdout + finished.stderr
    written = trace.read_text(encoding="utf-8")
    assert "the secret is <redacted>" in written
    assert SECRET not in written


def test_spans_never_hold_the_env_secret(config: Path) -> None:
    outcome, spans = run_traced(workflow("mcp-test-srv-env_secret", {}))
    assert outcome.result.record.status == "success"
    for span in spans:
        text = json.dumps([span.name, dict(span.attributes or {}), span.status.description])
        assert SECRET not in text


def test_the_server_ends_when_the_run_process_exits(config: Path, tmp_path: Path) -> None:
    document = tmp_path / "flow.json"
    flow = {
        "ir_version": "0.1.0",
        "name": "mcp-pid",
        "nodes": [{"id": "ask", "type": "mcp-test-srv-session", "params": {}}],
        "outputs": {"pid": "${ask.result.pid}"},
    }
    document.write_text(json.dumps(flow), encoding="utf-8")
    env = clean_env(**{ENV_MCP_CONFIG: str(config), "MCP_TEST_SECRET_SOURCE": SECRET})
    finished = cli("run", document, "--output-format", "json", "--no-trace-file", env=env)
    assert finished.returncode == 0, finished.stderr
    pid = json.loads(finished.stdout)["outputs"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def cli(*arguments: Any, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )


# -- streamable HTTP -----------------------------------------------------------------------


@pytest.fixture
def http_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The test server over streamable HTTP on 127.0.0.1, with a bearer token in its headers."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        entry = {
            "type": "http",
            "url": f"http://127.0.0.1:{port}/mcp",
            "headers": {"Authorization": "Bearer ${MCP_TEST_TOKEN}"},
        }
        path = write_config(tmp_path / "mcp-servers.json", {"web": entry})
        monkeypatch.setenv(ENV_MCP_CONFIG, str(path))
        monkeypatch.setenv("MCP_TEST_TOKEN", TOKEN)
        yield port
    finally:
        pool.close_all()
        server.terminate()
        server.wait(30)


def test_http_calls_share_a_session_and_carry_its_id(http_config: int) -> None:
    node = workflow("mcp-web-session", {}, batch={"items": [1, 2, 3], "parallel": True})
    outcome, spans = run_traced(node)
    assert outcome.result.record.status == "success"
    sessions = {item["result"]["session"] for item in outcome.result.nodes["call"]["results"]}
    assert len(sessions) == 1
    calls = call_spans(spans)
    assert len(calls) == 3
    attributes = dict(calls[0].attributes)
    assert attributes[conv.NETWORK_TRANSPORT] == "tcp"
    assert attributes[conv.NETWORK_PROTOCOL_NAME] == "http"
    assert attributes[conv.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[conv.SERVER_PORT] == http_config
    assert len({dict(span.attributes).get(conv.MCP_SESSION_ID) for span in calls}) == 1


def test_http_header_secret_is_redacted(http_config: int, tmp_path: Path) -> None:
    outcome, spans = run_traced(
        workflow("mcp-web-auth_header", {}),
        write_trace_file=True,
        trace_file=str(tmp_path / "t.json"),
    )
    assert outcome.result.record.status == "success"
    assert outcome.result.nodes["call"]["result"] == f"you sent Bearer {TOKEN}"  # the run's own
    written = (tmp_path / "t.json").read_text(encoding="utf-8")
    assert TOKEN not in written and "you sent" in written
    for span in spans:
        assert TOKEN not in json.dumps(dict(span.attributes or {}))
