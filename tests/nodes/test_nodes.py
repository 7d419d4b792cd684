"""Unit tests for the built-in node types, each run directly with ``set_params`` and ``run``."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from loopback import serving
from pflow_trace.nodes.base import NodeFailure, WorkflowNode
from pflow_trace.nodes.code import CodeNode
from pflow_trace.nodes.echo import EchoNode
from pflow_trace.nodes.files import ReadFileNode, WriteFileNode
from pflow_trace.nodes.http import HttpNode
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.nodes.shell import ShellNode


def run(node: WorkflowNode, params: dict[str, Any]) -> dict[str, Any]:
    """Run ``node`` with ``params`` against a fresh store and return what it wrote."""
    node.set_params(params)
    shared: dict[str, Any] = {}
    node.run(shared)
    return shared


def failure(node: WorkflowNode, params: dict[str, Any]) -> NodeFailure:
    node.set_params(params)
    with pytest.raises(NodeFailure) as info:
        node.run({})
    return info.value


def test_registry_knows_every_builtin() -> None:
    names = NodeRegistry().names()
    for name in ("shell", "http", "read-file", "write-file", "code", "echo"):
        assert name in names


# --- shell -----------------------------------------------------------------------------------


def test_shell_captures_stdout_stderr_and_exit_code() -> None:
    out = run(ShellNode(), {"command": "echo hello; echo oops >&2"})
    assert out == {
        "stdout": "hello",  # trailing newlines stripped, as pflow does
        "stdout_is_binary": False,
        "stderr": "oops\n",  # stderr never
        "stderr_is_binary": False,
        "exit_code": 0,
        "command": "echo hello; echo oops >&2",
    }


def test_shell_strip_newline_false_keeps_stdout_as_printed() -> None:
    out = run(ShellNode(), {"command": "printf 'a\\n\\n'", "strip_newline": False})
    assert out["stdout"] == "a\n\n"
    assert run(ShellNode(), {"command": "printf 'a\\n\\n'"})["stdout"] == "a"


def test_shell_ignore_errors_keeps_a_nonzero_exit_from_failing() -> None:
    out = run(ShellNode(), {"command": "echo x; exit 3", "ignore_errors": True})
    assert (out["exit_code"], out["stdout"]) == (3, "x")


def test_shell_stdin_and_env_take_any_value_as_text() -> None:
    out = run(
        ShellNode(),
        {
            "command": 'cat; echo " $N $B [$NONE] $OBJ"',
            "stdin": {"rows": [1, 2]},
            "env": {"N": 3, "B": True, "NONE": None, "OBJ": {"a": 1}},
        },
    )
    assert out["stdout"] == '{"rows": [1, 2]} 3 True [] {"a": 1}'


def test_shell_binary_stdout_is_base64() -> None:
    out = run(ShellNode(), {"command": "printf '\\377\\376'"})
    assert out["stdout_is_binary"] is True
    assert out["stdout"] == "//4="


def test_shell_stdin_env_and_cwd(tmp_path: Path) -> None:
    out = run(
        ShellNode(),
        {"command": 'cat; echo "$GREETING"; pwd', "stdin": "in\n", "env": {"GREETING": "hi"}},
    )
    assert out["stdout"].splitlines()[:2] == ["in", "hi"]
    out = run(ShellNode(), {"command": "pwd", "cwd": str(tmp_path)})
    assert Path(out["stdout"].strip()).resolve() == tmp_path.resolve()


def test_shell_env_is_merged_over_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_TEST_OUTER", "outer")
    out = run(ShellNode(), {"command": 'echo "$PFLOW_TEST_OUTER-$X"', "env": {"X": "y"}})
    assert out["stdout"] == "outer-y"


def test_shell_nonzero_exit_fails_with_stderr_excerpt() -> None:
    exc = failure(ShellNode(), {"command": "echo partial; echo 'bad thing' >&2; exit 3"})
    assert exc.message == "command exited with code 3: bad thing"
    assert exc.outputs["stdout"] == "partial"
    assert (exc.outputs["stderr"], exc.outputs["exit_code"]) == ("bad thing\n", 3)


def test_shell_failure_message_is_one_short_line() -> None:
    command = 'for i in $(seq 1 300); do echo "line $i of noise" >&2; done; exit 1'
    exc = failure(ShellNode(), {"command": command})
    assert "\n" not in exc.message
    assert len(exc.message) < 600
    assert "line 300 of noise" in exc.message  # the tail, where errors usually are


def test_shell_exit_without_stderr() -> None:
    assert failure(ShellNode(), {"command": "exit 4"}).message == "command exited with code 4"


def pid_in(path: Path) -> int:
    return int(path.read_text(encoding="utf-8"))


def wait_until_gone(pid: int) -> bool:
    """True once ``pid`` has exited and been reaped; False if it is still there after 30 s.

    A killed grandchild is reaped by init a moment later; 30 s only guards against a hang.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_shell_timeout_names_the_timeout(tmp_path: Path) -> None:
    """The shell is killed at the timeout: it never reaches the line after its sleep."""
    command = f"echo started; echo $$ > {tmp_path}/pid; sleep 5; touch {tmp_path}/finished"
    exc = failure(ShellNode(), {"command": command, "timeout": 0.3})
    assert "timed out after 0.3s" in exc.message
    assert exc.outputs["exit_code"] is None
    assert exc.outputs["stdout"] == "started\n"
    assert wait_until_gone(pid_in(tmp_path / "pid"))
    assert not (tmp_path / "finished").exists()


