"""The ``http`` node's requests on async lanes: kept asyncio connections, one pool per batch.

On async lanes a batch's items are tasks on one event loop, so a request waiting for its
answer holds no thread: ``max_concurrent`` requests (up to 1,000) wait at once on one thread.
The request and the answer are ``httpx``'s models (URL parsing, ``Host`` and
``Content-Length``, header encoding), sent by :class:`KeptConnections`, an ``httpx``
transport: a pool of at most ``max_concurrent`` keep-alive connections per batch
(:class:`~pflow_trace.nodes.base.AsyncLanes`), made at its first request and closed, on the
same loop, when the batch ends.

Neither httpx's client nor its default pool is used, for measured reasons: the pool examines
every connection it holds for each request it assigns (with it an item cost 2.6 ms of CPU at
20 in flight, most of it there, and more with more in flight), and the client's cookie jar
would keep cookies a server sets and send them with the next item's request, which the
threads' path never does.

What is sent and what comes back is the threads' path (:mod:`~pflow_trace.nodes.http`): the
same headers (``Accept-Encoding: identity`` as ``http.client`` adds it), TLS with the system's
default context, no redirect followed here, no proxy (a proxied request takes the threads'
path), response headers as the server spelled them, and every transport problem as the same
one-line failure. Headers are given per request, so a kept connection carries no credentials
from one item to the next.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from email.message import Message

import httpx

from pflow_trace.nodes.base import AsyncLanes, NodeFailure, current_async_lanes

#: The name of this module's connections in :attr:`AsyncLanes.clients`.
CLIENT_NAME = "http"

Origin = tuple[str, str, int]
_NO_BODY_STATUSES = frozenset({204, 304})


class _Stale(Exception):
    """A kept connection the server closed meanwhile: nothing came back, so the request was
    not taken, and it goes once more on a fresh connection (as the threads' pool does)."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class KeptConnections(httpx.AsyncBaseTransport):
    """HTTP/1.1 over kept asyncio connections: the ``httpx`` transport a batch's requests take.

    Here a request takes the last idle
    connection to its origin, or opens one; a batch's lanes never have more requests out
    than ``limit``, so never more connections either. The answer is read whole (a length,
    chunks, or up to the close), as ``http.client`` reads it.
    """

    def __init__(self, limit: int, tls: ssl.SSLContext) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._limit = limit
        self._tls = tls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        head = _request_head(request) + await request.aread()
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.reader.at_eof():
                connection.close()
                continue
            try:
                return await self._exchange(origin, connection, head, request, timeouts, True)
            except _Stale:
                break
        connection = await self._open(origin, timeouts.get("connect"))
        return await self._exchange(origin, connection, head, request, timeouts, False)

    async def _open(self, origin: Origin, timeout_s: float | None) -> _Connection:
        scheme, host, port = origin
        tls = self._tls if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self,
        origin: Origin,
        connection: _Connection,
        head: bytes,
        request: httpx.Request,
        timeouts: dict[str, float | None],
        reused: bool,
    ) -> httpx.Response:
        answered = False
        try:
            async with asyncio.timeout(timeouts.get("read")):
                connection.writer.write(head)
                await connection.writer.drain()
                status_line = await connection.reader.readline()
                if not status_line:
                    raise ConnectionResetError("the server closed the connection")
                answered = True
                answer = await _read_answer(connection.reader, status_line, request.method)
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("timed out") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            connection.close()
            if reused and not answered:
                raise _Stale() from None
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        status, headers, body, will_close = answer
        if will_close:
            connection.close()
        else:
            self._give_back(origin, connection)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    def _give_back(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) < self._limit:
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        idle = [connection for kept in self._idle.values() for connection in kept]
        self._idle.clear()
        for connection in idle:
            connection.close()


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_answer(
    reader: asyncio.StreamReader, status_line: bytes, method: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, raw headers, body, whether the connection must close) of one answer; an
    interim ``1xx`` answer is skipped."""
    while True:
        version, _, rest = status_line.partition(b" ")
        status = int(rest[:3])
        headers: list[tuple[bytes, bytes]] = []
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
        if not 100 <= status < 200:
            break
        status_line = await reader.readline()
    fields = {name.lower(): value.lower() for name, value in headers}
    connection = fields.get(b"connection", b"")
    will_close = b"close" in connection or (
        version == b"HTTP/1.0" and b"keep-alive" not in connection
    )
    if method == "HEAD" or status in _NO_BODY_STATUSES:
        return status, headers, b"", will_close
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        return status, headers, await _read_chunks(reader), will_close
    length = fields.get(b"content-length")
    if length is not None:
        return status, headers, await reader.readexactly(int(length)), will_close
    return status, headers, await reader.read(), True  # up to the close


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def transport_for(lanes: AsyncLanes) -> KeptConnections:
    """The batch's connections, made at its first request (at most ``in_flight`` kept);
    closing them is left to the lanes (awaited when the batch ends)."""
    transport = lanes.clients.get(CLIENT_NAME)
    if transport is None:
        transport = lanes.clients[CLIENT_NAME] = KeptConnections(lanes.in_flight, _tls_context())
        lanes.closers.append(transport.aclose)
    return transport


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The default HTTPS context (urllib's), made once per process: building it loads the
    system's certificates, which costs more than a request on a kept connection."""
    return ssl.create_default_context()


async def request(
    url: str, method: str, headers: dict[str, str], data: bytes | None, timeout_s: float
) -> tuple[int, Message, bytes]:
    """Send one request and read its whole answer: (status, headers, body). Outside async
    lanes (no batch to share connections with) the connection serves this request alone."""
    lanes = current_async_lanes.get()
    transport = transport_for(lanes) if lanes is not None else KeptConnections(1, _tls_context())
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers = {**headers, "Accept-Encoding": "identity"}  # as http.client sends
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    try:
        outgoing = httpx.Request(
            method, url, headers=headers, content=data, extensions={"timeout": timeouts}
        )
        response = await transport.handle_async_request(outgoing)
        body = await response.aread()
    except httpx.TimeoutException:
        raise NodeFailure(f"{method} {url} timed out after {timeout_s:g}s") from None
    except httpx.ConnectError as exc:
        raise NodeFailure(f"cannot reach {url}: {_detail(exc)}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise NodeFailure(f"invalid URL '{url}': {exc}") from None
    except httpx.HTTPError as exc:
        raise NodeFailure(f"{method} {url} failed: {_detail(exc)}") from None
    finally:
        if lanes is None:
            await transport.aclose()
    return response.status_code, _message(response.headers.raw), body


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
