"""Executors: where a batch node's items run. Each is a transport, not a second runtime.

- ``threads`` (the default): lanes of the run's own process (:mod:`.threads`); a parallel
  batch of a node type with an async path runs instead on async lanes, tasks on one event
  loop of the run's process (:mod:`.async_lanes`);
- ``processes``: a pool of local worker processes, one per lane (:mod:`.processes`);
- ``dask``: a ``dask.distributed`` cluster, or an in-process ``LocalCluster``
  (:mod:`.dask_cluster`).

Every executor runs each item through the batch's
:class:`~pflow_trace.runtime.item_life.ItemLife` (attempts, waits, span, record) and hands the
outcome to its :class:`~pflow_trace.runtime.item_life.ItemRecords`, so they honour the batch's
semantics the same way (results in item order, ``max_concurrent`` items in flight at most,
retries, ``fail_fast`` and ``continue``, Ctrl-C). The other-process ones share one driver loop
(:mod:`.driver`) and one worker-side runner (:mod:`.job`), so they differ only in how a task
reaches a worker and its reply comes back. :mod:`.executor_set` holds a run's executors.
"""