def test_shell_timeout_kills_background_children_holding_the_pipe(tmp_path: Path) -> None:
    """A background child holding stdout is killed too, not waited for until it ends."""
    child = f"(sleep 5; touch {tmp_path}/finished) & echo $! > {tmp_path}/pid"
    exc = failure(ShellNode(), {"command": f"{child}; sleep 5; wait", "timeout": 0.3})
    assert "timed out" in exc.message
    assert wait_until_gone(pid_in(tmp_path / "pid"))
    assert not (tmp_path / "finished").exists()


def test_shell_has_no_parse_json_any_more() -> None:
    # pflow's contract: templates parse JSON stdout when a path walks into it.
    assert "parse_json" in failure(ShellNode(), {"command": "true", "parse_json": True}).message


def test_shell_schema_errors() -> None:
    assert "command" in failure(ShellNode(), {}).message
    assert "timeout" in failure(ShellNode(), {"command": "true", "timeout": "soon"}).message
    assert "env" in failure(ShellNode(), {"command": "true", "env": ["N"]}).message
    assert "comand" in failure(ShellNode(), {"command": "true", "comand": "x"}).message


def test_shell_accepts_runtime_control_params() -> None:
    assert run(ShellNode(), {"command": "true", "__attempt__": 2})["exit_code"] == 0


