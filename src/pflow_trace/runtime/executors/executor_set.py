"""A run's executors: threads always, the others (async lanes, processes, Dask) started on first
use and closed at the end; which one a batch runs on (:meth:`ExecutorSet.for_batch`)."""

from __future__ import annotations

import threading

from pflow_trace.runtime.executors.threads import ThreadsExecutor
from pflow_trace.runtime.item_life import ItemExecutor


class ExecutorSet:
    """The run's executors: threads always, the others started on first use, closed at the end.

    ``default`` is the run's choice (``run --executor``) for parallel batches that name none;
    ``scheduler`` is the Dask scheduler's address (None: an in-process ``LocalCluster``);
    ``async_lanes`` False keeps every batch of this process on threads (async lanes are
    otherwise chosen for node types with an async path, :meth:`for_batch`).
    """

    def __init__(
        self,
        default: str = "threads",
        scheduler: str | None = None,
        dask_workers: int | None = None,
        async_lanes: bool = True,
    ) -> None:
        self.default = default
        self.scheduler = scheduler
        self.dask_workers = dask_workers
        self.async_lanes = async_lanes
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

    def for_batch(self, name: str, parallel: bool, async_path: bool) -> ItemExecutor:
        """Where a batch's items run: the executor it names, except that a parallel batch in
        this process whose node type has an async path runs on async lanes."""
        if name == "threads" and parallel and async_path and self.async_lanes:
            return self.get("async")
        return self.get(name)

    def _start(self, name: str) -> ItemExecutor:
        if name == "processes":
            from pflow_trace.runtime.executors.processes import ProcessesExecutor

            return ProcessesExecutor()
        if name == "async":
            from pflow_trace.runtime.executors.async_lanes import AsyncLanesExecutor

            return AsyncLanesExecutor()
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
