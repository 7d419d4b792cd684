"""A kept OpenAI client follows ``OPENAI_BASE_URL``: a run after it changed reaches the new server.

The ``llm`` node keeps one OpenAI client per model, key and timeout (building one per call costs
tens of milliseconds); a client without a base URL of its own reads ``OPENAI_BASE_URL`` when it
is built, so that variable is part of what tells kept clients apart.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pflow_trace import api
from pflow_trace.observe.export_settings import resolve_export_settings


class _Completions(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls += 1  # type: ignore[attr-defined]
        body = json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.server.answer},  # type: ignore[attr-defined]
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def completions_server(answer: str) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Completions)
    server.calls, server.answer = 0, answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_changed_base_url_reaches_the_new_server(monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [{"id": "ask", "type": "llm", "params": {"model": "gpt-4o-mini", "prompt": "hi"}}],
    }
    options = api.TraceOptions(export=resolve_export_settings("none"), write_trace_file=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-base-url")
    answers = []
    for answer in ("first", "second"):
        with completions_server(answer) as server:
            monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
            outcome = api.run(workflow, {}, options)
            assert outcome.status == "success", outcome.result.error
            assert server.calls == 1  # type: ignore[attr-defined]
            answers.append(outcome.result.shared["ask"]["response"])
    assert answers == ["first", "second"]
