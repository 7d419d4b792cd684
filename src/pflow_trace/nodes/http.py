"""The ``http`` node: one HTTP request with the standard library, no client dependency.

Params and outputs are pflow's (pflow-cli 0.16): ``body`` is text or a value sent as JSON,
``params`` is the query string, ``auth_token`` / ``api_key`` add the usual headers, and the
outputs are ``response`` (JSON parsed), ``status_code``, ``response_headers`` and
``response_time`` (seconds), with ``error`` set when the status is not 2xx.

Only ``http://`` and ``https://`` URLs are accepted: urllib would otherwise also read
``file://`` and ``ftp://`` URLs, which a workflow fetching "a URL" should never do by surprise.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode
from pflow_trace.nodes.shell import as_text
from pflow_trace.text import one_line

DEFAULT_TIMEOUT_S = 30.0
BODY_EXCERPT_CHARS = 200


def _headers_dict(headers: Message | None) -> dict[str, str]:
    """Response headers as the server spelled them; a repeated header is joined with ``, ``."""
    result: dict[str, str] = {}
    for name, value in (headers or Message()).items():
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def _is_json(headers: Message | None) -> bool:
    if headers is None:
        return False
    content_type = headers.get_content_type()
    return content_type == "application/json" or content_type.endswith("+json")


def _response_value(raw: bytes, headers: Message | None) -> tuple[Any, bool]:
    """The body as pflow hands it on: parsed JSON, else text, else base64 (and True)."""
    charset = (headers.get_content_charset() if headers is not None else None) or "utf-8"
    try:
        text = raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), True
    if _is_json(headers) and text.strip():
        try:
            return json.loads(text), False
        except ValueError:
            pass
    return text, False


def _with_query(url: str, query: dict[str, Any] | None) -> str:
    if not query:
        return url
    pairs = urllib.parse.urlencode({key: as_text(value) for key, value in query.items()})
    return f"{url}{'&' if urllib.parse.urlsplit(url).query else '?'}{pairs}"


def _request_headers(params: dict[str, Any]) -> dict[str, str]:
    """The caller's headers plus ``auth_token`` / ``api_key`` (a copy: params are shared)."""
    headers = {str(name): as_text(value) for name, value in (params.get("headers") or {}).items()}
    if params.get("auth_token"):
        headers["Authorization"] = f"Bearer {params['auth_token']}"
    if params.get("api_key"):
        headers[params.get("api_key_header") or "X-API-Key"] = str(params["api_key"])
    return headers


def _request_body(body: Any, headers: dict[str, str]) -> bytes | None:
    """A string goes as it is; any other value as JSON (with its content type, unless set)."""
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class HttpNode(WorkflowNode):
    """Sends a request; a status outside 2xx or an unreachable server fails the node."""

    type_name: ClassVar[str] = "http"
    output_keys: ClassVar[frozenset[str] | None] = frozenset(
        {
            "response",
            "response_is_binary",
            "status_code",
            "response_headers",
            "response_time",
            "error",
        }
    )
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "method": {"type": "string", "pattern": "^[A-Za-z]+$"},
            "headers": {"type": "object"},
            "body": {},
            "params": {"type": ["object", "null"]},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "auth_token": {"type": ["string", "null"]},
            "api_key": {"type": ["string", "null"]},
            "api_key_header": {"type": "string", "minLength": 1},
        },
        "required": ["url"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        url = _with_query(params["url"], params.get("params"))
        timeout: float = params.get("timeout", DEFAULT_TIMEOUT_S)
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise NodeFailure(f"unsupported URL '{url}': only http:// and https:// are allowed")
        if params.get("auth_token") and params.get("api_key"):
            raise NodeFailure("give either 'auth_token' or 'api_key', not both")
        headers = _request_headers(params)
        data = _request_body(params.get("body"), headers)
        method = (params.get("method") or ("POST" if data is not None else "GET")).upper()

        started = time.perf_counter()
        status, response_headers, raw = self._send(url, method, headers, data, timeout)
        response, is_binary = _response_value(raw, response_headers)
        outputs: dict[str, Any] = {
            "response": response,
            "response_is_binary": is_binary,
            "status_code": status,
            "response_headers": _headers_dict(response_headers),
            "response_time": round(time.perf_counter() - started, 6),
        }
        if not 200 <= status < 300:
            outputs["error"] = f"HTTP {status}"
            excerpt = response if isinstance(response, str) else json.dumps(response)
            detail = one_line(excerpt, BODY_EXCERPT_CHARS, keep="tail")
            message = f"HTTP {status} from {url}" + (f": {detail}" if detail else "")
            raise NodeFailure(message, outputs=outputs, retriable=False)
        return outputs

    @staticmethod
    def _send(
        url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
    ) -> tuple[int, Message | None, bytes]:
        """Perform the request; every transport problem becomes a one-line NodeFailure."""
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            # A fresh opener per call reads proxy settings now, not at first use in the process.
            opener = urllib.request.build_opener()
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:  # urllib raises for 4xx/5xx and unfollowed 3xx
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            return exc.code, exc.headers, raw
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise NodeFailure(f"{method} {url} timed out after {timeout:g}s") from None
            detail = getattr(reason, "strerror", None) or str(reason)
            raise NodeFailure(f"cannot reach {url}: {detail}") from None
        except TimeoutError:
            raise NodeFailure(f"{method} {url} timed out after {timeout:g}s") from None
        except (http.client.HTTPException, OSError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise NodeFailure(f"{method} {url} failed: {detail}") from None
        except ValueError as exc:  # malformed URL, e.g. a missing host
            raise NodeFailure(f"invalid URL '{url}': {exc}") from None
