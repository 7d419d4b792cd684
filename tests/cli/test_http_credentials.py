"""End to end: an ``http`` node that fails on a URL carrying a password never shows it.

The failure message names the URL (``cannot reach URL``, ``HTTP 500 from URL``), and that
message goes into the node's error, the run's error, the node span's status and exception
event, the terminal, ``show`` and ``show --json``. Each case runs the CLI in a subprocess
against loopback (a port nothing listens on, and a server answering 500) with the password
in the URL's user info or in its query, and searches every byte of every output for it.
Credentials in the user info are sent as basic auth and taken out of the URL (left in, urllib
would take ``user:pw@host`` for the host name and ask the name resolver for it); a password in
the query stays in the URL the server is asked for, and the user name beside it stays in the
message, so a person can tell which account failed.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from loopback import serving
from subprocess_env import clean_env

PASSWORD = "pw-in-url-5821"
USER = "svc-reader"
#: The paths the 500 server was asked for (the request really reached it), and the
#: Authorization header of each request.
requested_paths: list[str] = []
authorizations: list[str | None] = []


class _Failing(BaseHTTPRequestHandler):
    """Every request fails with 500, after noting what it asked for."""

    def do_GET(self) -> None:
        requested_paths.append(self.path)
        authorizations.append(self.headers.get("Authorization"))
        body = b"upstream is down"
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def failing_server() -> Iterator[str]:
    requested_paths.clear()
    authorizations.clear()
    with serving(_Failing) as base:
        yield base


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pflow(*arguments: Any) -> subprocess.CompletedProcess[bytes]:
    env = clean_env(NO_COLOR="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        timeout=120,
        env=env,
    )


def run_and_show(tmp_path: Path, url: str, *run_flags: str) -> dict[str, bytes]:
    """Run a one-node workflow fetching ``url``; every output of run, show and show --json."""
    workflow = tmp_path / "wf.json"
    node = {"id": "fetch", "type": "http", "params": {"url": url, "timeout": 10}}
    workflow.write_text(json.dumps({"ir_version": "0.1.0", "name": "creds", "nodes": [node]}))
    trace = tmp_path / "run.trace.json"
    ran = pflow("run", workflow, "--trace-file", trace, *run_flags)
    assert ran.returncode == 1, ran.stderr
    shown = pflow("show", trace)
    as_json = pflow("show", trace, "--json")
    assert shown.returncode == as_json.returncode == 0, (shown.stderr, as_json.stderr)
    return {
        "run stdout": ran.stdout,
        "run stderr": ran.stderr,
        "trace file": trace.read_bytes(),
        "show": shown.stdout + shown.stderr,
        "show --json": as_json.stdout + as_json.stderr,
    }


def assert_password_nowhere(outputs: dict[str, bytes], says: str, *, names_user: bool) -> None:
    leaked = [where for where, data in outputs.items() if PASSWORD.encode() in data]
    assert not leaked, f"the URL's password reaches {leaked}"
    # The failure is still there to read, without the password.
    for where in ("run stdout", "trace file", "show", "show --json"):
        assert says.encode() in outputs[where], f"{where} does not say why the node failed"
        if names_user:
            assert USER.encode() in outputs[where], f"{where} lost the URL's user name"


@pytest.mark.slow
@pytest.mark.parametrize("output_format", ["text", "json"])
@pytest.mark.parametrize("where", ["a closed port", "a server answering 500"])
def test_a_password_in_a_urls_user_info_is_never_shown(
    tmp_path: Path, failing_server: str, where: str, output_format: str
) -> None:
    base = f"http://127.0.0.1:{closed_port()}" if where == "a closed port" else failing_server
    url = base.replace("http://", f"http://{USER}:{PASSWORD}@") + "/report?page=1"
    outputs = run_and_show(tmp_path, url, "--output-format", output_format)
    if where == "a closed port":
        assert_password_nowhere(outputs, "cannot reach http://127.0.0.1:", names_user=False)
        return
    # The server was asked for the path, with the user info as basic auth.
    assert requested_paths == ["/report?page=1"]
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert authorizations == [f"Basic {basic}"]
    assert_password_nowhere(outputs, "HTTP 500 from http://127.0.0.1:", names_user=False)


@pytest.mark.slow
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_a_password_in_the_query_of_a_url_answering_500_is_never_shown(
    tmp_path: Path, failing_server: str, output_format: str
) -> None:
    url = f"{failing_server}/report?user={USER}&password={PASSWORD}"
    outputs = run_and_show(tmp_path, url, "--output-format", output_format)
    assert requested_paths == [f"/report?user={USER}&password={PASSWORD}"]  # it got there
    assert_password_nowhere(outputs, "HTTP 500 from http://", names_user=True)
