"""The ``http`` node: one HTTP request with the standard library, no client dependency.

Requests go over kept connections (:mod:`~pflow_trace.nodes.http_pool`): a batch of many
short requests opens about one connection per lane, not one per item.

Params and outputs are pflow's (pflow-cli 0.16): ``body`` is text or a value sent as JSON,
``params`` is the query string, ``auth_token`` / ``api_key`` add the usual headers, and the
outputs are ``response`` (JSON parsed), ``status_code``, ``response_headers`` and
``response_time`` (seconds), with ``error`` set when the status is not 2xx.

Only ``http://`` and ``https://`` URLs are accepted: urllib would otherwise also read
``file://`` and ``ftp://`` URLs, which a workflow fetching "a URL" should never do by surprise.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import functools
import http.client
import json
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any, ClassVar

from pflow_trace.nodes import http_pool
from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode
from pflow_trace.nodes.shell import as_text
from pflow_trace.text import one_line

DEFAULT_TIMEOUT_S = 30.0
BODY_EXCERPT_CHARS = 200
_USER_AGENT = f"Python-urllib/{urllib.request.__version__}"


def _headers_dict(headers: Message | None) -> dict[str, str]:
    """Response headers as the server spelled them; a repeated header is joined with ``, ``.
    (Raw items: both paths' values are text decoded from latin-1, which ``items()`` would
    hand back unchanged, at a cost per header.)"""
    result: dict[str, str] = {}
    for name, value in (headers or Message()).raw_items():
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def _content_kind(headers: Message | None) -> tuple[bool, str | None]:
    """(whether the body is JSON, the charset it names) from the ``Content-Type`` header."""
    if headers is None:
        return False, None
    value = headers.get("content-type")
    if isinstance(value, str):  # a batch's answers mostly share one: read once
        return _content_kind_of(value)
    return _content_kind_read(headers)


@functools.lru_cache(maxsize=64)
def _content_kind_of(content_type: str) -> tuple[bool, str | None]:
    message = Message()
    message["Content-Type"] = content_type
    return _content_kind_read(message)


def _content_kind_read(headers: Message) -> tuple[bool, str | None]:
    content_type = headers.get_content_type()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    return is_json, headers.get_content_charset()


def _response_value(raw: bytes, headers: Message | None) -> tuple[Any, bool]:
    """The body as pflow hands it on: parsed JSON, else text, else base64 (and True)."""
    is_json, charset = _content_kind(headers)
    charset = charset or "utf-8"
    try:
        text = raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), True
    if is_json and text.strip():
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
        url, method, headers, data, timeout = _prepared(params)
        started = time.perf_counter()
        status, response_headers, raw = self._send(url, method, headers, data, timeout)
        return _outputs(url, status, response_headers, raw, started)

    async def exec_async(self, params: dict[str, Any]) -> dict[str, Any]:
        """:meth:`exec` as a task on async lanes: the same request, outputs and errors, sent
        through the batch's connection pool (:mod:`~pflow_trace.nodes.http_async`). What urllib
        would do differently (a proxy, a redirect it follows) takes the
        threads' path, in a worker thread, as :func:`_exchange` does."""
        from pflow_trace.nodes import http_async

        url, method, headers, data, timeout = _prepared(params)
        started = time.perf_counter()
        parts = urllib.parse.urlsplit(url)
        if parts.hostname is None or _proxied(parts.scheme.lower(), parts.hostname):
            answer = await asyncio.to_thread(self._send, url, method, headers, data, timeout)
            return _outputs(url, *answer, started)
        sent = _default_headers(headers, data)
        status, response_headers, raw = await http_async.request(url, method, sent, data, timeout)
        follow = _redirect_target(url, method, status, response_headers)
        if follow is not None:
            status, response_headers, raw = await asyncio.to_thread(
                self._send, follow, "GET", _redirect_headers(headers), None, timeout
            )
        return _outputs(url, status, response_headers, raw, started)

    @staticmethod
    def _send(
        url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
    ) -> tuple[int, Message | None, bytes]:
        """Perform the request; every transport problem becomes a one-line NodeFailure."""
        try:
            return _exchange(url, method, headers, data, timeout)
        except urllib.error.HTTPError as exc:  # urllib raises for 4xx/5xx and unfollowed 3xx
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            return exc.code, exc.headers, raw
        except (urllib.error.URLError, http_pool.SendFailed) as exc:
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


