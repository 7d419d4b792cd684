"""One MCP session per configured server per process, on an event loop of its own.

The ``mcp`` SDK is async and its transports are context managers that must be entered and left
by the same task, so each session lives in one long-running task on a dedicated event-loop
thread: the task starts the server (or connects to it), initializes the session, lists its
tools, reports ready, and waits to be told to close. Node threads (a batch's lanes) send their
calls to that loop and wait for the answer, so every item of a batch reuses one session — a
server keeps its state between calls and is not started once per item. Sessions close when the
process exits (or :func:`close_all`). A server that failed to start is not started again in
this process; a session whose connection broke is dropped, and the next call starts a new one.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import tempfile
import threading
from concurrent.futures import CancelledError, Future
from datetime import timedelta
from typing import IO, Any

from pflow_trace.nodes.base import (
    WorkCancelled,
    exception_line,
    register_cancel,
    unregister_cancel,
)
from pflow_trace.nodes.mcp_config import TRANSPORT_HTTP, ServerConfig

#: Seconds a server has to start and answer ``initialize`` (pflow's call timeout).
START_TIMEOUT_S = 30.0
#: Seconds a session has to shut down at exit before it is abandoned.
CLOSE_TIMEOUT_S = 5.0


#: The transports' ways of saying the server went away (anyio's stream errors).
_CLOSED = frozenset({"BrokenResourceError", "ClosedResourceError", "EndOfStream"})
# The SDK logs a malformed line from a server with its traceback; the failure reaches the user
# as the node's one line instead, so nothing prints where no handler was configured.
logging.getLogger("mcp").addHandler(logging.NullHandler())


class McpUnavailable(Exception):
    """The server could not be started or reached, or the session broke; ``str`` is one line."""


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside the task groups' ``ExceptionGroup`` wrappers."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Loop:
    """The event loop the sessions run on, on a daemon thread started on first use."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="pflow-trace-mcp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


class Session:
    """A live session to one server: its tools, its protocol version and (HTTP) its id."""

    def __init__(self, server: ServerConfig) -> None:
        self.server = server
        self.client: Any = None
        self.tool_names: tuple[str, ...] = ()
        self.protocol_version: str | None = None
        self.session_id: str | None = None
        self.broken = False
        #: A stdio server's stderr, kept for the message when it does not start.
        self.stderr: IO[str] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Start the session's task and wait until it is ready (or failed to start)."""
        self._ready = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._live())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
            raise McpUnavailable(
                f"MCP server '{self.server.name}' did not answer within {START_TIMEOUT_S:g} s "
                "of starting"
            ) from None

    async def _live(self) -> None:
        assert self._ready is not None and self._closing is not None
        try:
            async with self._transport() as streams:
                from mcp import ClientSession

                async with ClientSession(streams[0], streams[1]) as client:
                    initialized = await client.initialize()
                    tools = await client.list_tools()
                    self.client = client
                    self.protocol_version = str(initialized.protocolVersion)
                    self.tool_names = tuple(tool.name for tool in tools.tools)
                    if len(streams) > 2:
                        self.session_id = streams[2]()
                    self._ready.set_result(None)
                    await self._closing.wait()
        except BaseException as exc:
            self.broken = True
            if not self._ready.done():
                message = f"MCP server '{self.server.name}' did not start: {self._why(exc)}"
                self._ready.set_exception(McpUnavailable(message))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self.stderr is not None:
                self.stderr.close()

    def _why(self, exc: BaseException) -> str:
        """One line: what failed, and the last line the server wrote to stderr, if any."""
        cause = _unwrap(exc)
        line = exception_line(cause)
        if type(cause).__name__ in _CLOSED or "Connection closed" in line:
            line = "it closed the connection before answering"
        said = _last_line(self.stderr)
        return f"{line} (its stderr: {said})" if said else line

    def _transport(self) -> Any:
        config = self.server.config
        if self.server.transport == TRANSPORT_HTTP:
            return _streamable_http(
                str(config["url"]),
                {str(k): str(v) for k, v in (config.get("headers") or {}).items()},
                float(config.get("timeout", 30)),
                float(config.get("sse_timeout", 300)),
            )
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
        parameters = StdioServerParameters(
            command=config["command"],
            args=[str(arg) for arg in config.get("args") or []],
            env={**os.environ, **env} if env else None,
        )
        # Closed when the session ends (``_live``), not when this call returns.
        self.stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        return _stdio(stdio_client, parameters, self.stderr)

    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        try:
            return await self.client.call_tool(
                tool, arguments, read_timeout_seconds=timedelta(seconds=timeout_s)
            )
        except Exception as exc:
            from mcp.shared.exceptions import McpError

            if not isinstance(exc, McpError):  # the connection broke: start afresh next time
                self.broken = True
            raise

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, CLOSE_TIMEOUT_S)


