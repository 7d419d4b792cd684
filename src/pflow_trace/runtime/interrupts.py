"""How a run stops for Ctrl-C, SIGTERM and SIGHUP without losing or mislabelling anything.

Python's own Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be: in the
middle of ending a span, between an item's span and its record, halfway through writing the
trace file. So while a run is driven from the main thread, the three signals get one handler
that raises only where stopping is safe: inside the *interruptible* regions, which are the
node's own work (a command, a code snippet, a sleep) and the waits for it (a parallel batch's
lanes, the pause between retries). Everywhere else (the runtime's bookkeeping, finishing the
run, writing the trace, flushing spans) a signal is only remembered; it is raised on entering
the next interruptible region, or, when the run has already finished, handed to the caller,
which exits 128 + the signal number once the trace is written.

Signal handlers run on the main thread only, so only the thread that installed the handler
enters and leaves regions; batch lanes never touch this state.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pflow_trace.errors import RunInterrupted

#: The signals that stop a run the way Ctrl-C does.
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _State:
    __slots__ = ("interruptible", "pending", "thread_id")

    def __init__(self) -> None:
        self.interruptible = 0  # > 0: the main thread is in node work or waiting for it
        self.pending: int | None = None  # a signal that arrived outside those regions
        self.thread_id: int | None = None  # the thread whose handler is installed


STATE = _State()


def _handle(signal_number: int, frame: FrameType | None) -> None:
    if STATE.interruptible > 0:
        raise RunInterrupted(signal_number)
    if STATE.pending is None:
        STATE.pending = signal_number


def on_handler_thread() -> bool:
    """Whether this thread's signals are ours to handle (the main thread of a traced run)."""
    return STATE.thread_id is not None and STATE.thread_id == threading.get_ident()


def enter_interruptible() -> None:
    """Start node work or a wait: a signal that arrived before it is raised now."""
    pending = STATE.pending
    if pending is not None:
        STATE.pending = None
        raise RunInterrupted(pending)
    STATE.interruptible += 1


def raise_pending() -> None:
    """Stop here if a signal arrived since the last region: called before work is handed out
    after a long stretch outside any region (starting a Dask cluster), so a signal that came
    meanwhile stops the run before anything starts rather than after it has."""
    if on_handler_thread() and STATE.pending is not None:
        pending, STATE.pending = STATE.pending, None
        raise RunInterrupted(pending)


def leave_interruptible() -> None:
    STATE.interruptible -= 1


def wait_for(done: threading.Event) -> None:
    """Wait until ``done`` is set; on the handler thread a signal ends the wait at once (the
    lanes' owner then stops them), anywhere else the wait is plain."""
    if not on_handler_thread():
        done.wait()
        return
    enter_interruptible()
    try:
        done.wait()
    finally:
        leave_interruptible()


def take_pending() -> int | None:
    """The signal that arrived after the last interruptible region, if any (cleared)."""
    pending, STATE.pending = STATE.pending, None
    return pending


@contextmanager
def signals_handled() -> Iterator[None]:
    """Handle the three signals for the duration of a run; restore what was there after.

    Only on the main thread (the only place Python runs handlers), and only for a signal that
    still has Python's default behaviour: a program that installed its own handler keeps it,
    and a SIGHUP ignored by ``nohup`` stays ignored.
    """
    if threading.current_thread() is not threading.main_thread() or STATE.thread_id is not None:
        yield
        return
    previous = {}
    for signal_number in HANDLED_SIGNALS:
        current = signal.getsignal(signal_number)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[signal_number] = current
            signal.signal(signal_number, _handle)
    STATE.interruptible, STATE.pending, STATE.thread_id = 0, None, threading.get_ident()
    try:
        yield
    finally:
        STATE.thread_id = None
        STATE.interruptible = 0
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)
