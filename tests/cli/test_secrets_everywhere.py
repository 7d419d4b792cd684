"""End to end: one workflow with a secret in every place a secret can hide, and every output.

The workflow carries sensitive string, array (used as ``batch.items``) and object inputs,
secret-named inputs that are not declared sensitive, a node whose id names a secret, request
headers in five spellings, a URL password and secret query parameters, a shell command that
prints a sensitive value, an HTTP response carrying a token (in its parsed JSON and its raw
body) and an error message quoting that token. It runs through ``run`` (text with the console
exporter, JSON with live OTLP to a loopback receiver), then ``show``, ``show --json``, every
``export`` file format and ``export --to otlp``; every byte of every output is searched for
every secret value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from loopback import serving
from otlp_receiver import OtlpReceiver
from pflow_trace.observe.redaction import REDACTED
from pflow_trace.replay import FILE_FORMATS
from subprocess_env import clean_env

SENSITIVE_STRING = "S1-sensitive-string-7781"
SENSITIVE_ITEMS = ["acct-item-alpha-1101", "acct-item-beta-2202", "acct-item-gamma-3303"]
SENSITIVE_OBJECT: dict[str, Any] = {
    "host": "db-host-secret-4410",
    "nested": {"user": "db-user-secret-5520"},
}
ROOT_API_KEY = "undeclared-api-key-6630"
ROOT_DB_PASSWORD = "undeclared-db-pass-7740"
NODE_ID_SECRET = "node-id-secret-9960"
HEADERS = {
    "X-Api-Key": "hdr-x-api-key-1212",
    "api-key": "hdr-api-key-2323",
    "APIKEY": "hdr-apikey-3434",
    "x_api_key": "hdr-x_api_key-4545",
}
URL_PASSWORD = "userinfo-pass-9911"
QUERY_SECRETS = {
    "token": "query-token-1122",
    "key": "query-key-2233",
    "api_key": "query-apikey-3344",
    "sig": "query-sig-4455",
}
SERVER_TOKEN = "http-token-from-server-8850"

SECRETS = [
    SENSITIVE_STRING,
    *SENSITIVE_ITEMS,
    SENSITIVE_OBJECT["host"],
    SENSITIVE_OBJECT["nested"]["user"],
    ROOT_API_KEY,
    ROOT_DB_PASSWORD,
    NODE_ID_SECRET,
    *HEADERS.values(),
    URL_PASSWORD,
    *QUERY_SECRETS.values(),
    SERVER_TOKEN,
]


class _Api(BaseHTTPRequestHandler):
    """``/login`` answers a token and echoes the headers it got; anything else is a 500."""

    def do_GET(self) -> None:
        if self.path.startswith("/login"):
            received = {name: self.headers.get(name) for name in HEADERS}
            body = {"access_token": SERVER_TOKEN, "user": "ada", "received": received}
            self._send(200, json.dumps(body), "application/json")
        else:
            self._send(500, f"upstream rejected {SERVER_TOKEN}", "text/plain")

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def api_server() -> Iterator[str]:
    with serving(_Api) as base:
        yield base


def secrets_workflow() -> dict[str, Any]:
    query = "&".join(f"{name}={value}" for name, value in QUERY_SECRETS.items())
    return {
        "ir_version": "0.1.0",
        "name": "secrets-everywhere",
        "inputs": {
            "api_secret": {"type": "string", "sensitive": True},
            "account_ids": {"type": "array", "sensitive": True},
            "db_conf": {"type": "object", "sensitive": True},
            "api_key": {"type": "string"},
            "db_password": {"type": "string"},
            "base": {"type": "string"},
        },
        "nodes": [
            {
                "id": "get_token",
                "type": "shell",
                "params": {"command": f"printf %s {NODE_ID_SECRET}"},
            },
            {
                "id": "login",
                "type": "http",
                "params": {
                    "url": f"${{base}}/login?{query}",
                    "headers": {**HEADERS, "Authorization": "Bearer ${get_token.stdout}"},
                },
            },
            {
                "id": "mirror",
                "type": "echo",
                "params": {
                    "url": f"https://urluser:{URL_PASSWORD}@example.invalid/x?{query}",
                    "headers": {"X-Api-Key": "${api_key}", "note": "pass ${db_password}"},
                    "raw": "as text: ${login.response}",
                },
            },
            {
                "id": "shout",
                "type": "shell",
                "params": {
                    "command": 'echo "using ${api_secret} on $DB_HOST as ${db_conf.nested.user}"',
                    "env": {"DB_HOST": "${db_conf.host}"},
                },
            },
            {
                "id": "each",
                "type": "echo",
                "params": {
                    "value": "${item}",
                    "fail_if": SENSITIVE_ITEMS[1],
                    "message": "gave up on ${item}",
                },
                "batch": {
                    "items": "${account_ids}",
                    "parallel": True,
                    "max_concurrent": 2,
                    "error_handling": "continue",
                },
            },
            {
                "id": "reject",
                "type": "http",
                "params": {"url": "${base}/fail?access_token=${login.response.access_token}"},
            },
        ],
        "outputs": {"user": "${login.response.user}", "said": "${shout.stdout}"},
    }


def pflow(*arguments: Any, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        timeout=120,
        env=env,
    )


def assert_no_secret(data: bytes, where: str) -> None:
    leaked = [secret for secret in SECRETS if secret.encode() in data]
    assert not leaked, f"{where} leaks {leaked}"


@pytest.mark.slow
def test_no_secret_reaches_any_output(tmp_path: Path, api_server: str) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(secrets_workflow()), encoding="utf-8")
    env = clean_env(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    inputs = [
        f"api_secret={SENSITIVE_STRING}",
        f"account_ids={json.dumps(SENSITIVE_ITEMS)}",
        f"db_conf={json.dumps(SENSITIVE_OBJECT)}",
        f"api_key={ROOT_API_KEY}",
        f"db_password={ROOT_DB_PASSWORD}",
        f"base={api_server}",
    ]
    outputs: dict[str, bytes] = {}
    trace = tmp_path / "run.trace.json"

    text = pflow("run", workflow, *inputs, "--exporter", "console", "--trace-file", trace, env=env)
    assert text.returncode == 1, text.stderr  # the last node fails, quoting the token
    outputs["run text stdout"], outputs["run text + console stderr"] = text.stdout, text.stderr
    assert b'"pflow.layer"' in text.stderr  # the console exporter did print the spans
    outputs["trace file (text run)"] = trace.read_bytes()

    with OtlpReceiver() as receiver:
        as_json = pflow(
            "run", workflow, *inputs, "--output-format", "json", "--trace-file", trace,
            "--exporter", "otlp", "--otlp-endpoint", receiver.endpoint, env=env,
        )  # fmt: skip
        assert as_json.returncode == 1, as_json.stderr
        assert receiver.spans, "the live OTLP export sent nothing"
        outputs["live OTLP requests"] = b"".join(r.SerializeToString() for r in receiver.requests)
    outputs["run json stdout"], outputs["run json stderr"] = as_json.stdout, as_json.stderr
    outputs["trace file (json run)"] = trace.read_bytes()

    for arguments in (["show", trace], ["show", "--json", trace]):
        shown = pflow(*arguments, env=env)
        assert shown.returncode == 0, shown.stderr
        outputs[" ".join(map(str, arguments[:2]))] = shown.stdout + shown.stderr
    for file_format in FILE_FORMATS:
        target = tmp_path / f"export.{file_format}.json"
        exported = pflow("export", trace, "--format", file_format, "-o", target, env=env)
        assert exported.returncode == 0, exported.stderr
        outputs[f"export {file_format}"] = target.read_bytes() + exported.stdout + exported.stderr
    with OtlpReceiver() as receiver:
        replayed = pflow("export", trace, "--to", "otlp", "--endpoint", receiver.endpoint, env=env)
        assert replayed.returncode == 0, replayed.stderr
        outputs["export --to otlp"] = b"".join(r.SerializeToString() for r in receiver.requests)

    for where, data in outputs.items():
        assert_no_secret(data, where)
    assert_redactions_are_visible(json.loads(as_json.stdout), json.loads(trace.read_bytes()))


def assert_redactions_are_visible(result: dict[str, Any], document: dict[str, Any]) -> None:
    """The secrets were really there to leak: each place says ``<redacted>`` instead."""
    assert result["nodes"]["get_token"] == REDACTED
    assert result["outputs"]["user"] == "ada"
    assert result["outputs"]["said"] == f"using {REDACTED} on {REDACTED} as {REDACTED}"
    assert REDACTED in result["error"] and "HTTP 500" in result["error"]
    events = {event["node_id"]: event for event in document["nodes"]}
    first = events["get_token"]["shared_before"]
    assert {name: first[name] for name in ("api_key", "db_password", "account_ids")} == {
        "api_key": REDACTED,
        "db_password": REDACTED,
        "account_ids": REDACTED,
    }
    assert events["get_token"]["shared_after"]["get_token"] == REDACTED
    login = events["login"]["shared_after"]["login"]
    assert login["response"]["access_token"] == REDACTED and login["response"]["user"] == "ada"
    assert set(login["response"]["received"].values()) == {REDACTED}
    mirror = events["mirror"]["shared_after"]["mirror"]
    assert REDACTED in mirror["raw"] and "ada" in mirror["raw"]  # the response as text
    assert mirror["url"].startswith(f"https://urluser:{REDACTED}@example.invalid/x?token=")
    assert mirror["headers"] == {"X-Api-Key": REDACTED, "note": f"pass {REDACTED}"}
    items = events["each"]["batch_items"]
    assert [item["item"] for item in items] == [REDACTED] * 3
    assert items[1]["error"] == f"gave up on {REDACTED}"
