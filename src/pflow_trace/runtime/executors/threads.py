"""The ``threads`` executor: the batch layer's own lanes in the run's process (the default).

The lanes themselves live in :mod:`pflow_trace.runtime.batch` (``run_parallel`` and
``run_sequential``), next to the per-item code they share with every other executor; this
class only picks between them, so the default path costs one method call per batch.
"""

from __future__ import annotations

from typing import Any


class ThreadsExecutor:
    name = "threads"

    def run_items(
        self, batch: Any, shared: Any, items: list[Any], outcomes: list[Any], results: list[Any]
    ) -> None:
        if batch.config.parallel and len(items) > 1:
            batch.run_parallel(shared, items, outcomes, results)
        else:
            batch.run_sequential(shared, items, outcomes, results)

    def close(self) -> None:
        return None