def test_shell_missing_cwd_is_a_clear_failure(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    exc = failure(ShellNode(), {"command": "true", "cwd": str(missing)})
    assert exc.message == f"cannot start command: working directory '{missing}' does not exist"


def test_shell_injects_traceparent_inside_a_span() -> None:
    provider = TracerProvider()  # local, never installed globally
    tracer = provider.get_tracer("test_nodes")
    span = tracer.start_span("shell-node")
    try:
        with trace.use_span(span):
            out = run(ShellNode(), {"command": 'echo "$TRACEPARENT"'})
    finally:
        span.end()
    context = span.get_span_context()
    traceparent = out["stdout"].strip()
    assert context.is_valid
    assert (
        traceparent
        == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )


def test_shell_leaves_env_alone_without_a_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACEPARENT", raising=False)
    out = run(ShellNode(), {"command": 'echo "[$TRACEPARENT]"'})
    assert out["stdout"] == "[]"


def test_shell_explicit_env_traceparent_wins() -> None:
    provider = TracerProvider()
    span = provider.get_tracer("test_nodes").start_span("shell-node")
    try:
        with trace.use_span(span):
            out = run(ShellNode(), {"command": 'echo "$TRACEPARENT"', "env": {"TRACEPARENT": "x"}})
    finally:
        span.end()
    assert out["stdout"] == "x"


# --- http ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Routes: /json, /text, /missing (404), /bad-json, /slow, /echo (POST/PUT: the request)."""

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Multi", "a")
        self.send_header("X-Multi", "b")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/json":
            self._send(200, b'{"ok": true, "n": 0}', "application/json; charset=utf-8")
        elif self.path == "/text":
            self._send(200, "héllo".encode(), "text/plain; charset=utf-8")
        elif self.path == "/missing":
            self._send(404, b"no such thing here", "text/plain")
        elif self.path == "/bad-json":
            self._send(200, b"{oops", "application/json")
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"late", "text/plain")
        else:
            self._send(500, b"unexpected", "text/plain")

    def _echo_request(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = {
            "method": self.command,
            "content_type": self.headers.get("Content-Type"),
            "x_token": self.headers.get("X-Token"),
            "body": self.rfile.read(length).decode(),
        }
        self._send(201, json.dumps(payload).encode(), "application/problem+json")

    do_POST = _echo_request
    do_PUT = _echo_request
    do_DELETE = _echo_request


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with serving(_Handler) as base:
        yield base


def test_http_get_json(server: str) -> None:
    out = run(HttpNode(), {"url": f"{server}/json"})
    assert out["status_code"] == 200
    assert out["response"] == {"ok": True, "n": 0}
    assert out["response_is_binary"] is False
    assert out["response_headers"]["Content-Type"].startswith("application/json")
    assert out["response_headers"]["X-Multi"] == "a, b"
    assert isinstance(out["response_time"], float)
    assert "error" not in out


def test_http_text_stays_text(server: str) -> None:
    out = run(HttpNode(), {"url": f"{server}/text"})
    assert out["response"] == "héllo"


def test_http_object_body_is_sent_as_json_with_post(server: str) -> None:
    out = run(HttpNode(), {"url": f"{server}/echo", "body": {"a": 1}, "headers": {"X-Token": "t"}})
    assert out["status_code"] == 201
    assert out["response"] == {
        "method": "POST",
        "content_type": "application/json",
        "x_token": "t",
        "body": '{"a": 1}',
    }


def test_http_string_body_and_explicit_method(server: str) -> None:
    out = run(HttpNode(), {"url": f"{server}/echo", "method": "put", "body": "raw"})
    assert out["response"]["method"] == "PUT"
    assert out["response"]["body"] == "raw"


def test_http_error_status_fails_with_body_excerpt(server: str) -> None:
    exc = failure(HttpNode(), {"url": f"{server}/missing"})
    assert exc.message == f"HTTP 404 from {server}/missing: no such thing here"
    assert exc.outputs["status_code"] == 404
    assert exc.outputs["response"] == "no such thing here"
    assert exc.outputs["error"] == "HTTP 404"


def test_http_unparseable_json_response_stays_text(server: str) -> None:
    assert run(HttpNode(), {"url": f"{server}/bad-json"})["response"] == "{oops"


def test_http_timeout(server: str) -> None:
    exc = failure(HttpNode(), {"url": f"{server}/slow", "timeout": 0.2})
    assert "timed out after 0.2s" in exc.message


def test_http_connection_refused_is_one_line() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as probe:
        port = probe.server_address[1]  # closed on exit: nothing listens there afterwards
    exc = failure(HttpNode(), {"url": f"http://127.0.0.1:{port}/"})
    assert exc.message.startswith(f"cannot reach http://127.0.0.1:{port}/")
    assert "\n" not in exc.message


def test_http_rejects_other_schemes_and_bad_params() -> None:
    assert "only http" in failure(HttpNode(), {"url": "file:///etc/passwd"}).message
    assert "url" in failure(HttpNode(), {}).message
    exc = failure(HttpNode(), {"url": "http://127.0.0.1/", "auth_token": "a", "api_key": "b"})
    assert "not both" in exc.message
    assert "json" in failure(HttpNode(), {"url": "http://127.0.0.1/", "json": {}}).message


# --- files -----------------------------------------------------------------------------------


def test_write_then_read_text(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "note.txt"
    out = run(WriteFileNode(), {"file_path": str(target), "content": "héllo"})
    assert out == {"written": f"Successfully wrote to '{target}'"}
    out = run(ReadFileNode(), {"file_path": str(target)})
    assert out == {"content": "héllo", "content_is_binary": False, "file_path": str(target)}


def test_write_append(tmp_path: Path) -> None:
    target = tmp_path / "log.txt"
    run(WriteFileNode(), {"file_path": str(target), "content": "a\n"})
    out = run(WriteFileNode(), {"file_path": str(target), "content": "b\n", "append": True})
    assert out == {"written": f"Successfully appended to '{target}'"}
    assert target.read_text() == "a\nb\n"


def test_write_non_string_as_json(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    run(WriteFileNode(), {"file_path": str(target), "content": {"k": [1, None]}})
    assert target.read_text() == json.dumps({"k": [1, None]})


def test_write_falsy_content(tmp_path: Path) -> None:
    target = tmp_path / "empty.txt"
    run(WriteFileNode(), {"file_path": str(target), "content": ""})
    assert target.read_text() == ""


def test_binary_content_round_trips_as_base64(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    run(WriteFileNode(), {"file_path": str(target), "content": "//4=", "content_is_binary": True})
    assert target.read_bytes() == b"\xff\xfe"
    out = run(ReadFileNode(), {"file_path": str(target)})
    assert (out["content"], out["content_is_binary"]) == ("//4=", True)


def test_read_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    exc = failure(ReadFileNode(), {"file_path": str(missing)})
    assert exc.message == f"cannot read '{missing}': no such file or directory"
    exc = failure(ReadFileNode(), {"file_path": str(tmp_path)})
    assert exc.message == f"cannot read '{tmp_path}': it is a directory"


def test_read_with_another_encoding(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_bytes(b"caf\xe9")
    assert run(ReadFileNode(), {"file_path": str(target), "encoding": "latin-1"})["content"] == (
        "café"
    )
    exc = failure(ReadFileNode(), {"file_path": "x", "encoding": "nope"})
    assert "unknown encoding" in exc.message


def test_file_schema_errors() -> None:
    assert "file_path" in failure(ReadFileNode(), {}).message
    assert "content" in failure(WriteFileNode(), {"file_path": "x"}).message
    assert "path" in failure(ReadFileNode(), {"path": "x"}).message  # the old name is gone


# --- code ------------------------------------------------------------------------------------


def test_code_result_and_stdout() -> None:
    out = run(
        CodeNode(),
        {
            "code": "print('n is', n)\nresult = [x * 2 for x in items]",
            "inputs": {"n": 1, "items": [1, 2]},
        },
    )
    assert out == {"result": [2, 4], "stdout": "n is 1\n", "stderr": ""}


def test_code_checks_annotated_inputs_and_parses_json_text() -> None:
    code = "items: list\nmeta: dict\nname: str\nresult = [len(items), meta['k'], name]"
    out = run(
        CodeNode(), {"code": code, "inputs": {"items": "[1, 2]", "meta": {"k": 1}, "name": "[x]"}}
    )
    assert out["result"] == [2, 1, "[x]"]  # JSON text parsed for list; kept for str
    exc = failure(CodeNode(), {"code": "items: list\nresult = 1", "inputs": {"items": 3}})
    assert exc.message == "input 'items' expects list but received int"
    out = run(
        CodeNode(),
        {"code": "x: int | None\ny: Any\nresult = [x, y]", "inputs": {"x": None, "y": {"a": 1}}},
    )
    assert out["result"] == [None, {"a": 1}]


def test_code_next_is_the_action_and_not_an_output() -> None:
    node = CodeNode()
    node.set_params({"code": "result = 1\nnext = 'big'"})
    shared: dict[str, Any] = {}
    assert node.run(shared) == "big"
    assert shared == {"result": 1, "stdout": "", "stderr": ""}


def test_code_without_result_outputs_none() -> None:
    assert run(CodeNode(), {"code": "x = 1"})["result"] is None


def test_code_functions_see_top_level_names() -> None:
    code = "factor = 3\ndef scale(v):\n    return v * factor\nresult = scale(x)"
    assert run(CodeNode(), {"code": code, "inputs": {"x": 2}})["result"] == 6


def test_code_does_not_mutate_inputs() -> None:
    items = [1, 2]
    run(CodeNode(), {"code": "items.append(3)\nresult = items", "inputs": {"items": items}})
    assert items == [1, 2]


def test_code_runtime_error() -> None:
    exc = failure(CodeNode(), {"code": "print('before')\n\nresult = 1 / 0"})
    assert exc.message == "ZeroDivisionError: division by zero"
    assert exc.outputs == {"stdout": "before\n", "stderr": "", "error_line": 3}


def test_code_exit_does_not_escape() -> None:
    assert failure(CodeNode(), {"code": "raise SystemExit(2)"}).message == "SystemExit: 2"


def test_code_syntax_error_names_the_line() -> None:
    exc = failure(CodeNode(), {"code": "x = 1\ny = = 2"})
    assert exc.message.startswith("SyntaxError on line 2:")
    assert "y = = 2" in exc.message


def test_code_schema_errors() -> None:
    assert "code" in failure(CodeNode(), {}).message
    assert "inputs" in failure(CodeNode(), {"code": "", "inputs": {"not valid": 1}}).message


def test_code_print_is_captured_per_thread() -> None:
    node = CodeNode()
    code = "import time\nfor i in range(20):\n    print(tag)\n    time.sleep(0.001)\nresult = tag"

    def one(tag: int) -> dict[str, Any]:
        worker = copy.deepcopy(node)
        return run(worker, {"code": code, "inputs": {"tag": tag}})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(16)))
    for tag, out in enumerate(results):
        assert out["result"] == tag
        assert out["stdout"] == f"{tag}\n" * 20


# --- echo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "", False, None, [], {}])
def test_echo_passes_falsy_values_through(value: Any) -> None:
    assert run(EchoNode(), {"value": value, "other": value}) == {"value": value, "other": value}


def test_echo_drops_control_params_but_keeps_action() -> None:
    params = {"value": 1, "delay_ms": 1, "fail_times": 0, "__attempt__": 1, "__action__": "next"}
    node = EchoNode()
    node.set_params(params)
    shared: dict[str, Any] = {}
    assert node.run(shared) == "next"
    assert shared == {"value": 1, "__action__": "next"}


def test_echo_fail_on_demand() -> None:
    assert failure(EchoNode(), {"fail": True}).message == "echo failed on demand"
    assert failure(EchoNode(), {"fail": True, "message": "boom"}).message == "boom"


def test_echo_fail_times_reads_the_attempt_param() -> None:
    exc = failure(EchoNode(), {"value": "x", "fail_times": 2})
    assert exc.message.startswith("echo failed on demand")
    assert "attempt 1 of 2" in exc.message
    failure(EchoNode(), {"value": "x", "fail_times": 2, "__attempt__": 2})
    assert run(EchoNode(), {"value": "x", "fail_times": 2, "__attempt__": 3}) == {"value": "x"}


def test_echo_fail_if_matches_value_only() -> None:
    exc = failure(EchoNode(), {"value": 3, "fail_if": 3})
    assert exc.message == "echo failed on demand for value 3"
    assert run(EchoNode(), {"value": 4, "fail_if": 3}) == {"value": 4}
    assert run(EchoNode(), {"value": 1, "fail_if": True}) == {"value": 1}  # true is not 1


def test_echo_delay() -> None:
    started = time.monotonic()
    run(EchoNode(), {"value": 1, "delay_ms": 50})
    assert time.monotonic() - started >= 0.045


def test_echo_schema_errors() -> None:
    assert "fail_times" in failure(EchoNode(), {"fail_times": "two"}).message
