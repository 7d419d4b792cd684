"""The ``http`` node's requests on async lanes: one ``httpx.AsyncClient`` per batch.

On async lanes a batch's items are tasks on one event loop, so a request waiting for its
answer holds no thread and no interpreter time: ``max_concurrent`` requests can be in flight
at once, hundreds of them, which threads could not sustain. ``httpx`` is the client because it
is a maintained, widely used async HTTP/1.1 client with a bounded keep-alive pool; its pool is
sized to the batch's ``max_concurrent`` (:class:`~pflow_trace.nodes.base.AsyncLanes`), made at
the batch's first request and closed, on the same loop, when the batch ends.

What is sent and what comes back is the threads' path (:mod:`~pflow_trace.nodes.http`): the
same headers (httpx's own defaults are removed; urllib's ``Accept-Encoding: identity`` is
kept), TLS with the system's default context, no redirect followed here, no proxy read from
the environment (a proxied request takes the threads' path), response headers as the server
spelled them, and every transport problem as the same one-line failure. Headers are given per
request, so a kept connection carries no credentials from one item to the next.
"""

from __future__ import annotations

import functools
import ssl
from email.message import Message

import httpx

from pflow_trace.nodes.base import AsyncLanes, NodeFailure, current_async_lanes

#: The name of this module's client in :attr:`AsyncLanes.clients`.
CLIENT_NAME = "http"


def client_for(lanes: AsyncLanes) -> httpx.AsyncClient:
    """The batch's client, made at its first request with a pool of ``in_flight``
    connections; its closing is left to the lanes (awaited when the batch ends)."""
    client = lanes.clients.get(CLIENT_NAME)
    if client is None:
        limit = lanes.in_flight
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
        )
        for name in ("accept", "connection", "user-agent"):
            del client.headers[name]
        client.headers["Accept-Encoding"] = "identity"
        lanes.clients[CLIENT_NAME] = client
        lanes.closers.append(client.aclose)
    return client


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The default HTTPS context (urllib's), made once per process: building it loads the
    system's certificates, which costs more than a request on a kept connection."""
    return ssl.create_default_context()


async def request(
    url: str, method: str, headers: dict[str, str], data: bytes | None, timeout_s: float
) -> tuple[int, Message, bytes]:
    """Send one request and read its whole answer: (status, headers, body). Outside async
    lanes (no batch pool) a client is made for this request alone."""
    lanes = current_async_lanes.get()
    try:
        if lanes is None:
            async with httpx.AsyncClient(trust_env=False) as own:
                response = await own.request(
                    method, url, headers=headers, content=data, timeout=timeout_s
                )
        else:
            response = await client_for(lanes).request(
                method, url, headers=headers, content=data, timeout=timeout_s
            )
    except httpx.TimeoutException:
        raise NodeFailure(f"{method} {url} timed out after {timeout_s:g}s") from None
    except httpx.ConnectError as exc:
        raise NodeFailure(f"cannot reach {url}: {_detail(exc)}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise NodeFailure(f"invalid URL '{url}': {exc}") from None
    except httpx.HTTPError as exc:
        raise NodeFailure(f"{method} {url} failed: {_detail(exc)}") from None
    return response.status_code, _message(response.headers.raw), response.content


def _message(raw: list[tuple[bytes, bytes]]) -> Message:
    """Response headers as the threads' path has them: an ordered ``Message``, names as sent."""
    message = Message()
    for name, value in raw:
        message[name.decode("latin-1")] = value.decode("latin-1")
    return message


def _detail(exc: BaseException) -> str:
    """The operating system's words for a transport failure (``Connection refused``), as
    urllib reports them; else the exception's own text."""
    cause: BaseException | None = exc
    while cause is not None:
        strerror = getattr(cause, "strerror", None)
        if strerror:
            return str(strerror)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
