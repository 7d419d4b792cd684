"""The ``processes`` executor: one local worker process per lane, for CPU-bound items.

Each lane is a process with a pipe to the driver, so a reply (or the end of the pipe when the
process dies) always belongs to the one item that lane was running: a worker killed mid-item
is exactly that item's failed attempt, and the lane gets a fresh process. Lanes live for the
whole run and are reused by every batch that runs on processes; a batch's job is sent once per
lane. Processes start from a fork server that has already imported the runtime (spawn where
there is none), so a new lane costs a fork, not an interpreter start-up. They ignore SIGINT:
the driver decides what a Ctrl-C stops, and kills them.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from multiprocessing.connection import Connection, wait
from typing import Any

from pflow_trace.nodes.base import NodeFailure, cancel_running_work
from pflow_trace.observe.facts import WorkerPlace
from pflow_trace.runtime.executors.driver import ItemTask, WorkerLost, run_on_transport
from pflow_trace.runtime.executors.job import BatchJob, ItemReply, ItemRunner, this_place
from pflow_trace.runtime.item_life import BatchWork

#: How long a closing lane may take to exit before it is killed.
STOP_GRACE_S = 2.0
#: How long a worker asked to stop gets to stop its own children first.
CHILDREN_GRACE_S = 1.0


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _stop_with_children(signal_number: int, frame: Any) -> None:
    """SIGTERM from the driver: stop this worker's own children first (a ``shell`` item's
    command runs in a session of its own, so killing the worker alone would orphan it)."""
    cancel_running_work()
    os._exit(128 + signal_number)


def _lane_main(conn: Connection) -> None:
    """A worker process: install jobs, run items, reply; until told to stop or the pipe ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_with_children)
    place = this_place()
    runner: ItemRunner | None = None
    job_error = "the batch's job never reached this worker"
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            message = pickle.loads(data)
        except Exception as exc:  # e.g. a node class this worker cannot import
            runner, job_error = None, f"the worker could not load the batch's job: {exc}"
            continue
        kind = message[0]
        if kind == "stop":
            return
        if kind == "job":
            try:
                runner = ItemRunner(message[1], place)
            except Exception as exc:
                runner, job_error = None, f"the worker could not set up the node: {exc}"
            continue
        _, job_id, index, item, lane, lost, first_start_ns, want = message
        if runner is None or runner.job.job_id != job_id:
            conn.send(("error", job_error))
            continue
        try:
            reply = runner.run(index, item, lane, lost, first_start_ns, want)
        except BaseException as exc:  # a bug, never a traceback with the item's data
            conn.send(("error", runner.describe(exc)))
            continue
        try:
            conn.send(("reply", reply))
        except Exception as exc:  # pickling the result failed before anything was written
            conn.send(("error", f"the item's result cannot be sent back: {exc}"))


class _Lane:
    __slots__ = ("conn", "job_id", "process", "task")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.job_id: str | None = None
        self.task: ItemTask | None = None

    def death(self) -> str:
        """Why the lane's process ended, as one line."""
        self.process.join(STOP_GRACE_S)
        code = self.process.exitcode
        pid = self.process.pid
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return f"worker process {pid} died ({how})"

    def kill(self) -> None:
        """Ask the worker to stop with its children (SIGTERM), then make sure it has."""
        try:
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(CHILDREN_GRACE_S)
            self.process.kill()
            self.process.join(STOP_GRACE_S)
        finally:
            self.conn.close()


