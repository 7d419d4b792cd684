"""The ``http`` node's requests on async lanes, byte for byte: what goes out on the wire and
how every shape of answer is read (a length, chunks, up to the close, interim ``1xx``, no
body), a kept connection the server closed, and each transport failure's one-line message.

The server is a plain socket server that records each request's bytes and answers with the
bytes its path names, so nothing about HTTP is taken on trust from a library on either side.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pflow_trace.nodes import http_async
from pflow_trace.nodes.base import AsyncLanes, NodeFailure, current_async_lanes

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

#: path -> the answer's bytes (``{n}``: the connection's number, counted by the server).
ANSWERS: dict[str, bytes] = {
    "/length": JSON_HEAD + b'Content-Length: 8\r\n\r\n{"n": {n}}',
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=1\r\nab{n}\r\n3\r\ncde\r\n0\r\nX-Trailer: t\r\n\r\n",
    "/close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end {n}",
    "/interim": b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Twice: a\r\nx-twice: b\r\n\r\nok",
    "/head": JSON_HEAD + b"Content-Length: 8\r\n\r\n",
    "/empty": b"HTTP/1.1 204 No Content\r\nX-N: {n}\r\n\r\n",
    "/bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 3\nServer: lf\n\n{n}ab",
    "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "/retry": b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
    "/then-close": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nn={n}",
    "/silent": b"",
    # A head sent a byte at a time (every CR and LF of its end in a packet of its own).
    "/trickle": b"HTTP/1.1 200 OK\r\nX-Slow: yes\r\nContent-Length: 4\r\n\r\nslow",
    "/huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n",
}


class Recorder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    server: Recorder

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
            number = self.server.connections
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            request = head + self.rfile.read(length)
            with self.server.lock:
                self.server.requests.append(request)
            path = head.split(b" ", 2)[1].decode()
            answer = ANSWERS.get(path.split("?")[0], ANSWERS["/length"])
            if path == "/silent":
                threading.Event().wait(2)
                return
            answer = answer.replace(b"{n}", str(number).encode())
            for part in (
                [answer[i : i + 1] for i in range(len(answer))] if path == "/trickle" else [answer]
            ):
                self.wfile.write(part)
                self.wfile.flush()
            if path in ("/close", "/short", "/bad-chunk", "/then-close"):
                return  # closes the connection


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{recorder.server_address[1]}", recorder
    finally:
        recorder.shutdown()
        recorder.server_close()


Call = tuple[str, str, dict[str, str], bytes | None]


def on_lanes(calls: list[Call], timeout_s: float = 5.0) -> list[Any]:
    """The calls one after another on one batch's connections: (status, headers, body) each,
    or the NodeFailure's message."""

    async def session() -> list[Any]:
        lanes = AsyncLanes(2)
        current_async_lanes.set(lanes)
        answers: list[Any] = []
        try:
            for url, method, headers, data in calls:
                try:
                    status, message, body = await http_async.request(
                        url, method, headers, data, timeout_s
                    )
                    answers.append((status, list(message.items()), body))
                except NodeFailure as failure:
                    answers.append(failure.message)
        finally:
            for close in lanes.closers:
                await close()
        return answers

    return asyncio.run(session())


