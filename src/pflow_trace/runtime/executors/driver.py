"""The driver side of running a batch on other processes: one loop for every such executor.

The loop keeps at most ``max_concurrent`` items in flight (1 for a sequential batch), each on
a numbered *lane* (the same ``worker`` number the threads lanes record), hands tasks to a
:class:`Transport` (the local process pool or a Dask cluster) and turns each reply into the
same facts a thread would have produced: the :class:`ItemOutcome` (the worker's own timing,
which is also its span's), kept by the batch's :class:`ItemRecords`, and the item's spans,
handed to the run's span pipeline. It decides nothing about an item's life itself: that is the
batch's :class:`ItemLife`, here as on every worker.

A worker that dies mid-item is that item's failed attempt: the item is sent again while the
retry policy allows (the next worker starts its span when the first attempt was handed out and
notes the lost one as a retry event); after the last attempt, ``ItemLife`` records the failed
item here, since no worker is left to. An item lost before it could start (what it needed
died with another item's worker) is only sent again: that was no attempt. ``fail_fast``
stops handing out items at the first failure; items already in flight finish and are kept,
as on threads. Ctrl-C (or any error) cancels the work on the workers, then records every
item still out as ``interrupted``, before it propagates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from opentelemetry import trace

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome, WorkerPlace
from pflow_trace.observe.worker_spans import SpanRow, adopt_span_rows
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.executors.job import BatchJob, ItemReply, build_job
from pflow_trace.runtime.item_life import BatchWork, LostAttempt

#: Longest the driver blocks without looking up (a retry may become due meanwhile).
WAIT_SLICE_S = 0.5
#: How often an item lost before it started is sent again before the loss counts as an attempt.
MAX_RESENDS = 3


@dataclass(slots=True)
class ItemTask:
    """One item handed to a lane; ``lost`` holds the attempts that died with their workers."""

    index: int
    item: Any
    lane: int
    #: When the item's first attempt was handed out (driver clock): its span's start on retry.
    first_start_ns: int = 0
    lost: list[LostAttempt] = field(default_factory=list)
    want_resolutions: bool = False
    #: A retry waits for ``retry_wait`` like one on a thread.
    not_before_ns: int = 0
    #: How many times the item was sent again because it was lost before it could start.
    resent: int = 0


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """The task's worker died, or the task or its reply could not travel; ``message`` says which.

    ``final``: not a death but a failure that would recur (an item that cannot be pickled),
    so the item fails without another attempt. ``started`` False: the item was lost before it
    could run (what it needed on the cluster died with another item's worker), so it is sent
    again without counting an attempt, up to :data:`MAX_RESENDS` times.
    """

    message: str
    place: WorkerPlace | None = None
    final: bool = False
    started: bool = True


class Transport(Protocol):
    """How tasks reach workers and replies come back; the driver owns every decision."""

    def begin(self, job: BatchJob, lanes: int) -> None: ...

    def submit(self, task: ItemTask) -> None: ...

    def wait(self, timeout_s: float) -> list[tuple[ItemTask, ItemReply | WorkerLost]]: ...

    def cancel(self) -> None: ...

    def end(self) -> None: ...


def run_on_transport(name: str, transport: Transport, work: BatchWork) -> None:
    """Run every item of ``work`` through ``transport``; the caller's span is the batch span."""
    batch_span = trace.get_current_span()
    batch_span.set_attribute(conv.ATTR_BATCH_EXECUTOR, name)
    if not work.to_run:
        return
    interrupts.raise_pending()  # e.g. Ctrl-C while the cluster started: hand nothing out
    lanes = work.lanes
    job = build_job(work)
    loop = _DriverLoop(work, transport, lanes)
    loop.trace_id = batch_span.get_span_context().trace_id
    transport.begin(job, lanes)
    try:
        loop.run()
    except BaseException:
        transport.cancel()  # Ctrl-C or a bug: nothing may keep running on the workers
        loop.record_cut_short()
        raise
    finally:
        transport.end()


T = TypeVar("T")


def _interruptible(wait: Callable[..., T], *args: Any) -> T:
    """Run a wait where Ctrl-C, SIGTERM and SIGHUP may stop the run at once.

    Everywhere else on the driver a signal is held until the item being recorded is recorded
    (see :mod:`pflow_trace.runtime.interrupts`); waiting for workers is the batch's idle time.
    """
    if not interrupts.on_handler_thread():
        return wait(*args)
    interrupts.enter_interruptible()
    try:
        return wait(*args)
    finally:
        interrupts.leave_interruptible()


class _DriverLoop:
    """The state of one batch on the driver: what waits, what is in flight, what is done."""

    def __init__(self, work: BatchWork, transport: Transport, lanes: int) -> None:
        self.work = work
        self.life = work.life
        self.items = work.items
        self.to_run = work.to_run
        self.records = work.records
        self.stop = work.records.stop
        self.transport = transport
        self.free_lanes = list(range(lanes - 1, -1, -1))  # pop() hands out lane 0 first
        self.next_index = 0
        self.retries: deque[ItemTask] = deque()
        self.in_flight = 0
        #: index -> task of every item handed out whose reply has not come back.
        self.flying: dict[int, ItemTask] = {}
        self.execution = current_execution.get()
        self.trace_id = 0
        self.places: dict[WorkerPlace, WorkerPlace] = {}

    def run(self) -> None:
        count = len(self.to_run)
        while True:
            self._hand_out(count)
            if not self.in_flight:
                if self.stop.is_set() or (self.next_index >= count and not self.retries):
                    self._give_up_retries()
                    return
                _interruptible(self._sleep_until_retry_due)
                continue
            for task, reply in _interruptible(self.transport.wait, self._wait_s()):
                self.in_flight -= 1
                self.flying.pop(task.index, None)
                self.free_lanes.append(task.lane)
                if isinstance(reply, WorkerLost):
                    self._lost(task, reply)
                else:
                    self._record(task, reply)

    def _hand_out(self, count: int) -> None:
        now = time.time_ns()
        while self.free_lanes and not self.stop.is_set():
            if self.retries and self.retries[0].not_before_ns <= now:
                task = self.retries.popleft()
                task.lane = self.free_lanes.pop()
            elif self.next_index < count:
                index = self.to_run[self.next_index]
                self.next_index += 1
                task = ItemTask(index, self.items[index], self.free_lanes.pop(), first_start_ns=now)
            else:
                return
            execution = self.execution
            task.want_resolutions = execution is not None and not execution.template_resolutions
            self.transport.submit(task)
            self.flying[task.index] = task
            self.in_flight += 1

    def _wait_s(self) -> float:
        if not self.retries or not self.free_lanes:
            return WAIT_SLICE_S
        due_s = (self.retries[0].not_before_ns - time.time_ns()) / 1e9
        return min(max(due_s, 0.0), WAIT_SLICE_S)

    def _sleep_until_retry_due(self) -> None:
        if self.retries:
            time.sleep(max(self._wait_s(), 0.001))

    # -- replies -------------------------------------------------------------------------------

    def _record(self, task: ItemTask, reply: ItemReply) -> None:
        index, status, attempts, start_ns, end_ns, error, span_id, result, rows = reply[:9]
        place, res, usage, split, provider_ns = reply[9:]
        if res and self.execution is not None and not self.execution.template_resolutions:
            self.execution.template_resolutions = res
        place = self.places.setdefault(place, place)
        outcome = ItemOutcome(
            index, self.items[index], status, attempts, start_ns, end_ns, task.lane, error,
            span_id, usage, place, None, split, provider_ns,
        )  # fmt: skip
        self._keep(outcome, result, rows)

    def _lost(self, task: ItemTask, lost: WorkerLost) -> None:
        if not lost.started and task.resent < MAX_RESENDS and not self.stop.is_set():
            task.resent += 1  # an innocent bystander of another item's dead worker
            task.not_before_ns = 0
            self.retries.appendleft(task)
            return
        attempt = len(task.lost) + 1
        error = self.life.run.sanitizer.text(lost.message)
        now = time.time_ns()
        task.lost.append((attempt, error, now))
        pause_s = None if lost.final or self.stop.is_set() else self.life.retry_pause_s(attempt)
        if pause_s is not None:
            task.not_before_ns = now + int(pause_s * 1e9)
            self.retries.append(task)
            return
        place = self.places.setdefault(lost.place, lost.place) if lost.place else None
        self._keep(self._lost_with_worker(task, now, place), None, [])

    def _give_up_retries(self) -> None:
        """Items waiting for a retry when ``fail_fast`` stopped the batch: failed as they are."""
        while self.retries:
            task = self.retries.popleft()
            self._keep(self._lost_with_worker(task, task.lost[-1][2], None), None, [])

    def record_cut_short(self) -> None:
        """The run is being stopped (or a bug ended the loop): every item that was handed out
        and has no reply, or waits for a retry, is recorded ``interrupted``. Each was handed
        out, so each started."""
        now = time.time_ns()
        cut_short = [*self.flying.values(), *self.retries]
        self.flying.clear()
        self.retries.clear()
        for task in sorted(cut_short, key=lambda task: task.index):
            outcome = self.life.cut_short_elsewhere(
                task.index, task.item, task.lane, task.first_start_ns, now, task.lost
            )
            self._keep(outcome, None, [])

    def _lost_with_worker(
        self, task: ItemTask, end_ns: int, place: WorkerPlace | None
    ) -> ItemOutcome:
        return self.life.lost_with_worker(
            task.index, task.item, task.lane, task.first_start_ns, end_ns, task.lost, place
        )

    def _keep(self, outcome: ItemOutcome, result: Any, rows: list[SpanRow]) -> None:
        if rows:
            adopt_span_rows(self.life.run.tracer, self.trace_id, rows)
        self.records.keep(outcome, result)