class ProcessesExecutor:
    """Lanes of local worker processes, started on demand and kept for the run."""

    name = "processes"

    def __init__(self) -> None:
        self.context = _context()
        self.lanes: list[_Lane | None] = []

    def run_items(self, work: BatchWork) -> None:
        run_on_transport(self.name, _PoolTransport(self), work)

    def lane(self, number: int) -> _Lane:
        """Lane ``number``'s process, started (again) if it is not running."""
        while len(self.lanes) <= number:
            self.lanes.append(None)
        lane = self.lanes[number]
        if lane is None or not lane.process.is_alive():
            if lane is not None:
                lane.kill()
            ours, theirs = self.context.Pipe()
            process = self.context.Process(
                target=_lane_main, args=(theirs,), name=f"pflow-lane-{number}", daemon=True
            )
            process.start()
            theirs.close()
            lane = self.lanes[number] = _Lane(process, ours)
        return lane

    def kill_all(self) -> None:
        lanes, self.lanes = self.lanes, []
        for lane in lanes:
            if lane is not None:
                lane.kill()

    def close(self) -> None:
        lanes, self.lanes = self.lanes, []
        for lane in lanes:
            if lane is None:
                continue
            try:
                lane.conn.send_bytes(pickle.dumps(("stop",)))
            except OSError:
                pass
            lane.process.join(STOP_GRACE_S)
            lane.kill()


class _PoolTransport:
    """One batch's traffic over the executor's lanes."""

    def __init__(self, executor: ProcessesExecutor) -> None:
        self.executor = executor
        self.job: BatchJob | None = None
        self.job_bytes = b""
        self.busy: dict[int, _Lane] = {}
        self.ready: list[tuple[ItemTask, ItemReply | WorkerLost]] = []

    def begin(self, job: BatchJob, lanes: int) -> None:
        try:
            self.job_bytes = pickle.dumps(("job", job), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise NodeFailure(f"the batch cannot be sent to worker processes: {exc}") from None
        self.job = job

    def submit(self, task: ItemTask) -> None:
        assert self.job is not None
        job = self.job
        message = ("item", job.job_id, task.index, task.item, task.lane, tuple(task.lost),
                   task.first_start_ns if task.lost else 0, task.want_resolutions)  # fmt: skip
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            lost = WorkerLost(f"the item cannot be sent to a worker process: {exc}", final=True)
            self.ready.append((task, lost))
            return
        for _ in range(2):  # a lane that died between items is restarted once
            lane = self.executor.lane(task.lane)
            try:
                if lane.job_id != job.job_id:
                    lane.conn.send_bytes(self.job_bytes)
                    lane.job_id = job.job_id
                lane.conn.send_bytes(data)
            except OSError:
                lane.kill()
                continue
            lane.task = task
            self.busy[task.lane] = lane
            return
        self.ready.append((task, WorkerLost("no worker process could be started", final=True)))

    def wait(self, timeout_s: float) -> list[tuple[ItemTask, ItemReply | WorkerLost]]:
        if self.ready:
            done, self.ready = self.ready, []
            return done
        watched: list[Any] = [lane.conn for lane in self.busy.values()]
        watched += [lane.process.sentinel for lane in self.busy.values()]
        ready = set(wait(watched, timeout_s))
        done: list[tuple[ItemTask, ItemReply | WorkerLost]] = []
        for number, lane in list(self.busy.items()):
            if lane.conn not in ready and lane.process.sentinel not in ready:
                continue
            task = lane.task
            assert task is not None
            outcome = self._reply(lane)
            if outcome is None:  # the process ended but its last reply may still be readable
                continue
            lane.task = None
            del self.busy[number]
            done.append((task, outcome))
        return done

    def _reply(self, lane: _Lane) -> ItemReply | WorkerLost | None:
        try:
            if not lane.conn.poll():
                if lane.process.is_alive():
                    return None
                raise EOFError
            kind, payload = lane.conn.recv()
        except (EOFError, OSError):
            message = lane.death()
            lane.kill()
            return WorkerLost(message, WorkerPlace(this_place().host, lane.process.pid or 0))
        if kind == "reply":
            return payload  # type: ignore[no-any-return]
        return WorkerLost(payload, final=True)

    def cancel(self) -> None:
        self.executor.kill_all()
        self.busy.clear()

    def end(self) -> None:
        self.ready.clear()
