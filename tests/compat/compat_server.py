"""The local HTTP server the compat workflows call, shared by ``record.py`` and the tests.

It binds 127.0.0.1 on a free port and answers a fixed, small API, so pflow and pflow-trace see
byte-identical responses:

- ``GET /users`` → a JSON list of three users; ``GET /users/<id>`` → one user, 404 for others;
- ``GET /text`` → ``text/plain``; ``GET /echo`` → the path, query and auth headers as JSON;
- ``POST /items`` → 201 with the body it got and its content type;
- ``POST /v1/chat/completions`` → an OpenAI-style chat completion whose answer is the request's
  messages as JSON (``{"system": ..., "prompt": ..., "images": [...]}``), standing in for a
  model offline: both
  tools reach it through ``OPENAI_BASE_URL``, so they see the same answer to the same prompt;
- anything else → 404 with a JSON error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USERS = [
    {"id": 1, "name": "ada", "team": "core"},
    {"id": 2, "name": "bob", "team": "web"},
    {"id": 3, "name": "cy", "team": "core"},
]


class _Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/users":
            self._send(200, USERS)
        elif path.startswith("/users/"):
            user = next((u for u in USERS if str(u["id"]) == path.rsplit("/", 1)[1]), None)
            self._send(200, user) if user else self._send(404, {"error": "no such user"})
        elif path == "/text":
            self._send(200, "plain text body", "text/plain")
        elif path == "/echo":
            self._send(
                200,
                {
                    "path": path,
                    "query": query,
                    "authorization": self.headers.get("Authorization"),
                    "api_key": self.headers.get("X-API-Key"),
                },
            )
        else:
            self._send(404, {"error": f"nothing at {path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode()
        if self.path.endswith("/chat/completions"):
            self._send(200, echo_completion(json.loads(received)))
            return
        self._send(201, {"received": received, "content_type": self.headers.get("Content-Type")})

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def image_seen(block: dict[str, Any]) -> str:
    """An image content block as the answer names it: a URL as sent; inline data by its media
    type, size and sha256 (so an answer shows which bytes arrived, not the bytes)."""
    url = str((block.get("image_url") or {}).get("url", ""))
    header, comma, data = url.partition(",")
    if not (url.startswith("data:") and comma):
        return url
    raw = base64.b64decode(data) if header.endswith(";base64") else data.encode()
    digest = hashlib.sha256(raw).hexdigest()
    return f"{header.removeprefix('data:')} {len(raw)} bytes sha256={digest}"


def echo_completion(request: dict[str, Any]) -> dict[str, Any]:
    """The chat completion the offline model gives: the prompt it got, as JSON text (with
    ``images`` listing the image blocks in order, when there were any)."""
    said: dict[str, Any] = {}
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):  # content blocks: keep their text, name their images
            images = [image_seen(b) for b in content if b.get("type") == "image_url"]
            if images:
                said["images"] = [*said.get("images", []), *images]
            content = "".join(block.get("text", "") for block in content)
        key = "system" if message.get("role") == "system" else "prompt"
        said[key] = said.get(key, "") + str(content)
    answer = json.dumps(said, sort_keys=True)
    words_in = sum(len(text.split()) for text in said.values() if isinstance(text, str))
    return {
        "id": "chatcmpl-offline",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "offline"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": words_in,
            "completion_tokens": len(answer.split()),
            "total_tokens": words_in + len(answer.split()),
        },
    }


@contextmanager
def local_server() -> Iterator[str]:
    """Serve on 127.0.0.1 for the duration of the block; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