def _prepared(params: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None, float]:
    """The request the params describe: (url, method, headers, body, timeout in seconds)."""
    url, basic = _without_user_info(_with_query(params["url"], params.get("params")))
    timeout: float = params.get("timeout", DEFAULT_TIMEOUT_S)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise NodeFailure(f"unsupported URL '{url}': only http:// and https:// are allowed")
    if params.get("auth_token") and params.get("api_key"):
        raise NodeFailure("give either 'auth_token' or 'api_key', not both")
    headers = _request_headers(params)
    if basic is not None and not any(name.lower() == "authorization" for name in headers):
        headers["Authorization"] = basic
    data = _request_body(params.get("body"), headers)
    method = (params.get("method") or ("POST" if data is not None else "GET")).upper()
    return url, method, headers, data, timeout


def _without_user_info(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host/`` → ``http://host/`` and its ``Basic`` Authorization value.

    Credentials in a URL are meant for the server, as basic auth (what pflow's client sends).
    Left in the URL, urllib takes ``user:pw@host`` for the host name and hands the password
    to the name resolver, and every message quoting the URL would carry it.
    """
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    user_info, _, host = parts.netloc.rpartition("@")
    user, _, password = user_info.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    basic = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), basic


def _outputs(
    url: str, status: int, response_headers: Message | None, raw: bytes, started: float
) -> dict[str, Any]:
    """The node's outputs for an answer; a status outside 2xx fails the node with them."""
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
        raise NodeFailure(
            message,
            outputs=outputs,
            retriable=False,
            retry_after_s=retry_after_s(response_headers),
        )
    return outputs


def retry_after_s(headers: Message | None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (a number of seconds or an
    HTTP date); None without one or when it cannot be read."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)


def _exchange(
    url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
) -> tuple[int, Message | None, bytes]:
    """The request on a kept connection of :mod:`~pflow_trace.nodes.http_pool`.

    What urllib would do differently takes urllib's own path, so behaviour stays urllib's: a
    proxy set in the environment and a redirect urllib follows
    (the next request, a GET without the body, is urllib's, and so are any redirects after
    it). urllib's default headers are kept (its ``User-Agent``, a form content type for an
    untyped body).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if _proxied(scheme, parts.hostname or ""):
        return _urllib_exchange(url, method, headers, data, timeout)
    if parts.hostname is None:
        raise ValueError("no host given")
    origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    sent = _default_headers(headers, data)
    status, response_headers, raw = http_pool.pool.request(
        origin, method, target, sent, data, timeout
    )
    follow = _redirect_target(url, method, status, response_headers)
    if follow is None:
        return status, response_headers, raw
    return _urllib_exchange(follow, "GET", _redirect_headers(headers), None, timeout)


def _redirect_headers(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers for a followed redirect (a GET without the body)."""
    return {k: v for k, v in headers.items() if k.lower() not in ("content-length", "content-type")}


def _proxied(scheme: str, host: str) -> bool:
    proxies = http_pool.pool.proxies()
    return scheme in proxies and not urllib.request.proxy_bypass(host)


def _default_headers(headers: dict[str, str], data: bytes | None) -> dict[str, str]:
    """The headers urllib adds by itself (``Host`` and ``Content-Length`` come from
    ``http.client``); what the caller gave wins."""
    sent = dict(headers)
    names = {name.lower() for name in headers}
    if "user-agent" not in names:
        sent["User-Agent"] = _USER_AGENT
    if data is not None and "content-type" not in names:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    return sent


def _redirect_target(url: str, method: str, status: int, headers: Message) -> str | None:
    """Where urllib would go next after this answer (its ``HTTPRedirectHandler`` rules)."""
    followed = (status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD")) or (
        status in (301, 302, 303) and method == "POST"
    )
    if not followed:
        return None
    location = headers.get("location") or headers.get("uri")
    if not location:
        return None
    parts = urllib.parse.urlparse(location)
    if parts.scheme not in ("http", "https", ""):
        return None
    if not parts.path and parts.netloc:
        parts = parts._replace(path="/")
    quoted = urllib.parse.quote(
        urllib.parse.urlunparse(parts), encoding="iso-8859-1", safe=string.punctuation
    )
    return urllib.parse.urljoin(url, quoted)


def _urllib_exchange(
    url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
) -> tuple[int, Message | None, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    # A fresh opener per call reads proxy settings now, not at first use in the process.
    opener = urllib.request.build_opener()
    with opener.open(request, timeout=timeout) as response:
        return response.status, response.headers, response.read()
