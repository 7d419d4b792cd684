"""The ``dask`` executor: items run as tasks on a ``dask.distributed`` cluster.

The run connects to ``--scheduler`` (``tcp://host:8786``) or, without one, starts an in-process
``LocalCluster`` of worker processes, and closes what it started when it ends. A batch's job is
scattered to every worker once; each item is then one task, at most ``max_concurrent`` of them
submitted at a time (the driver loop in :mod:`.driver`). On a worker, a thread keeps one
:class:`~.job.ItemRunner` per job, and the item's spans come back in its reply.

Dask re-runs a task whose worker died up to ``distributed.scheduler.allowed-failures`` times
before reporting ``KilledWorker``; the ``LocalCluster`` started here sets that to 0, so a death
is reported at once and retried by the batch's own ``max_retries`` (see docs/distributed.md for
an external scheduler). Ctrl-C cancels the batch's tasks and interrupts items already running
on the workers (an exception raised in their thread, and their child processes stopped), so
nothing of the run keeps running on the cluster.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
import uuid
from collections import deque
from typing import Any

from pflow_trace.nodes.base import NodeFailure, cancel_running_work, reset_cancellation
from pflow_trace.runtime.executors.dask_start import start_local_cluster
from pflow_trace.runtime.executors.driver import ItemTask, WorkerLost, run_on_transport
from pflow_trace.runtime.executors.job import BatchJob, ItemReply, ItemRunner, this_place
from pflow_trace.runtime.item_life import BatchWork, LostAttempt

#: How long connecting to a scheduler may take before the node fails.
CONNECT_TIMEOUT_S = 10
#: How long a cancelled item gets to end with its stopped command before its thread is
#: interrupted.
CANCEL_GRACE_S = 0.5
#: How often the driver may ask the scheduler for its workers while tasks wait for a thread.
REFRESH_S = 0.25


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise NodeFailure(
            "the dask executor needs dask.distributed: pip install 'pflow-trace[dask]'"
        ) from None
    return distributed


class DaskExecutor:
    """A client of one cluster for the whole run; the cluster too when the run started it."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.client: Any = None
        self.cluster: Any = None

    def connect(self) -> Any:
        if self.client is not None:
            return self.client
        distributed = _import_distributed()
        if self.scheduler:
            try:
                self.client = distributed.Client(
                    self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise NodeFailure(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {exc}"
                ) from None
            return self.client
        self.cluster = start_local_cluster(self.workers or os.cpu_count() or 1)
        self.client = distributed.Client(self.cluster, set_as_default=False)
        return self.client

    def run_items(self, work: BatchWork) -> None:
        run_on_transport(self.name, _DaskTransport(self.connect()), work)

    def close(self) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


class _Placement:
    """Which worker runs the next task: one task per worker thread at a time.

    Left to itself the scheduler queues a task or two behind the one a worker is running, and
    a worker that dies fails every task it holds (``KilledWorker``), so one item that kills
    its worker would fail the items merely queued there. Tasks are sent to a worker with a
    free thread (loosely: should it be gone, the scheduler picks another), and the rest wait
    here; a death then takes only the items that were running on it.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        #: address -> threads of every worker known alive; address -> tasks placed there.
        #: (With no worker known, tasks wait, as Dask's own would for a worker to join.)
        self.threads: dict[str, int] = {}
        self.placed: dict[str, int] = {}
        self.refreshed_at = 0.0

    def refresh(self) -> None:
        """Learn the cluster's workers again (a dead one's replacement has a new address)."""
        if time.monotonic() - self.refreshed_at < REFRESH_S:
            return
        self.refreshed_at = time.monotonic()
        try:
            self.threads = {str(address): n for address, n in self.client.nthreads().items()}
        except Exception:  # the next refresh tries again; tasks wait meanwhile
            pass

    def take(self) -> str | None:
        """A worker with a free thread, now counted busy; None when every thread is busy."""
        free, address = max(
            ((n - self.placed.get(address, 0), address) for address, n in self.threads.items()),
            default=(0, None),
        )
        if address is None or free <= 0:
            return None
        self.placed[address] = self.placed.get(address, 0) + 1
        return address

    def release(self, address: str) -> None:
        if self.placed.get(address, 0) > 0:
            self.placed[address] -= 1

    def died(self, address: str) -> None:
        self.threads.pop(address, None)


class _DaskTransport:
    """One batch's tasks on the cluster."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.distributed = _import_distributed()
        #: future -> (task, the worker it was placed on) of every task sent and not answered.
        self.futures: dict[Any, tuple[ItemTask, str]] = {}
        #: Tasks handed out by the driver that wait for a free worker thread.
        self.waiting: deque[ItemTask] = deque()
        self.placement = _Placement(client)
        #: (future, reply, error) of finished tasks, put there by the client's event loop.
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.job: BatchJob | None = None
        self.job_future: Any = None
        self.key_prefix = ""
        self.sent = 0

    def begin(self, job: BatchJob, lanes: int) -> None:
        self.job = job
        self._send_job()
        self.key_prefix = f"pflow-{job.node_id}-{uuid.uuid4().hex[:8]}"
        self.placement.refresh()

    def _send_job(self) -> None:
        """Put the job on every worker; again when a death took its last copy with it."""
        try:
            self.job_future = self.client.scatter(self.job, broadcast=True, hash=False)
        except Exception as exc:
            raise NodeFailure(f"the batch cannot be sent to the Dask cluster: {exc}") from None

    def submit(self, task: ItemTask) -> None:
        self.waiting.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting:
            address = self.placement.take()
            if address is None:
                return  # every thread is busy: a reply (or a new worker) frees one
            if self.job_future.status != "finished":
                self._send_job()
            task = self.waiting.popleft()
            self.sent += 1
            future = self.client.submit(
                run_dask_item,
                self.job_future,
                task.index,
                task.item,
                task.lane,
                tuple(task.lost),
                task.first_start_ns if task.lost else 0,
                task.want_resolutions,
                key=f"{self.key_prefix}-{task.index}-{self.sent}",
                pure=False,
                workers=[address],
                allow_other_workers=True,
            )
            self.futures[future] = (task, address)
            self.client.loop.add_callback(self._fetch, future)

    async def _fetch(self, future: Any) -> None:
        """On the client's event loop: wait for the task and fetch its reply as soon as it is
        done, so fetches overlap each other and the driver never waits for one in turn."""
        try:
            reply = await self.client.gather(future, asynchronous=True)
        except BaseException as exc:  # the task's error, KilledWorker, or a cancellation
            self.finished.put((future, None, exc))
        else:
            self.finished.put((future, reply, None))

    def wait(self, timeout_s: float) -> list[tuple[ItemTask, ItemReply | WorkerLost]]:
        self._dispatch()
        try:
            done = [self.finished.get(timeout=min(timeout_s, REFRESH_S))]
        except queue.Empty:
            if self.waiting:  # perhaps a dead worker's replacement has come up
                self.placement.refresh()
                self._dispatch()
            return []
        while not self.finished.empty():
            done.append(self.finished.get_nowait())
        replies: list[tuple[ItemTask, ItemReply | WorkerLost]] = []
        for future, reply, exc in done:
            entry = self.futures.pop(future, None)
            if entry is not None:  # not one this batch cancelled meanwhile
                task, address = entry
                self.placement.release(address)
                replies.append((task, self._reply(reply, exc)))
        return replies

    def _reply(self, reply: ItemReply | None, exc: BaseException | None) -> ItemReply | WorkerLost:
        if exc is None:
            if reply is not None:
                return reply
            return WorkerLost("the item was cancelled on its worker", final=True)
        if isinstance(exc, self.distributed.KilledWorker):
            self.placement.died(exc.last_worker.address)
            return WorkerLost(f"the Dask worker running the item died ({exc})")
        if isinstance(exc, WorkerItemError):
            return WorkerLost(str(exc), final=True)
        message = f"the item's task failed on the cluster: {type(exc).__name__}: {exc}"
        # The job's last copy died with another item's worker: this one never started.
        return WorkerLost(message, started=self.job_future.status == "finished")

    def cancel(self) -> None:
        futures, self.futures = list(self.futures), {}
        self.waiting.clear()
        if self.job is None:
            return
        try:
            self.client.cancel(futures, force=True)
            self.client.run(interrupt_job, self.job.job_id, wait=True)
        except Exception:  # the run is ending either way; a broken connection must not hide it
            pass

    def end(self) -> None:
        futures, self.futures = list(self.futures), {}
        self.waiting.clear()
        try:
            self.client.cancel([*futures, self.job_future])
        except Exception:
            pass