def test_what_is_sent_is_what_httpx_would_send(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    host = url.removeprefix("http://")
    cases: list[Call] = [
        (url + "/length", "GET", {"User-Agent": "u"}, None),
        (url + "/length?q=1&r=a/b#fragment", "GET", {}, None),
        (url + "?only=query", "GET", {}, None),
        (url + "/length", "POST", {"Content-Type": "text/plain"}, b"body"),
        (url + "/length", "POST", {}, None),
        (url + "/length", "PUT", {"content-length": "2"}, b"hi"),
        (url + "/length", "GET", {"Host": "elsewhere"}, b""),
        (url + "/a b/ü/../length?x=a b&y=é", "DELETE", {"Accept-Encoding": "gzip"}, None),
        (url.upper().replace("HTTP://", "http://") + "/%41%zz/{x}/./`", "GET", {}, None),
    ]
    assert all(isinstance(answer, tuple) for answer in on_lanes(cases))
    for (case_url, method, headers, data), sent in zip(cases, recorder.requests, strict=True):
        expected_headers = (
            headers
            if any(name.lower() == "accept-encoding" for name in headers)
            else {**headers, "Accept-Encoding": "identity"}
        )
        model = httpx.Request(method, case_url, headers=expected_headers, content=data)
        lines = [b"%s %s HTTP/1.1" % (method.encode(), model.url.raw_path)]
        lines += [b"%s: %s" % pair for pair in model.headers.raw]
        assert sent == b"\r\n".join(lines) + b"\r\n\r\n" + (data or b""), case_url
    assert recorder.requests[0].startswith(b"GET /length HTTP/1.1\r\nHost: %s\r\n" % host.encode())


def test_every_shape_of_answer_is_read_whole(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    paths = ["/length", "/chunked", "/interim", "/empty", "/length", "/close", "/length"]
    answers = on_lanes([(url + path, "GET", {}, None) for path in paths])
    length, chunked, interim, empty, again, close, fresh = answers
    assert length == (200, [("Content-Type", "application/json"), ("Content-Length", "8")],
                      b'{"n": 1}')  # fmt: skip
    assert chunked == (200, [("Transfer-Encoding", "chunked")], b"ab1cde")
    assert interim == (201, [("Content-Length", "2"), ("X-Twice", "a"), ("x-twice", "b")], b"ok")
    assert empty == (204, [("X-N", "1")], b"")
    assert again[2] == b'{"n": 1}'  # still the first connection
    assert close == (200, [("Content-Type", "text/plain")], b"until the end 1")
    assert fresh[2] == b'{"n": 2}'  # the HTTP/1.0 answer closed the first
    assert recorder.connections == 2
    head = on_lanes([(url + "/head", "HEAD", {}, None), (url + "/bare-lf", "GET", {}, None)])
    assert head[0] == (200, [("Content-Type", "application/json"), ("Content-Length", "8")], b"")
    assert head[1] == (200, [("Content-Length", "3"), ("Server", "lf")], b"3ab")


def test_a_head_that_trickles_in_is_read_and_an_endless_one_refused(
    server: tuple[str, Recorder],
) -> None:
    url, _ = server
    trickled, huge = on_lanes(
        [(url + "/trickle", "GET", {}, None), (url + "/huge-head", "GET", {}, None)]
    )
    assert trickled == (200, [("X-Slow", "yes"), ("Content-Length", "4")], b"slow")
    assert huge == f"GET {url}/huge-head failed: the answer's head is over 65,536 bytes"


def test_a_kept_connection_the_server_closed_is_replaced(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    answers = on_lanes([(url + "/then-close", "GET", {}, None), (url + "/length", "GET", {}, None)])
    assert answers[0][2] == b"n=1"
    assert answers[1][0] == 200 and recorder.connections == 2


def test_each_transport_failure_is_one_line(server: tuple[str, Recorder]) -> None:
    url, _ = server
    with socket.create_server(("127.0.0.1", 0)) as probe:
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    calls: list[Call] = [
        (refused, "GET", {}, None),
        (url + "/short", "GET", {}, None),
        (url + "/bad-chunk", "GET", {}, None),
        (url + "/silent", "GET", {}, None),
        ("http://127.0.0.1:99999999/", "GET", {}, None),
        (url + "/retry", "GET", {}, None),
    ]
    refused_at, short, bad_chunk, silent, bad_port, retry = on_lanes(calls, timeout_s=0.3)
    assert refused_at.startswith(f"cannot reach {refused}: ") and "\n" not in refused_at
    assert short == f"GET {url}/short failed: 3 bytes read on a total of 10 expected bytes"
    assert bad_chunk == (
        f"GET {url}/bad-chunk failed: invalid literal for int() with base 16: b'zz'"
    )
    assert silent == f"GET {url}/silent timed out after 0.3s"
    assert bad_port.startswith("invalid URL 'http://127.0.0.1:99999999/': ")
    assert retry == (503, [("Retry-After", "7"), ("Content-Length", "0")], b"")


@pytest.mark.parametrize(
    "url",
    [
        "http://h/p?",
        "http://h?",
        "http://h",
        "http://h/a\\b",
        "http://h//a//b",
        "http://h/%7e?a=%zz&b=\\",
        "http://H:8080",
        "https://h:443/x",
        "http://h:80/x?y#z",
        "http://h/.x",
        "http://h/a..b",
        "http://h/x?a=.&b=/./",
        "http://[::1]:81/x",
        "http://h/~user/a;b=c,d",
        "http://h/x?q={a}|b^c",
        "http://h/x^y`{}",
        "http://bücher.example/ü?é",
    ],
)
def test_a_urls_origin_host_and_target_are_httpxs(url: str) -> None:
    """The plain URLs cut here, the others parsed by httpx whole: the same either way."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    expected = ((parsed.scheme, parsed.host, port), parsed.netloc, parsed.raw_path)
    assert http_async._target(url) == expected


def test_a_header_value_outside_ascii_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError) as ours:
        http_async._request_head("http://h/", "GET", {"X-Name": "Zoë"}, None)
    with pytest.raises(UnicodeEncodeError) as theirs:
        httpx.Request("GET", "http://h/", headers={"X-Name": "Zoë"})
    assert str(ours.value) == str(theirs.value)


#: A self-signed certificate for 127.0.0.1 (SAN IP) and its key, valid until 2126; made for
#: these tests with ``openssl req -x509 -newkey ec -days 36500``; they protect nothing.
TLS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tls"


def self_signed() -> tuple[Path, Path]:
    """The loopback test certificate and its key."""
    return TLS_FIXTURES / "loopback-cert.pem", TLS_FIXTURES / "loopback-key.pem"


def test_https_is_read_through_tls_and_an_untrusted_certificate_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_path, key_path = self_signed()
    recorder = Recorder()
    serving_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving_tls.load_cert_chain(cert_path, key_path)
    recorder.socket = serving_tls.wrap_socket(recorder.socket, server_side=True)
    thread = threading.Thread(target=recorder.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{recorder.server_address[1]}"
    try:
        calls: list[Call] = [
            (url + "/chunked", "GET", {}, None),
            (url + "/length", "GET", {}, None),
        ]
        [untrusted, _] = on_lanes(calls[:1] * 2)
        assert untrusted.startswith(f"cannot reach {url}/chunked: [SSL: CERTIFICATE_VERIFY_FAILED]")
        trusting = ssl.create_default_context(cafile=str(cert_path))
        monkeypatch.setattr(http_async, "_tls_context", lambda: trusting)
        chunked, length = on_lanes(calls)
        # The refused handshakes never reached the handler: this is its first connection.
        assert chunked[2] == b"ab1cde" and length[2] == b'{"n": 1}'
    finally:
        recorder.shutdown()
        recorder.server_close()


def test_a_request_on_a_kept_connection_gets_its_own_whole_timeout(
    server: tuple[str, Recorder],
) -> None:
    """One timer serves a connection's requests: the second request's deadline is its own,
    counted from when it was sent, not the first one's."""
    url, recorder = server

    async def session() -> tuple[str, float]:
        lanes = AsyncLanes(1)
        current_async_lanes.set(lanes)
        await http_async.request(url + "/length", "GET", {}, None, 0.4)
        await asyncio.sleep(0.3)  # the first request's deadline passes while idle
        started = asyncio.get_running_loop().time()
        try:
            await http_async.request(url + "/silent", "GET", {}, None, 0.4)
        except NodeFailure as failure:
            return failure.message, asyncio.get_running_loop().time() - started
        finally:
            for close in lanes.closers:
                await close()
        return "answered", 0.0

    message, waited_s = asyncio.run(session())
    assert message == f"GET {url}/silent timed out after 0.4s"
    assert 0.39 <= waited_s < 1.5
    assert recorder.connections == 1
