"""Starting the run's own Dask ``LocalCluster``: loopback only, and a wait a signal can stop.

Starting a cluster takes a second on a quiet machine and many under load. Dask starts it from
the calling thread, blocked in one long wait for its event loop; a signal the kernel hands
to another of the process's threads (any may take it) does not end that wait, so Ctrl-C used
to land only once the cluster was up. Here the start runs on a thread of its own and the
run's thread waits for it in short slices inside an interruptible region
(:mod:`pflow_trace.runtime.interrupts`): a signal stops the run at once. The start it leaves
behind is given up: no item was handed to it. Once the trace is written and the process
exits, the start gets up to :data:`GIVE_UP_WAIT_S` to finish (a worker process halfway through
being spawned would otherwise print a traceback) and is left to die with the process: its
worker processes are daemons of this one, and Dask's own exit hook, which would try to close
a half-started cluster and print tracebacks, is told to leave it alone.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from pflow_trace.runtime import interrupts

#: The only interface a cluster started here listens on.
LOOPBACK = "127.0.0.1"
#: How long the waiting thread blocks at a time (a signal is acted on within this).
WAIT_SLICE_S = 0.05
#: How long an exiting run waits for a start it gave up on (then leaves it to die with it).
GIVE_UP_WAIT_S = 0.5
#: How long a spawn already under way gets to hand its data to the new process.
LOOP_STOP_S = 0.1


def start_local_cluster(workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` one-thread worker processes, reachable from this host only.

    Every socket it opens (scheduler, nannies, workers and the scheduler's HTTP endpoint, which
    Dask binds to all interfaces unless told otherwise) listens on 127.0.0.1; a worker's death
    is reported at once (``allowed-failures`` 0) so the batch's own retries decide what follows.
    """
    start = _ClusterStart(workers)
    if not interrupts.on_handler_thread():
        return start.result()
    interrupts.enter_interruptible()
    try:
        return start.result()
    except BaseException:
        start.give_up()
        raise
    finally:
        interrupts.leave_interruptible()


class _ClusterStart:
    """One cluster being started on a thread of its own."""

    def __init__(self, workers: int) -> None:
        import distributed

        # Made here, started there: giving up needs the object before its start returns.
        self.cluster = distributed.LocalCluster.__new__(distributed.LocalCluster)
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._start, args=(workers,), name="pflow-dask-start", daemon=True
        )
        self.thread.start()

    def _start(self, workers: int) -> None:
        import dask

        try:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster.__init__(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host=LOOPBACK,
                    dashboard_address=f"{LOOPBACK}:0",
                    silence_logs=logging.CRITICAL,  # our one-line errors, not Dask's log lines
                )
        except BaseException as exc:
            self.error = exc

    def result(self) -> Any:
        while self.thread.is_alive():
            self.thread.join(WAIT_SLICE_S)
        if self.error is not None:
            raise self.error
        return self.cluster

    def give_up(self) -> None:
        """Nothing will use the cluster: as the process exits (its trace written), give the
        start a moment to finish, then leave it to die with the process."""
        self.cluster.shutdown_on_close = False
        atexit.register(self._at_exit)  # runs before Dask's and multiprocessing's exit hooks

    def _at_exit(self) -> None:
        # A worker process still being spawned reads its start-up data from this process; let
        # it finish, or it prints a traceback once this process's semaphores are gone.
        self.thread.join(GIVE_UP_WAIT_S)
        self.cluster.shutdown_on_close = False  # set again: a start that got far resets it
        # Stop Dask's event loop, so no nanny spawns or restarts a worker process while this
        # one exits (a child left without its start-up data prints a traceback).
        loop = getattr(self.cluster, "loop", None)
        if loop is not None:
            loop.add_callback(loop.stop)
            time.sleep(LOOP_STOP_S)
