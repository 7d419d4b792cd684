"""A Dask worker that cancelled one batch runs the next one's commands.

A cancel leaves the worker process cancelling every command as it registers, so that an item
of the cancelled batch that was just starting its command leaves none behind. A worker of an
external cluster outlives the run: once none of the cancelled batch's items is running, an item
of another batch must start its command as usual. These tests drive the worker-side
bookkeeping directly (no cluster), in the order a worker sees it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pflow_trace.nodes import base
from pflow_trace.runtime.executors import dask_cluster


@pytest.fixture(autouse=True)
def _clean_worker_state() -> Iterator[None]:
    yield
    dask_cluster._running.clear()
    dask_cluster._cancelled_jobs.clear()
    base.reset_cancellation()


def starts_at_once() -> bool:
    """Whether a command registered now runs (True) or is cancelled as it registers."""
    stopped: list[bool] = []
    base.register_cancel(-1, lambda: stopped.append(True))
    base.unregister_cancel(-1)
    return not stopped


def test_the_next_batch_s_item_lifts_the_cancel_once_the_cancelled_items_are_gone() -> None:
    assert dask_cluster._register("run-1", 101)
    assert dask_cluster.interrupt_job("run-1") == 1  # the item was running: commands stop
    assert not starts_at_once()
    # The cancelled item is still running: a new batch's item does not lift the cancel yet.
    assert dask_cluster._register("run-2", 102)
    assert not starts_at_once()
    del dask_cluster._running[101], dask_cluster._running[102]
    # Nothing of the cancelled batch is left: the next item's command starts.
    assert dask_cluster._register("run-2", 103)
    assert starts_at_once()


def test_an_item_of_the_cancelled_batch_is_refused_and_lifts_nothing() -> None:
    assert dask_cluster._register("run-1", 101)
    dask_cluster.interrupt_job("run-1")
    del dask_cluster._running[101]
    assert not dask_cluster._register("run-1", 104)
    assert not starts_at_once()
