"""The ``http`` node: one HTTP request with the standard library, no client dependency.

Only ``http://`` and ``https://`` URLs are accepted: urllib would otherwise also read
``file://`` and ``ftp://`` URLs, which a workflow fetching "a URL" should never do by surprise.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode
from pflow_trace.nodes.failures import parse_json_or_fail
from pflow_trace.text import one_line

DEFAULT_TIMEOUT_S = 30.0
BODY_EXCERPT_CHARS = 200


def _headers_dict(headers: Message | None) -> dict[str, str]:
    """Response headers with lower-case names, so ``${node.headers.content-type}`` is stable.

    Repeated headers (``Set-Cookie``) are joined with ``, `` rather than silently dropped.
    """
    result: dict[str, str] = {}
    for name, value in (headers or Message()).items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _is_json(headers: Message | None) -> bool:
    if headers is None:
        return False
    content_type = headers.get_content_type()
    return content_type == "application/json" or content_type.endswith("+json")


def _decode(raw: bytes, headers: Message | None) -> str:
    charset = (headers.get_content_charset() if headers is not None else None) or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # a server naming a charset Python does not know
        return raw.decode("utf-8", errors="replace")


class HttpNode(WorkflowNode):
    """Sends a request and fails on status >= 400 or when the server cannot be reached."""

    type_name: ClassVar[str] = "http"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "method": {"type": "string", "pattern": "^[A-Za-z]+$"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
            "json": {},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["url"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        url: str = params["url"]
        timeout: float = params.get("timeout", DEFAULT_TIMEOUT_S)
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise NodeFailure(f"unsupported URL '{url}': only http:// and https:// are allowed")
        if "body" in params and "json" in params:
            raise NodeFailure("give either 'body' or 'json', not both")

        headers = dict(params.get("headers") or {})  # a copy: params are shared across threads
        data: bytes | None = None
        if "json" in params:
            data = json.dumps(params["json"]).encode("utf-8")
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        elif "body" in params:
            data = params["body"].encode("utf-8")
        method = (params.get("method") or ("POST" if data is not None else "GET")).upper()

        status, response_headers, raw = self._send(url, method, headers, data, timeout)
        body = _decode(raw, response_headers)
        outputs: dict[str, Any] = {
            "status": status,
            "headers": _headers_dict(response_headers),
            "body": body,
        }
        if status >= 400:
            detail = one_line(body, BODY_EXCERPT_CHARS, keep="tail")
            message = f"HTTP {status} from {url}" + (f": {detail}" if detail else "")
            raise NodeFailure(message, outputs=outputs)
        if _is_json(response_headers):
            complaint = f"response from {url} says it is JSON but does not parse"
            outputs["json"] = (
                parse_json_or_fail(body, complaint, outputs, position=False)
                if body.strip()
                else None
            )
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
