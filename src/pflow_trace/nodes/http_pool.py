"""Keep-alive HTTP connections the ``http`` node reuses, one pool per process.

Opening a connection (and, before, building a urllib opener) for every request cost each item
about 2 ms of interpreter time under the GIL, so a parallel batch of short requests could not
keep more than about 20 in flight. Connections here are kept open after a response and handed
to the next request for the same scheme, host and port, on any thread.

The pool never holds more connections in use than there are requests in flight (at most a
batch's ``max_concurrent`` lanes); at most :data:`MAX_IDLE_PER_ORIGIN` idle ones are kept per
origin. A connection carries no state between requests: headers (and so credentials) are
given per request and nothing stores cookies. :func:`close_idle` closes what is idle when a
run ends; a connection in use then is closed when its request finishes, not reused. The
environment's proxy settings are read once per run, here too.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.request

#: Idle connections kept per (scheme, host, port): enough for the widest batch of lanes.
MAX_IDLE_PER_ORIGIN = 256
#: A kept connection the server closed meanwhile fails as one of these before any answer.
_STALE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

Origin = tuple[str, str, int]


class SendFailed(Exception):
    """The request could not be sent (no connection, or it broke while sending): urllib's
    ``URLError`` case, told apart from a failure while the answer is read."""

    def __init__(self, reason: OSError) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_stale(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, SendFailed) else exc
    return isinstance(reason, _STALE_ERRORS)


class ConnectionPool:
    """Idle connections by origin; safe to use from any thread."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._tls: ssl.SSLContext | None = None
        self._proxies: dict[str, str] | None = None

    def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: dict[str, str],
        data: bytes | None,
        timeout_s: float,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send one request on a kept connection, or a new one; returns status, headers, body.

        A kept connection the server has closed since is replaced by a fresh one once (no
        answer came back, so the request was not taken); every other failure is raised.
        """
        connection, generation, reused = self._take(origin, timeout_s)
        try:
            try:
                answer = _exchange(connection, method, target, headers, data)
            except (SendFailed, *_STALE_ERRORS) as exc:
                if not (reused and _is_stale(exc)):
                    raise
                connection.close()
                connection, generation, _ = self._take(origin, timeout_s, fresh=True)
                answer = _exchange(connection, method, target, headers, data)
        except BaseException:
            connection.close()
            raise
        status, response_headers, body, will_close = answer
        if will_close:
            connection.close()
        else:
            self._give_back(origin, connection, generation)
        return status, response_headers, body

    def _take(
        self, origin: Origin, timeout_s: float, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, int, bool]:
        with self._lock:
            generation = self._generation
            idle = self._idle.get(origin)
            if idle and not fresh:
                connection = idle.pop()
                connection.timeout = timeout_s
                if connection.sock is not None:
                    connection.sock.settimeout(timeout_s)
                return connection, generation, True
            tls = self._tls_context() if origin[0] == "https" else None
        return _connection(origin, timeout_s, tls), generation, False

    def _give_back(
        self, origin: Origin, connection: http.client.HTTPConnection, generation: int
    ) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if generation == self._generation and len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        """The default HTTPS context (the one urllib uses), made once: building it loads the
        system's certificates, which is the costly part of a new HTTPS connection."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def proxies(self) -> dict[str, str]:
        """The environment's proxies by scheme (urllib's ``getproxies``), read at the first
        request of a run: reading them scans the whole environment, which cost more than the
        request itself."""
        proxies = self._proxies
        if proxies is None:
            proxies = self._proxies = urllib.request.getproxies()
        return proxies

    def close_idle(self) -> int:
        """Close every idle connection (those in use are closed when handed back) and forget
        the proxy settings read. Returns how many connections were closed."""
        with self._lock:
            self._generation += 1
            self._proxies = None
            idle = [connection for kept in self._idle.values() for connection in kept]
            self._idle.clear()
        for connection in idle:
            connection.close()
        return len(idle)

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(kept) for kept in self._idle.values())


def _connection(
    origin: Origin, timeout_s: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    scheme, host, port = origin
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout_s, context=tls)
    return http.client.HTTPConnection(host, port, timeout=timeout_s)


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: dict[str, str],
    data: bytes | None,
) -> tuple[int, http.client.HTTPMessage, bytes, bool]:
    """One request and its whole answer read (the connection is free for the next one)."""
    try:
        connection.request(method, target, body=data, headers=headers)
    except OSError as exc:
        raise SendFailed(exc) from None
    response = connection.getresponse()
    body = response.read()
    return response.status, response.headers, body, response.will_close


#: The process's pool: every ``http`` node of every batch and lane shares it.
pool = ConnectionPool()


def close_idle() -> int:
    """Close the process pool's idle connections (the run that used them has ended)."""
    return pool.close_idle()