# -- the worker side -------------------------------------------------------------------------


class JobCancelled(BaseException):
    """Raised inside an item's thread on a worker when its run cancelled the batch."""


class WorkerItemError(Exception):
    """A runtime failure on a worker, already one redacted line (Dask logs the task's error)."""


_state_lock = threading.Lock()
#: thread ident -> job id of the item running on that thread (on this worker process).
_running: dict[int, str] = {}
_cancelled_jobs: set[str] = set()
_runners = threading.local()
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


def _runner(job: BatchJob) -> ItemRunner:
    """This thread's runner for ``job`` (the last job's is kept; batches come one by one)."""
    runner: ItemRunner | None = getattr(_runners, "runner", None)
    if runner is None or runner.job.job_id != job.job_id:
        from distributed import get_worker

        runner = ItemRunner(job, this_place(get_worker().address))
        _runners.runner = runner
    return runner


def run_dask_item(
    job: BatchJob,
    index: int,
    item: Any,
    lane: int,
    lost: tuple[LostAttempt, ...],
    first_start_ns: int,
    want: bool,
) -> ItemReply | None:
    """The task: run one item on this worker; None when its batch was cancelled.

    The item is refused or registered as running in one step, before anything else: a cancel
    that lands while the worker is still setting up (building the node's chain for a new job)
    finds the item and interrupts it, instead of missing it and letting its command start.
    """
    ident = threading.get_ident()
    if not _register(job.job_id, ident):
        return None
    try:
        try:
            runner = _runner(job)
            try:
                return runner.run(index, item, lane, lost, first_start_ns, want)
            except JobCancelled:
                raise
            except BaseException as exc:  # a bug: one redacted line, not a traceback log
                raise WorkerItemError(runner.describe(exc)) from None
        finally:
            with _state_lock:
                del _running[ident]
                # A cancel that came as the item ended must not fire in Dask's own code.
                _set_async_exc(ident, ctypes.py_object())
    except JobCancelled:
        return None


