"""The ``http`` node's requests on async lanes: kept asyncio connections, one pool per batch.

On async lanes a batch's items are tasks on one event loop, so a request waiting for its
answer holds no thread: ``max_concurrent`` requests (up to 1,000) wait at once on one thread.
:class:`KeptConnections` is a batch's pool: at most ``max_concurrent`` keep-alive connections
(:class:`~pflow_trace.nodes.base.AsyncLanes`), made at its first request and closed, on the
same loop, when the batch ends. A request takes the last idle connection to its origin or
opens one; a batch's lanes never have more requests out than that, so never more
connections either.

What is ours and what is ``httpx``'s, and why (profiled: ``httpx``'s request and response
models and asyncio's stream reader took more than half of an item's CPU on async lanes;
without them the item costs about half as much):

- The request line and headers are written here (:func:`_request_head`), as ``httpx``'s
  ``Request`` writes them (``Host`` first, ``Content-Length`` as it adds it; checked against it
  in the tests). ``httpx``'s URL parser is the better tool for a URL that needs work (a
  non-ASCII host or path, characters to percent-encode, ``.`` segments, IPv6): such a URL
  goes through ``httpx.URL`` whole. A plain one (printable ASCII that ``httpx`` would leave as
  it is) is cut here, its ``scheme://host:port`` parsed by ``httpx`` once per host.
- The answer is read by an asyncio ``Protocol`` (:class:`_Connection`): bytes are gathered as
  they arrive and parsed once the head, and then the body (a length, chunks, or up to the
  close, as ``http.client`` reads them; an interim ``1xx`` answer skipped) are whole; the
  task waits once per request. ``httpx``'s ``Response`` is not made: its only work here was
  copying bytes through a stream. ``timeout`` bounds the whole exchange (write and answer),
  kept by one timer per connection rather than one per request: a cancelled timer stays on
  the loop's heap until its time, and at 500 in flight the heap alone cost about 5 % of an
  item.
- Neither httpx's client nor its default pool is used: the pool examines every connection it
  holds for each request it assigns (with it an item cost 2.6 ms of CPU at 20 in flight), and
  the client's cookie jar would carry a cookie a server sets to the next item's request,
  which the threads' path never does.

What is sent and what comes back is the threads' path (:mod:`~pflow_trace.nodes.http`): the
same headers (``Accept-Encoding: identity`` as ``http.client`` adds it), TLS with the system's
default context, no redirect followed here, no proxy (a proxied request takes the threads'
path), the body as it came (no content decoding), response headers as the server spelled
them, and every transport problem as the same one-line failure. A kept connection the server
closed meanwhile is replaced and the request sent once more, as the threads' pool does.
Headers are given per request, so a kept connection carries no credentials from one item to
the next.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from email.message import Message

import httpx

from pflow_trace.nodes.base import AsyncLanes, NodeFailure, current_async_lanes

#: The name of this module's connections in :attr:`AsyncLanes.clients`.
CLIENT_NAME = "http"

Origin = tuple[str, str, int]
#: Response headers as sent (latin-1 text, in order).
Headers = list[tuple[str, str]]
_NO_BODY_STATUSES = frozenset({204, 304})
#: A path and a query ``httpx`` sends as they are: printable ASCII outside its percent-encode
#: sets (the path's adds ``? ` { }``), no ``.`` segment to remove.
_PLAIN_PATH = re.compile(r"(?:/[!$-;=@-_a-z|~]*)?")
_PLAIN_QUERY = re.compile(r"[!$-;=?-~]*")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: The most an answer's status line and headers may take (``http.client`` allows 64 KiB a
#: line); a server sending more is refused rather than buffered without end.
MAX_HEAD_BYTES = 65_536
# How an answer's body ends.
_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)


class _Stale(Exception):
    """A kept connection the server closed meanwhile: nothing came back, so the request was
    not taken, and it goes once more on a fresh connection (as the threads' pool does)."""


class _Unreachable(Exception):
    """The connection could not be made (the ``OSError`` is its cause)."""


class _Connection(asyncio.Protocol):
    """One connection and the answer it is reading: bytes gathered as they arrive, the
    waiting request woken once, when the answer is whole or the connection failed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.lost = False
        self.waiter: asyncio.Future[tuple[int, Headers, bytes, bool]] | None
        self.waiter = None
        self.deadline = 0.0  # the loop time the request out must be answered by
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.method = "GET"
        self.head: tuple[int, Headers, bool] | None = None
        self.scanned = 0  # how much of the buffer the search for the head's end has seen
        self.ending = _NONE
        self.length = 0  # the body's, or the chunks' parse position
        self.parts: list[bytes] = []
        self.chunk = (0, 0)  # (where, size) of the chunk being waited for

    # -- asyncio's calls ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():  # (done: failed, cancelled, timed out)
            self._advance(ended=False)

    def eof_received(self) -> bool:
        self._end(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    # -- one request -------------------------------------------------------------------------

    def send(self, head: bytes, method: str, timeout_s: float) -> asyncio.Future[tuple]:  # type: ignore[type-arg]
        """Write a request; the future is the whole answer: (status, headers, body,
        whether the connection must close), or the reason there is none (``TimeoutError``
        after ``timeout_s``)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self.method, self.head, self.parts, self.scanned = method, None, [], 0
        self.deadline = loop.time() + timeout_s
        if self.timer is None or self.timer_at > self.deadline:
            self._arm(loop)
        if self.lost:  # closed between its making and this request
            waiter.set_exception(ConnectionResetError("the server closed the connection"))
        else:
            self.transport.write(head)
        return waiter

    def close(self) -> None:
        self.lost = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer per connection, not per request: when it fires, a request still out
        past its deadline times out; one sent since, with a later deadline, moves the timer
        there. On a busy connection it fires about once per timeout, not once per request."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = self.deadline
        self.timer = loop.call_at(self.deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # idle: the next request arms a timer again
        if self.deadline <= self.timer_at:
            waiter.set_exception(TimeoutError())
        else:
            self._arm(asyncio.get_running_loop())

    def _end(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if exc is None and (self.buffer or self.head is not None):
            # What came is read as readline would read it: up to the end.
            if self.head is None:
                self.buffer += b"\r\n\r\n"
            elif self.ending == _CHUNKED:
                self.buffer += b"\r\n"
            self._advance(ended=True)
            if waiter.done():
                return
        if exc is None and self.head is None:
            exc = ConnectionResetError("the server closed the connection")
        elif exc is None and self.ending == _LENGTH:
            exc = asyncio.IncompleteReadError(bytes(self.buffer), self.length)
        elif exc is None:
            where, size = self.chunk
            exc = asyncio.IncompleteReadError(bytes(self.buffer[where : where + size]), size)
        waiter.set_exception(exc)

    def _advance(self, ended: bool) -> None:
        """Parse what has come; wake the request when its answer is whole."""
        assert self.waiter is not None
        try:
            if self.head is None and not self._read_head():
                return
            body = self._read_body(ended)
        except ValueError as exc:
            self.waiter.set_exception(exc)
            return
        if body is not None:
            status, headers, will_close = self.head  # type: ignore[misc]
            self.waiter.set_result((status, headers, body, will_close))
            self.waiter = None

    def _read_head(self) -> bool:
        """The answer's head, once whole (interim ``1xx`` answers dropped): what the body is.

        The search for the head's end starts where the last one stopped, so a head that
        trickles in is scanned once; a head over :data:`MAX_HEAD_BYTES` is refused, as
        ``http.client`` refuses an over-long header line."""
        buffer = self.buffer
        while True:
            start = max(self.scanned - 2, 0)
            crlf, lf = buffer.find(b"\n\r\n", start), buffer.find(b"\n\n", start)
            if crlf < 0 and lf < 0:
                _check_head_size(len(buffer))
                self.scanned = len(buffer)
                return False
            self.scanned = 0
            end = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 3
            _check_head_size(end)
            lines = buffer[:end].decode("latin-1").split("\n")
            del buffer[:end]
            version, _, rest = lines[0].partition(" ")
            status = _whole_number(rest[:3])
            if not 100 <= status < 200:
                break
        headers = [_header(line) for line in lines[1:] if line not in ("", "\r")]
        fields = {name.lower(): value.lower() for name, value in headers}
        connection = fields.get("connection", "")
        will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        length = fields.get("content-length")
        if self.method == "HEAD" or status in _NO_BODY_STATUSES:
            self.ending = _NONE
        elif "chunked" in fields.get("transfer-encoding", ""):
            self.ending, self.length = _CHUNKED, 0
        elif length is not None:
            self.ending, self.length = _LENGTH, _whole_number(length)
        else:
            self.ending, will_close = _CLOSE, True  # up to the close
        self.head = (status, headers, will_close)
        return True

    def _read_body(self, ended: bool) -> bytes | None:
        buffer, ending = self.buffer, self.ending
        if ending == _NONE:
            return b""
        if ending == _LENGTH:
            if len(buffer) < self.length:
                return None
            body = bytes(buffer[: self.length])
            del buffer[: self.length]
            return body
        if ending == _CLOSE:
            return bytes(buffer) if ended else None
        return self._read_chunks()

    def _read_chunks(self) -> bytes | None:
        """Chunks from ``self.length`` on, kept as they complete; the body after the last."""
        buffer = self.buffer
        while True:
            position = self.length
            line_end = buffer.find(b"\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0].strip(), 16)
            start = line_end + 1
            if size == 0:
                while (line_end := buffer.find(b"\n", start)) >= 0:  # trailers, up to a blank
                    line, start = buffer[start:line_end], line_end + 1
                    if line in (b"", b"\r"):
                        del buffer[:start]
                        return b"".join(self.parts)
                return None
            if len(buffer) < start + size + 2:
                self.chunk = (start, size)
                return None
            self.parts.append(bytes(buffer[start : start + size]))
            self.length = start + size + 2


def _check_head_size(size: int) -> None:
    if size > MAX_HEAD_BYTES:
        raise ValueError(f"the answer's head is over {MAX_HEAD_BYTES:,} bytes")


def _whole_number(text: str) -> int:
    """``int(text)``; what it cannot read is reported as the bytes that came."""
    try:
        return int(text)
    except ValueError:
        return int(text.encode("latin-1"))


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


class KeptConnections:
    """HTTP/1.1 over kept asyncio connections: the pool a batch's requests take."""

    def __init__(self, limit: int, tls: ssl.SSLContext) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._limit = limit
        self._tls = tls

    async def exchange(
        self, origin: Origin, head: bytes, method: str, timeout_s: float
    ) -> tuple[int, Headers, bytes]:
        """Send one request and read its answer whole: (status, raw headers, body)."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.lost or connection.buffer:
                connection.close()
                continue
            try:
                return await self._exchange(origin, connection, head, method, timeout_s, True)
            except _Stale:
                break
        connection = await self._open(origin, timeout_s)
        return await self._exchange(origin, connection, head, method, timeout_s, False)

    async def _open(self, origin: Origin, timeout_s: float) -> _Connection:
        scheme, host, port = origin
        tls = self._tls if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise _Unreachable() from exc
        return connection

    async def _exchange(
        self,
        origin: Origin,
        connection: _Connection,
        head: bytes,
        method: str,
        timeout_s: float,
        reused: bool,
    ) -> tuple[int, Headers, bytes]:
        waiter = connection.send(head, method, timeout_s)
        try:
            status, headers, body, will_close = await waiter
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            connection.close()
            nothing_came = not connection.buffer and connection.head is None
            if reused and nothing_came and not isinstance(exc, TimeoutError):
                raise _Stale() from None
            raise
        except BaseException:  # cancelled mid-request: the connection is in no known state
            connection.close()
            raise
        if will_close or connection.lost:
            connection.close()
        else:
            self._give_back(origin, connection)
        return status, headers, body

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


def _request_head(
    url: str, method: str, headers: dict[str, str], data: bytes | None
) -> tuple[Origin, bytes]:
    """The request's origin and the bytes of its head (and body): what ``httpx``'s
    ``Request`` would send."""
    origin, host, target = _target(url)
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target)]
    names = {name.lower() for name in headers}
    if "host" not in names:
        lines.append(b"Host: " + host)
    sized = "content-length" in names or "transfer-encoding" in names
    if not data and not sized and method in _BODY_METHODS:
        lines.append(b"Content-Length: 0")
    if headers:
        given = "\r\n".join([f"{name}: {value}" for name, value in headers.items()])
        try:
            lines.append(given.encode("ascii"))
        except UnicodeEncodeError:
            for name, value in headers.items():  # httpx's error: the one name or value
                name.encode("ascii")
                value.encode("ascii")
            raise
    if data and "content-length" not in names:
        lines.append(b"Content-Length: %d" % len(data))
    return origin, b"\r\n".join(lines) + b"\r\n\r\n" + (data or b"")


def _target(url: str) -> tuple[Origin, bytes, bytes]:
    """(origin, ``Host`` value, request target) of a URL, as ``httpx`` makes them."""
    scheme, _, rest = url.partition("://")
    cut = len(rest)
    for mark in "/?#":
        found = rest.find(mark, 0, cut)
        if found >= 0:
            cut = found
    tail = rest[cut:].partition("#")[0]
    path, question, query = tail.partition("?")
    if _PLAIN_PATH.fullmatch(path) and "/." not in path and _PLAIN_QUERY.fullmatch(query):
        origin, host = _authority(scheme.lower(), rest[:cut])
        return origin, host, ((path or "/") + question + query).encode("ascii")
    parsed = httpx.URL(url)
    return _origin_of(parsed), parsed.netloc, parsed.raw_path


@functools.lru_cache(maxsize=256)
def _authority(scheme: str, netloc: str) -> tuple[Origin, bytes]:
    """The origin and ``Host`` value of ``scheme://netloc`` (IDNA, default port left out):
    parsed once per batch and host, not per request."""
    parsed = httpx.URL(f"{scheme}://{netloc}/")
    return _origin_of(parsed), parsed.netloc


def _origin_of(url: httpx.URL) -> Origin:
    scheme = url.scheme
    port = url.port or (443 if scheme == "https" else 80)
    if not 0 <= port <= 65535:
        raise httpx.InvalidURL("Port out of range 0-65535")  # as urllib says it
    return (scheme, url.host, port)


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
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers = {**headers, "Accept-Encoding": "identity"}  # as http.client sends
    try:
        origin, head = _request_head(url, method, headers, data)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise NodeFailure(f"invalid URL '{url}': {exc}") from None
    lanes = current_async_lanes.get()
    transport = transport_for(lanes) if lanes is not None else KeptConnections(1, _tls_context())
    try:
        status, raw, body = await transport.exchange(origin, head, method, timeout_s)
    except TimeoutError:
        raise NodeFailure(f"{method} {url} timed out after {timeout_s:g}s") from None
    except _Unreachable as exc:
        raise NodeFailure(f"cannot reach {url}: {_detail(exc.__cause__ or exc)}") from None
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        raise NodeFailure(f"{method} {url} failed: {_detail(exc)}") from None
    finally:
        if lanes is None:
            await transport.aclose()
    return status, _message(raw), body


def _message(raw: Headers) -> Message:
    """Response headers as the threads' path has them: an ordered ``Message``, names as sent."""
    message = Message()
    for name, value in raw:
        message.set_raw(name, value)
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
