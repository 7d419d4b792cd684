"""The contract every workflow node type implements.

A node type is an engine :class:`~pflow_trace.engine.BaseNode` whose ``exec`` receives the node's
parameters, already template-resolved, and returns a dict of outputs. ``post`` writes each output
key into the store it is given; the runtime hands it a namespaced view, so the keys land in
``shared[node_id]``. Node types never see templates, namespaces, batches, retries or tracing.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry.trace import Tracer

from pflow_trace.engine import BaseNode
from pflow_trace.engine.core import Shared
from pflow_trace.errors import RunInterrupted
from pflow_trace.nodes.params import params_problem
from pflow_trace.observe.sanitize import Sanitizer

#: The 1-based attempt of the batch item running on this thread. The batch runtime sets it; a
#: node may read it (``echo``'s ``fail_times`` does) but must never keep a counter of its own.
current_attempt: contextvars.ContextVar[int] = contextvars.ContextVar(
    "pflow_trace_current_attempt", default=1
)


class AsyncLanes:
    """What the items of one batch on async lanes share (one event loop, one thread).

    ``in_flight`` is the batch's ``max_concurrent``: a client a node opens for the batch
    (the ``http`` node's connection pool; the ``llm`` node keeps its async clients here) is
    sized by it. ``clients`` holds such clients by
    name, so every item of the batch reuses one; ``closers`` are awaited when the batch ends,
    on the same loop. Only the loop's thread touches it, so it needs no lock.
    """

    __slots__ = ("clients", "closers", "in_flight")

    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight
        self.clients: dict[str, Any] = {}
        self.closers: list[Callable[[], Awaitable[Any]]] = []


#: The async lanes the running item is on; None on threads and worker processes.
current_async_lanes: contextvars.ContextVar[AsyncLanes | None] = contextvars.ContextVar(
    "pflow_trace_current_async_lanes", default=None
)


def has_async_path(node_class: type) -> bool:
    """Whether a node type declares an async path (``exec_async``): its batch items then run
    as tasks on async lanes instead of threads."""
    return callable(getattr(node_class, "exec_async", None))


def async_path_for(node_class: type, params: Mapping[str, Any]) -> bool:
    """Whether a batch of this node type with these (unresolved) params runs on async lanes:
    the type declares ``exec_async`` and, if it also has ``async_available(params)`` (the
    ``llm`` node: only models with an async implementation), that says yes."""
    if not has_async_path(node_class):
        return False
    available = getattr(node_class, "async_available", None)
    return bool(available(dict(params))) if callable(available) else True


@dataclass(frozen=True, slots=True)
class CallTracing:
    """The run's tracer and redaction, for a node whose calls are spans of their own.

    Most node types never touch spans (the runtime records their work); a node that makes
    several calls to another service (``mcp-…``) makes one child span per call with these.
    """

    tracer: Tracer
    sanitizer: Sanitizer


#: Set by the runtime around a node's ``exec`` (the node span is then the current span).
current_call_tracing: contextvars.ContextVar[CallTracing | None] = contextvars.ContextVar(
    "pflow_trace_current_call_tracing", default=None
)

#: A ``patternProperties`` entry for every node type's ``params_schema``. Keys starting with
#: ``__`` are control values the runtime injects (such as ``__attempt__``); ``inputs`` is the
#: scope every node type has (named values its other params read as ``${key}``). Allowing them
#: lets strict schemas (``additionalProperties: false``) still catch typos in user-written params.
RUNTIME_KEYS: dict[str, Any] = {"^__": {}, "^inputs$": {"type": "object"}}


_cancel_lock = threading.Lock()
_cancel_callbacks: dict[int, Callable[[], None]] = {}
#: Set by :func:`cancel_running_work`: work registered after it is cancelled at once, so an
#: item that was just starting its command when the run was interrupted leaves no child behind.
_cancelling = False


class WorkCancelled(BaseException):
    """A node's work was stopped because the run was interrupted (its command was killed).

    Not an ``Exception``: no ``except Exception`` in a node may take it for an ordinary failure,
    and the batch layer records the item as ``interrupted``, never ``failed``, and never retries.
    """


def register_cancel(key: int, callback: Callable[[], None]) -> None:
    """Register how to stop work in flight (a child process) if the run is interrupted.

    Ctrl-C reaches only the main thread; work running on batch worker threads would otherwise
    keep the process alive until it finished. Nodes register a callback while such work runs.
    """
    with _cancel_lock:
        if not _cancelling:
            _cancel_callbacks[key] = callback
            return
    callback()


def unregister_cancel(key: int) -> None:
    with _cancel_lock:
        _cancel_callbacks.pop(key, None)


def cancel_running_work() -> int:
    """Call every registered cancel callback once; returns how many there were.

    Until :func:`reset_cancellation`, work registered later is cancelled as it registers.
    """
    global _cancelling
    with _cancel_lock:
        _cancelling = True
        callbacks = list(_cancel_callbacks.values())
        _cancel_callbacks.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # cancelling is best effort; the run is already ending
            pass
    return len(callbacks)


def reset_cancellation() -> None:
    """A new run starts: registered work is no longer cancelled on sight."""
    global _cancelling
    with _cancel_lock:
        _cancelling = False


def is_signal_interrupt(exc: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` is the user's signal rather than a node's own ``raise``.

    A traced run's signal handler raises ``RunInterrupted``; a plain ``KeyboardInterrupt`` is a
    signal only where Python's default Ctrl-C handler is still in place on the main thread.
    """
    if isinstance(exc, RunInterrupted):
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def is_runtime_stop(exc: BaseException) -> bool:
    """Whether an exception out of a node's work is the runtime stopping it, not a failure.

    The runtime's stops are the user's signal (:func:`is_signal_interrupt`) and the runtime's
    own ``BaseException`` classes (:class:`WorkCancelled`, an executor's cancellation raised
    into the item's thread), recognised by the package that defines them. Everything else —
    ``exit()``'s ``SystemExit``, an ``asyncio.CancelledError``, a ``GeneratorExit`` or a
    ``KeyboardInterrupt`` raised by the node's own code, a class deriving from
    ``BaseException`` — is the node failing: it must neither end the run nor reach the
    terminal as a traceback that quotes an input.
    """
    if isinstance(exc, KeyboardInterrupt):
        return is_signal_interrupt(exc)
    if isinstance(exc, Exception):
        return False
    return type(exc).__module__.split(".")[0] == "pflow_trace"


def exception_line(exc: BaseException) -> str:
    """``ValueError: bad row`` on one line, whatever the exception's text looked like.

    Not cut short: a secret cut in half would no longer match the run's redaction.
    """
    detail = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class NodeFailure(Exception):
    """A node's work failed. ``outputs`` keeps whatever it produced (stderr, a status code).

    ``retriable`` False: the work completed and its result is the failure (a command's non-zero
    exit, an HTTP error status, params that break the schema), so a node's ``retry`` block does
    not run it again, as in pflow; only a failure to complete the work (an exception, a timeout,
    a refused connection) is worth another attempt.
    """

    def __init__(
        self,
        message: str,
        outputs: Mapping[str, Any] | None = None,
        retriable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = dict(outputs or {})
        self.retriable = retriable
        #: The wait before another attempt that the failure itself asks for (an HTTP
        #: ``Retry-After``); a batch item's next attempt waits at least this long.
        self.retry_after_s = retry_after_s


def _as_failure(exc: BaseException, shared: Shared) -> BaseException:
    """What a node's run raises for ``exc`` (see :meth:`WorkflowNode._run`): a
    :class:`NodeFailure`, after writing its partial outputs into the namespace; any other
    ``Exception`` or the runtime's own stop as it is; any other ``BaseException`` as a new
    one-line :class:`NodeFailure`."""
    if isinstance(exc, NodeFailure):
        for key, value in exc.outputs.items():
            shared[key] = value
        return exc
    if isinstance(exc, Exception) or is_runtime_stop(exc):
        return exc
    return NodeFailure(exception_line(exc))


class WorkflowNode(BaseNode):
    """Base class for node types: subclasses set ``type_name`` and implement :meth:`exec`."""

    type_name: ClassVar[str] = ""
    #: JSON Schema for the resolved params; checked before ``exec`` so bad params fail clearly.
    params_schema: ClassVar[dict[str, Any] | None] = None
    #: Every key a successful run writes, when that set is fixed whatever the params; ``validate``
    #: then reports ``${node.stdot}`` as a typo. None: the keys depend on the params (``echo``).
    output_keys: ClassVar[frozenset[str] | None] = None
    #: False for a type that must run in the run's own process (it holds a connection or state
    #: shared with other nodes): ``validate`` then refuses it on the processes and dask executors.
    ships_to_workers: ClassVar[bool] = True
    #: True for a type whose calls catch the standard streams (``output_capture``): a batch of
    #: it keeps the stream proxies installed for the whole batch instead of once per item.
    captures_output: ClassVar[bool] = False

    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node_id = node_id

    def prep(self, shared: Shared) -> dict[str, Any]:
        if self.params_schema is not None:
            problem = params_problem(self.type_name, self.params_schema, self.params)
            if problem is not None:
                raise NodeFailure(problem, retriable=False)
        return self.params

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"node type '{self.type_name}' does not implement exec")

    def _run(self, shared: Shared) -> str | None:
        """Run prep, exec and post; a failure's partial outputs still go into the namespace.

        ``NodeFailure.outputs`` (a shell node's stdout and stderr, an http node's status and
        body) are what a person needs to see why the node failed, so they are written like a
        success's outputs before the failure goes on up: the trace's ``shared_after`` has them.
        A ``BaseException`` that is not an ``Exception`` and not the runtime's stop (see
        :func:`is_runtime_stop`) becomes a :class:`NodeFailure` with a one-line message, so a
        node type's ``CancelledError`` fails the node like any error, on every executor.
        """
        try:
            return super()._run(shared)
        except BaseException as exc:
            failure = _as_failure(exc, shared)
            if failure is exc:
                raise
            raise failure from None

    async def _run_async(self, shared: Shared) -> str | None:
        """:meth:`_run` for a type with ``exec_async``, as a task on async lanes: the same
        prep, post and failures. A cancellation of the task is the runtime stopping the item
        (:class:`WorkCancelled`); a ``CancelledError`` the node raises itself is its failure."""
        try:
            prep_result = self.prep(shared)
            exec_result = await self.exec_async(prep_result)  # type: ignore[attr-defined]
            return self.post(shared, prep_result, exec_result)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise WorkCancelled() from None
            raise NodeFailure("CancelledError") from None
        except BaseException as exc:
            failure = _as_failure(exc, shared)
            if failure is exc:
                raise
            raise failure from None

    def post(self, shared: Shared, prep_result: Any, exec_result: Any) -> str | None:
        outputs: Mapping[str, Any] = exec_result or {}
        for key, value in outputs.items():
            shared[key] = value
        action = outputs.get("__action__") if isinstance(outputs, Mapping) else None
        return action if isinstance(action, str) else None
