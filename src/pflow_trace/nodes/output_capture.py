"""What code run in-process writes to the standard streams or ``logging``, caught per call.

A ``code`` node's output is one of its outputs, so it goes through the run's redaction like any
other value; output that reached the terminal directly would not. Replacing ``print`` covers
one way to write; ``sys.stderr.write``, ``logging`` and a library's own ``print`` go through the
process-wide streams. Those are shared by every batch lane running on a thread, so while any
capture is open, ``sys.stdout`` and ``sys.stderr`` are proxies that write to the buffers of the
capture open in the *current context* (the thread, and the asyncio tasks the code starts) and to
the original stream anywhere else. The last capture to close puts the originals back.

Installing walks the process's logging handlers, which costs more than the capture itself; a
batch of ``code`` items therefore keeps the proxies installed for its whole run
(:func:`proxies_held`, opened once by the runtime's batch layer), and each call then only sets
its buffers as the current context's. Routing is by context either way, so what a call catches
is the same whether the proxies were installed for it or for its batch.

``logging`` writes through handlers: ``logging.lastResort`` and a ``basicConfig`` made while a
capture is open look ``sys.stderr`` up and find the proxy; a stream handler made earlier holds
the original stream, so it is pointed at the proxy for as long as captures are open.

Output the proxies cannot see: writes to file descriptors 1 and 2 (``os.write``, a child
process), to ``sys.__stderr__``, and from threads the code starts itself.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CapturedOutput:
    """What one call wrote: to standard output, and to standard error or ``logging``."""

    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)


_current: contextvars.ContextVar[CapturedOutput | None] = contextvars.ContextVar(
    "pflow_trace_captured_output", default=None
)


class _StreamProxy:
    """``sys.stdout`` or ``sys.stderr``: the current capture's buffer, else the original."""

    def __init__(self, original: Any, name: str) -> None:
        self._original = original
        self._name = name

    def _target(self) -> Any:
        captured = _current.get()
        return self._original if captured is None else getattr(captured, self._name)

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return _current.get() is None and bool(getattr(self._original, "isatty", bool)())

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer, ...
        return getattr(self._target(), name)


class _Installation:
    """The proxies in place while captures are open; counted, so parallel calls share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        #: Made once: a handler a ``basicConfig`` pointed at one keeps working after it closes.
        self._out = _StreamProxy(None, "stdout")
        self._err = _StreamProxy(None, "stderr")
        self._repointed: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._seen: tuple[int, Any] = (0, None)

    def open(self) -> None:
        with self._lock:
            self._open += 1
            if self._open == 1:
                self._install()
            elif _handlers_seen() != self._seen:  # a handler made since: point it too
                self._repoint()

    def close(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._uninstall()

    def _install(self) -> None:
        out, err = self._out, self._err
        out._original, err._original = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        self._repoint()

    def _repoint(self) -> None:
        """Point every stream handler that writes to an original stream at its proxy."""
        out, err = self._out, self._err
        by_stream = {id(out._original): out, id(err._original): err}
        self._seen = _handlers_seen()
        for handler in _stream_handlers():
            proxy = by_stream.get(id(handler.stream))
            if proxy is not None:
                self._repointed.append((handler, handler.stream))
                handler.stream = proxy  # type: ignore[assignment]

    def _uninstall(self) -> None:
        out, err = self._out, self._err
        if sys.stdout is out:
            sys.stdout = out._original
        if sys.stderr is err:
            sys.stderr = err._original
        for handler, stream in self._repointed:
            if handler.stream is out or handler.stream is err:
                handler.stream = stream
        self._repointed.clear()


def _handlers_seen() -> tuple[int, Any]:
    """What tells that ``logging``'s handler list changed: its length and its last entry (a
    handler made or gone changes one of them). A list ``logging`` does not have reads as
    unchanged: its handlers are walked only when the proxies are installed."""
    handlers: Any = getattr(logging, "_handlerList", None)
    if not handlers:
        return (0, None)
    return (len(handlers), handlers[-1])


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Every live stream handler of the process.

    ``logging`` keeps a weak list of every handler ever made (for its shutdown); walking it is
    a few steps, where walking every logger costs microseconds per logger on every call.
    """
    handlers: Any = getattr(logging, "_handlerList", None)
    if handlers is None:  # not CPython's logging: walk the loggers
        loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        found = [handler for logger in loggers for handler in getattr(logger, "handlers", ())]
    else:
        found = [ref() for ref in list(handlers)]
    return [handler for handler in found if isinstance(handler, logging.StreamHandler)]


_installation = _Installation()


class captured_output:  # a lower-case name: it is used like a function, ``with captured_output()``
    """Catch what this context writes to the standard streams and ``logging``, until it exits.

    A class rather than a generator-based context manager: it runs once per ``code`` item, and
    the generator's machinery cost more than the rest of a call that finds the proxies held."""

    __slots__ = ("_captured", "_token")

    def __enter__(self) -> CapturedOutput:
        captured = self._captured = CapturedOutput()
        _installation.open()
        self._token = _current.set(captured)
        return captured

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        _installation.close()


@contextmanager
def proxies_held() -> Iterator[None]:
    """Keep the stream proxies installed until this exits (a batch of capturing items), so the
    captures inside only count themselves in and out; the last to leave puts the originals
    back, as always."""
    _installation.open()
    try:
        yield
    finally:
        _installation.close()
