"""An OpenAI-compatible chat server on loopback, for tests of the ``llm`` node through the
``llm`` library's own OpenAI plugin (no network, no mocks of the library).

It answers ``POST /v1/chat/completions`` the way the OpenAI API does, with ``usage`` and a
``finish_reason``, and reacts to markers in the user's message so every item of a parallel
batch is deterministic:

- ``RATE-LIMIT-ONCE`` — the first request with that exact message gets HTTP 429 (with
  ``Retry-After: 0``); the next one succeeds;
- ``ALWAYS-429`` — always HTTP 429;
- ``CUT-OFF`` — the answer stops at the token limit (``finish_reason: "length"``);
- ``EMPTY`` — an empty answer that still "succeeds";
- ``CACHED`` — 40 of the prompt tokens are reported as read from the cache;
- ``SHOW-AUTH`` — the answer quotes the request's ``Authorization`` header (a server that
  leaks the key back), and ``DENY`` answers 401 quoting it in the error;
- ``HOLD`` — the answer waits until the log's ``release`` is set (or 30 s), so a test can
  stop a run while requests are in flight;
- ``ECHO-KEY`` — a hostile server: the response's ``id``, ``model`` and ``finish_reason`` all
  carry the key the request sent (texts the provider controls, which end up on spans).

:func:`configure_model` writes ``extra-openai-models.yaml`` so the ``llm`` library knows the
server as a model (the same file a user writes for any OpenAI-compatible server).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from loopback import serving

#: What the server calls the model it serves (a dated snapshot, as OpenAI's are named).
SERVED_MODEL = "gpt-4o-mini-2024-07-18"
CACHED_TOKENS = 40


@dataclass
class ServerLog:
    """Every request the server got: its user message, Authorization header and the client's
    address (one per TCP connection)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


def _user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content)
            return str(content or "")
    return ""


def _answer(text: str, auth: str) -> tuple[str, str]:
    if "EMPTY" in text:
        return "   ", "stop"
    if "SHOW-AUTH" in text:
        return f"your header was {auth}", "stop"
    if "CUT-OFF" in text:
        return "This answer was going to be long but", "length"
    return f"Summary: {' '.join(text.split()[:6])}", "stop"


def _handler(log: ServerLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's API: a client may reuse it
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            return None

        def _send(self, status: int, payload: dict[str, Any], **headers: str) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            text = _user_text(body)
            auth = self.headers.get("Authorization", "")
            with log.lock:
                log.requests.append(
                    {"text": text, "auth": auth, "body": body, "peer": self.client_address}
                )
                first_time = text not in log.seen
                log.seen.add(text)
            if "ALWAYS-429" in text or ("RATE-LIMIT-ONCE" in text and first_time):
                error = {"message": "Rate limit reached for requests", "type": "requests"}
                self._send(429, {"error": error}, Retry_After="0")
                return
            if "HOLD" in text:
                log.release.wait(30)
            if "DENY" in text:
                error = {"message": f"Incorrect API key provided: {auth}", "type": "auth"}
                self._send(401, {"error": error})
                return
            answer, finish_reason = _answer(text, auth)
            prompt_tokens = len(text.split()) + 50
            usage: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(answer.split()),
                "total_tokens": prompt_tokens + len(answer.split()),
            }
            if "CACHED" in text:
                usage["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS}
            number: Any = len(log.requests)
            served = SERVED_MODEL
            if "ECHO-KEY" in text:
                key = auth.removeprefix("Bearer ")
                number, served, finish_reason = key, f"{served}-{key}", f"stop:{key}"
            self._send(
                200,
                {
                    "id": f"chatcmpl-{number}",
                    "object": "chat.completion",
                    "created": 1_800_000_000,
                    "model": served,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )

    return Handler


@contextmanager
def chat_server() -> Iterator[tuple[str, ServerLog]]:
    """Serve on ``127.0.0.1`` on a port the OS picks; yields ``(api_base, log)``."""
    log = ServerLog()
    with serving(_handler(log)) as base:
        try:
            yield f"{base}/v1", log
        finally:
            log.release.set()  # no held answer outlives the test


@contextmanager
def silent_server() -> Iterator[str]:
    """A server on ``127.0.0.1`` that takes connections and never answers; yields its api_base.

    The socket listens and never calls ``accept``: the kernel completes every connection and
    takes the request, and no byte ever comes back.
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()


def configure_model(
    user_dir: Path, api_base: str, model_id: str = "local-gpt", key_name: str | None = None
) -> str:
    """Register the server as ``model_id`` in an ``llm`` user directory; returns the id.

    With ``key_name`` the model sends an API key (``llm keys`` alias, else ``OPENAI_API_KEY``).
    """
    user_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"- model_id: {model_id}",
        "  model_name: gpt-4o-mini",
        f"  api_base: {json.dumps(api_base)}",
        "  vision: true",  # takes image attachments, as gpt-4o-mini does
    ]
    if key_name:
        lines.append(f"  api_key_name: {key_name}")
    (user_dir / "extra-openai-models.yaml").write_text("\n".join(lines) + "\n")
    return model_id
