"""Executors: where a batch node's items run. One per run and name, made when first needed.

- ``threads`` (the default): lanes of the run's own process (:mod:`.threads`);
- ``processes``: a pool of local worker processes, one per lane (:mod:`.processes`);
- ``dask``: a ``dask.distributed`` cluster, or an in-process ``LocalCluster``
  (:mod:`.dask_cluster`).

Every executor honours the batch's semantics the same way (results in item order,
``max_concurrent`` items in flight at most, retries, ``fail_fast`` and ``continue``, Ctrl-C);
the other-process ones share one driver loop (:mod:`.driver`) and one worker-side item runner
(:mod:`.job`), so they differ only in how a task reaches a worker and its reply comes back.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from pflow_trace.ir.validation import EXECUTOR_NAMES
from pflow_trace.runtime.executors.threads import ThreadsExecutor

__all__ = ["EXECUTOR_NAMES", "ExecutorSet", "ItemExecutor"]


class ItemExecutor(Protocol):
    """Runs a batch node's items, recording each outcome as the threads lanes do."""

    name: str

    def run_items(
        self, batch: Any, shared: Any, items: list[Any], outcomes: list[Any], results: list[Any]
    ) -> None: ...

    def close(self) -> None: ...


class ExecutorSet:
    """The run's executors: threads always, the others started on first use, closed at the end.

    ``default`` is the run's choice (``run --executor``) for parallel batches that name none;
    ``scheduler`` is the Dask scheduler's address (None: an in-process ``LocalCluster``).
    """

    def __init__(
        self,
        default: str = "threads",
        scheduler: str | None = None,
        dask_workers: int | None = None,
    ) -> None:
        self.default = default
        self.scheduler = scheduler
        self.dask_workers = dask_workers
        self._threads = ThreadsExecutor()
        self._started: dict[str, ItemExecutor] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ItemExecutor:
        if name == "threads":
            return self._threads
        with self._lock:
            executor = self._started.get(name)
            if executor is None:
                executor = self._started[name] = self._start(name)
            return executor

    def _start(self, name: str) -> ItemExecutor:
        if name == "processes":
            from pflow_trace.runtime.executors.processes import ProcessesExecutor

            return ProcessesExecutor()
        if name == "dask":
            from pflow_trace.runtime.executors.dask_cluster import DaskExecutor

            return DaskExecutor(self.scheduler, self.dask_workers)
        raise ValueError(f"unknown executor {name!r}")

    def close(self) -> None:
        """Stop what this set started (worker processes, a cluster client); idempotent."""
        with self._lock:
            started, self._started = list(self._started.values()), {}
        for executor in started:
            executor.close()
