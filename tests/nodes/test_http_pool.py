"""The ``http`` node's kept connections: reused across items and lanes, carrying nothing
from one request to the next, closed when the run ends, and urllib's behaviour kept."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes import http_pool
from pflow_trace.nodes.base import NodeFailure
from pflow_trace.nodes.http import HttpNode
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.executors.executor_set import ExecutorSet
from pflow_trace.runtime.workflow_run import run_workflow


@dataclass
class Seen:
    """What the server saw: one entry per TCP connection, one per request."""

    connections: set[tuple[str, int]] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless a response says otherwise
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, payload: Any, **extra: str) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "cookie": self.headers.get("Cookie"),
                "user_agent": self.headers.get("User-Agent"),
                "content_type": self.headers.get("Content-Type"),
                "body": self.rfile.read(length).decode(),
            }
            with seen.lock:
                seen.connections.add(self.client_address)
                seen.requests.append(request)
            if self.path == "/login":
                self._answer(200, "in", Set_Cookie="session=s3cret; Path=/")
            elif self.path == "/moved":
                self._answer(303, "see other", Location="/landing")
            elif self.path == "/hang-up":  # answers, then closes without saying so
                self._answer(200, "bye")
                self.close_connection = True
            else:
                self._answer(200, request)

        do_GET = do_POST = _handle

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Seen]]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    seen = Seen()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    http_pool.close_idle()  # connections of earlier tests are not this server's
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        http_pool.close_idle()
        httpd.shutdown()
        httpd.server_close()


def call(params: dict[str, Any]) -> dict[str, Any]:
    node = HttpNode()
    node.set_params(params)
    shared: dict[str, Any] = {}
    node.run(shared)
    return shared


def batch(url: str, items: int, max_concurrent: int) -> dict[str, Any]:
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "nodes": [
                {
                    "id": "fetch",
                    "type": "http",
                    "params": {"url": url + "/item/${item}"},
                    "batch": {
                        "items": list(range(items)),
                        "parallel": True,
                        "max_concurrent": max_concurrent,
                    },
                }
            ],
        }
    )


def test_a_parallel_batch_opens_about_one_connection_per_lane(server: tuple[str, Seen]) -> None:
    url, seen = server
    result = run_workflow(batch(url, 200, 10), {})
    assert result.status == "success"
    assert len(seen.requests) == 200
    assert len(seen.connections) <= 10  # one connection per item before connections were kept
    paths = [output["response"]["path"] for output in result.nodes["fetch"]["results"]]
    assert paths == [f"/item/{index}" for index in range(200)]


def test_the_run_end_closes_idle_connections(server: tuple[str, Seen]) -> None:
    url, seen = server
    on_threads = RunContext(executors=ExecutorSet(async_lanes=False))  # this pool's path
    run_workflow(batch(url, 20, 4), {}, run=on_threads)
    assert len(seen.requests) == 20
    assert http_pool.pool.idle_count() == 0


def test_sequential_requests_share_one_connection(server: tuple[str, Seen]) -> None:
    url, seen = server
    for index in range(5):
        assert call({"url": f"{url}/n/{index}"})["status_code"] == 200
    assert len(seen.connections) == 1


def test_a_kept_connection_carries_no_credentials_or_cookies(server: tuple[str, Seen]) -> None:
    url, seen = server
    call({"url": f"{url}/login", "auth_token": "tok-1234567890"})
    plain = call({"url": f"{url}/after"})["response"]
    assert len(seen.connections) == 1  # the same connection, reused
    assert seen.requests[0]["authorization"] == "Bearer tok-1234567890"
    assert plain["authorization"] is None
    assert plain["cookie"] is None


def test_a_connection_the_server_closed_is_replaced(server: tuple[str, Seen]) -> None:
    url, seen = server
    assert call({"url": f"{url}/hang-up"})["response"] == "bye"
    out = call({"url": f"{url}/next", "method": "POST", "body": "once"})
    assert out["status_code"] == 200
    assert [request["path"] for request in seen.requests] == ["/hang-up", "/next"]
    assert len(seen.connections) == 2  # the kept one failed unanswered; a new one took it


def test_urllib_defaults_are_kept(server: tuple[str, Seen]) -> None:
    url, _ = server
    out = call({"url": f"{url}/form", "body": "a=1"})["response"]
    assert out["method"] == "POST"
    assert out["user_agent"].startswith("Python-urllib/")
    assert out["content_type"] == "application/x-www-form-urlencoded"
    own = call({"url": f"{url}/form", "body": "a", "headers": {"user-agent": "mine"}})
    assert own["response"]["user_agent"] == "mine"


def test_a_redirect_is_followed_as_urllib_does(server: tuple[str, Seen]) -> None:
    url, seen = server
    out = call({"url": f"{url}/moved", "body": {"a": 1}})
    assert out["status_code"] == 200
    assert out["response"]["method"] == "GET"  # 303 after a POST: a GET without the body
    assert out["response"]["path"] == "/landing"
    assert out["response"]["body"] == ""
    assert [request["path"] for request in seen.requests] == ["/moved", "/landing"]


def test_a_proxy_in_the_environment_is_still_used(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("http_proxy", url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    http_pool.close_idle()  # proxy settings are read once per run: this is a new one
    out = call({"url": "http://example.invalid/through-proxy"})
    assert out["response"]["path"] == "http://example.invalid/through-proxy"


def test_proxy_settings_are_read_again_after_a_run(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = server
    assert call({"url": f"{url}/direct"})["response"]["path"] == "/direct"
    monkeypatch.setenv("http_proxy", url)
    run_workflow(batch("http://example.invalid", 1, 1), {})
    assert seen.requests[-1]["path"] == "http://example.invalid/item/0"


def test_refused_and_timed_out_connections_keep_their_messages() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    node = HttpNode()
    node.set_params({"url": f"http://127.0.0.1:{port}/"})
    with pytest.raises(NodeFailure) as refused:
        node.run({})
    assert refused.value.message.startswith(f"cannot reach http://127.0.0.1:{port}/: ")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes the request, never answers
        node.set_params({"url": f"http://127.0.0.1:{silent.getsockname()[1]}/", "timeout": 0.2})
        with pytest.raises(NodeFailure) as late:
            node.run({})
    assert "timed out after 0.2s" in late.value.message


def test_a_urls_user_info_is_sent_as_basic_auth_not_as_part_of_the_host(
    server: tuple[str, Seen],
) -> None:
    """Left in the URL, urllib took ``someone:pw@127.0.0.1`` for a host name and asked the
    name resolver for it, password and all; it is the server's, as basic auth."""
    url, seen = server
    result = call({"url": url.replace("//", "//some%20one:p%40ss@") + "/x"})
    assert result["status_code"] == 200, result
    [request] = seen.requests
    assert request["path"] == "/x"
    assert request["authorization"] == "Basic " + base64.b64encode(b"some one:p@ss").decode()
    assert "p%40ss" not in json.dumps(result) and "p@ss" not in json.dumps(result)


def test_an_authorization_header_given_wins_over_a_urls_user_info(
    server: tuple[str, Seen],
) -> None:
    url, seen = server
    given = {"Authorization": "Token t"}
    call({"url": url.replace("//", "//someone:pw@") + "/x", "headers": given})
    assert [request["authorization"] for request in seen.requests] == ["Token t"]
