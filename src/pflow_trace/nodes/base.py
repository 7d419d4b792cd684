"""The contract every workflow node type implements.

A node type is an engine :class:`~pflow_trace.engine.BaseNode` whose ``exec`` receives the node's
parameters, already template-resolved, and returns a dict of outputs. ``post`` writes each output
key into the store it is given; the runtime hands it a namespaced view, so the keys land in
``shared[node_id]``. Node types never see templates, namespaces, batches, retries or tracing.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pflow_trace.engine import BaseNode
from pflow_trace.engine.core import Shared

#: The 1-based attempt of the batch item running on this thread. The batch runtime sets it; a
#: node may read it (``echo``'s ``fail_times`` does) but must never keep a counter of its own.
current_attempt: contextvars.ContextVar[int] = contextvars.ContextVar(
    "pflow_trace_current_attempt", default=1
)

#: A ``patternProperties`` entry for every node type's ``params_schema``. Keys starting with
#: ``__`` are control values the runtime injects (such as ``__attempt__``); allowing them lets
#: strict schemas (``additionalProperties: false``) still catch typos in user-written params.
RUNTIME_KEYS: dict[str, Any] = {"^__": {}}


_cancel_lock = threading.Lock()
_cancel_callbacks: dict[int, Callable[[], None]] = {}


def register_cancel(key: int, callback: Callable[[], None]) -> None:
    """Register how to stop work in flight (a child process) if the run is interrupted.

    Ctrl-C reaches only the main thread; work running on batch worker threads would otherwise
    keep the process alive until it finished. Nodes register a callback while such work runs.
    """
    with _cancel_lock:
        _cancel_callbacks[key] = callback


def unregister_cancel(key: int) -> None:
    with _cancel_lock:
        _cancel_callbacks.pop(key, None)


def cancel_running_work() -> int:
    """Call every registered cancel callback once; returns how many there were."""
    with _cancel_lock:
        callbacks = list(_cancel_callbacks.values())
        _cancel_callbacks.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # cancelling is best effort; the run is already ending
            pass
    return len(callbacks)


class NodeFailure(Exception):
    """A node's work failed. ``outputs`` keeps whatever it produced (stderr, a status code)."""

    def __init__(self, message: str, outputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = dict(outputs or {})


class WorkflowNode(BaseNode):
    """Base class for node types: subclasses set ``type_name`` and implement :meth:`exec`."""

    type_name: ClassVar[str] = ""
    #: JSON Schema for the resolved params; checked before ``exec`` so bad params fail clearly.
    params_schema: ClassVar[dict[str, Any] | None] = None
    #: False for a type that must run in the run's own process (it holds a connection or state
    #: shared with other nodes): ``validate`` then refuses it on the processes and dask executors.
    ships_to_workers: ClassVar[bool] = True

    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node_id = node_id

    def prep(self, shared: Shared) -> dict[str, Any]:
        if self.params_schema is not None:
            from pflow_trace.nodes.params import check_params

            check_params(self.type_name, self.params_schema, self.params)
        return self.params

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"node type '{self.type_name}' does not implement exec")

    def post(self, shared: Shared, prep_result: Any, exec_result: Any) -> str | None:
        outputs: Mapping[str, Any] = exec_result or {}
        for key, value in outputs.items():
            shared[key] = value
        action = outputs.get("__action__") if isinstance(outputs, Mapping) else None
        return action if isinstance(action, str) else None