def _register(job_id: str, ident: int) -> bool:
    """Mark ``ident`` as running an item of ``job_id``; False when that batch was cancelled.

    A cancel leaves this worker cancelling every command as it starts (``cancel_running_work``)
    so that none of the cancelled batch's items leaves one behind. Once none of them is still
    running, the first item of a batch that was not cancelled lifts that: a worker of an
    external cluster outlives the run, and a later run's commands must start.
    """
    with _state_lock:
        if job_id in _cancelled_jobs:
            return False
        if not any(running in _cancelled_jobs for running in _running.values()):
            reset_cancellation()
        _running[ident] = job_id
        return True


def interrupt_job(job_id: str) -> int:
    """Cancel a batch on this worker: refuse its queued items, interrupt its running ones.

    Commands first: every child process an item registered is stopped, and any it registers
    from now on is stopped as it registers, so an item waiting for its command ends on its
    own. Only an item still running after :data:`CANCEL_GRACE_S` (pure Python work) gets an
    exception raised in its thread: raised at once, it could land inside ``subprocess.Popen``
    after the command started and before it was registered, leaving the command running.
    """
    with _state_lock:
        _cancelled_jobs.add(job_id)
        threads = [ident for ident, running in _running.items() if running == job_id]
    if not threads:
        return 0
    cancel_running_work()
    deadline = time.monotonic() + CANCEL_GRACE_S
    while time.monotonic() < deadline and _still_running(threads):
        time.sleep(0.01)
    with _state_lock:
        for ident in threads:
            if _running.get(ident) == job_id:
                _set_async_exc(ident, ctypes.py_object(JobCancelled))
    return len(threads)


def _still_running(threads: list[int]) -> bool:
    with _state_lock:
        return any(ident in _running for ident in threads)


def running_items() -> int:
    """How many items of any run are running on this worker (tests and diagnostics)."""
    with _state_lock:
        return len(_running)