@contextlib.asynccontextmanager
async def _stdio(stdio_client: Any, parameters: Any, errlog: IO[str]) -> Any:
    """The stdio transport, with the server's stderr kept in a file, off the terminal: it is
    shown only when the server fails to start, in the one line that goes through the run's
    redaction."""
    async with stdio_client(parameters, errlog=errlog) as streams:
        yield streams


def _last_line(stderr: IO[str] | None) -> str:
    if stderr is None or stderr.closed:
        return ""
    with contextlib.suppress(OSError, ValueError):
        stderr.seek(0)
        lines = [line.strip() for line in stderr.read().splitlines() if line.strip()]
        return lines[-1] if lines else ""
    return ""


@contextlib.asynccontextmanager
async def _streamable_http(
    url: str, headers: dict[str, str], timeout_s: float, read_timeout_s: float
) -> Any:
    """The streamable HTTP transport with the server's headers and timeouts (pflow's keys
    ``timeout`` and ``sse_timeout``); the SDK's older spelling where the newer is missing."""
    from mcp.client import streamable_http

    newer = getattr(streamable_http, "streamable_http_client", None)
    if newer is None:
        async with streamable_http.streamablehttp_client(
            url, headers=headers, timeout=timeout_s, sse_read_timeout=read_timeout_s
        ) as streams:
            yield streams
        return
    import httpx
    from mcp.shared._httpx_utils import create_mcp_http_client

    client = create_mcp_http_client(headers, httpx.Timeout(timeout_s, read=read_timeout_s))
    async with client, newer(url, http_client=client) as streams:
        yield streams


class SessionPool:
    """This process's sessions, by server config; started on first use, closed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._sessions: dict[str, Session] = {}
        self._failed: dict[str, str] = {}
        self._starting: dict[str, threading.Lock] = {}

    def _event_loop(self) -> _Loop:
        with self._lock:
            if self._loop is None:
                self._loop = _Loop()
                atexit.register(self.close_all)
            return self._loop

    def session(self, server: ServerConfig) -> Session:
        """The live session for ``server``, started once however many threads ask at once."""
        key = server.fingerprint()
        with self._lock:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:
            if key in self._failed:
                raise McpUnavailable(self._failed[key])
            live = self._sessions.get(key)
            if live is not None and not live.broken:
                return live
            session = Session(server)
            try:
                self._event_loop().submit(session.open()).result()
            except McpUnavailable as exc:
                self._failed[key] = str(exc)
                raise
            self._sessions[key] = session
            return session

    def call(self, session: Session, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """The tool's result; an interrupted run cancels the call (``WorkCancelled``) rather
        than waiting for it, since Ctrl-C reaches only the main thread."""
        future = self._event_loop().submit(session.call(tool, arguments, timeout_s))
        register_cancel(id(future), future.cancel)
        try:
            return future.result()
        except CancelledError:
            raise WorkCancelled() from None
        finally:
            unregister_cancel(id(future))

    def open_count(self) -> int:
        return sum(1 for session in self._sessions.values() if not session.broken)

    def close_all(self) -> None:
        """Close every session (stdio servers exit) and forget failed starts."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            self._failed.clear()
            loop = self._loop
        if loop is None:
            return
        for session in sessions:
            with contextlib.suppress(Exception):
                loop.submit(session.close()).result(CLOSE_TIMEOUT_S + 1)


#: The process's one pool.
pool = SessionPool()
