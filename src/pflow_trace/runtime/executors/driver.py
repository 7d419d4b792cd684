"""The driver side of running a batch on other processes: one loop for every such executor.

The loop keeps at most ``max_concurrent`` items in flight (1 for a sequential batch), each on
a numbered *lane* (the same ``worker`` number the threads lanes record), hands tasks to a
:class:`Transport` (the local process pool or a Dask cluster) and turns each reply into the
same facts a thread would have produced: the :class:`ItemOutcome` (the worker's own timing,
which is also its span's), the result in item order, the observer's ``item_finished``, and
the item's spans, handed to the run's span pipeline.

A worker that dies mid-item is that item's failed attempt: the item is sent again while
attempts remain (its span then starts when the first attempt was handed out and carries a
retry event for the lost one); on the last attempt the driver itself records the failed item
span, since no worker is left to. ``fail_fast`` stops handing out items at the first failure;
items already in flight finish and are kept, as on threads. Ctrl-C (or any error) cancels the
work on the workers, then records every item still out as ``interrupted`` (its span made here),
before it propagates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome, WorkerPlace
from pflow_trace.observe.worker_spans import SpanRow, adopt_span_rows
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.batch_lanes import INTERRUPTED
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.executors.job import BatchJob, ItemReply, build_job

#: Longest the driver blocks without looking up (a retry may become due meanwhile).
WAIT_SLICE_S = 0.5


@dataclass(slots=True)
class ItemTask:
    """One item handed to a lane; ``attempt_offset`` attempts were lost to dead workers."""

    index: int
    item: Any
    lane: int
    attempt_offset: int = 0
    #: When the item's first attempt was handed out (driver clock): its span's start on retry.
    first_start_ns: int = 0
    #: (attempt, error, time ns) of each attempt lost with its worker.
    lost: list[tuple[int, str, int]] = field(default_factory=list)
    want_resolutions: bool = False
    #: A retry waits for ``retry_wait`` like one on a thread.
    not_before_ns: int = 0


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """The task's worker died, or the task or its reply could not travel; ``message`` says which.

    ``final``: not a death but a failure that would recur (an item that cannot be pickled),
    so the item fails without another attempt.
    """

    message: str
    place: WorkerPlace | None = None
    final: bool = False


class Transport(Protocol):
    """How tasks reach workers and replies come back; the driver owns every decision."""

    def begin(self, job: BatchJob, lanes: int) -> None: ...

    def submit(self, task: ItemTask) -> None: ...

    def wait(self, timeout_s: float) -> list[tuple[ItemTask, ItemReply | WorkerLost]]: ...

    def cancel(self) -> None: ...

    def end(self) -> None: ...


def run_on_transport(
    name: str,
    transport: Transport,
    batch: Any,
    shared: Any,
    items: list[Any],
    outcomes: list[ItemOutcome],
    results: list[Any],
) -> None:
    """Run every item of ``batch`` through ``transport``; the caller's span is the batch span."""
    batch_span = trace.get_current_span()
    batch_span.set_attribute(conv.ATTR_BATCH_EXECUTOR, name)
    if not items:
        return
    config = batch.config
    lanes = min(config.max_concurrent if config.parallel else 1, len(items))
    job = build_job(batch, shared)
    loop = _DriverLoop(batch, items, outcomes, results, transport, lanes)
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

    def __init__(
        self,
        batch: Any,
        items: list[Any],
        outcomes: list[ItemOutcome],
        results: list[Any],
        transport: Transport,
        lanes: int,
    ) -> None:
        self.batch = batch
        self.items = items
        self.outcomes = outcomes
        self.results = results
        self.transport = transport
        self.free_lanes = list(range(lanes - 1, -1, -1))  # pop() hands out lane 0 first
        self.next_index = 0
        self.retries: deque[ItemTask] = deque()
        self.in_flight = 0
        #: index -> task of every item handed out whose reply has not come back.
        self.flying: dict[int, ItemTask] = {}
        self.stop = False
        self.stop_on_error = batch.config.error_handling == "fail_fast"
        self.execution = current_execution.get()
        self.trace_id = 0
        self.places: dict[WorkerPlace, WorkerPlace] = {}

    def run(self) -> None:
        count = len(self.items)
        while True:
            self._hand_out(count)
            if not self.in_flight:
                if self.stop or (self.next_index >= count and not self.retries):
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
        while self.free_lanes and not self.stop:
            if self.retries and self.retries[0].not_before_ns <= now:
                task = self.retries.popleft()
                task.lane = self.free_lanes.pop()
            elif self.next_index < count:
                index = self.next_index
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
        place, res, usage = reply[9:]
        if task.lost:
            attempts += task.attempt_offset
            start_ns = task.first_start_ns
            rows = _with_lost_attempts(rows, span_id, task, attempts)
        if res and self.execution is not None and not self.execution.template_resolutions:
            self.execution.template_resolutions = res
        place = self.places.setdefault(place, place)
        outcome = ItemOutcome(
            index, self.items[index], status, attempts, start_ns, end_ns, task.lane, error,
            span_id, usage, place,
        )  # fmt: skip
        self._keep(outcome, result, rows)

    def _lost(self, task: ItemTask, lost: WorkerLost) -> None:
        attempt = task.attempt_offset + 1
        error = self.batch.run_context.sanitizer.text(lost.message)
        now = time.time_ns()
        task.lost.append((attempt, error, now))
        config = self.batch.config
        if attempt < config.max_retries and not self.stop and not lost.final:
            task.attempt_offset = attempt
            task.not_before_ns = now + int(config.retry_wait * 1e9)
            self.retries.append(task)
            return
        span_id = self._driver_item_span(task, attempt, error, now, lost.place)
        place = self.places.setdefault(lost.place, lost.place) if lost.place else None
        outcome = ItemOutcome(
            task.index, task.item, "failed", attempt, task.first_start_ns, now, task.lane, error,
            span_id, place=place,
        )  # fmt: skip
        self._keep(outcome, None, [])

    def _give_up_retries(self) -> None:
        """Items waiting for a retry when ``fail_fast`` stopped the batch: failed as they are."""
        while self.retries:
            task = self.retries.popleft()
            attempt, error, at_ns = task.lost[-1]
            span_id = self._driver_item_span(task, attempt, error, at_ns, None)
            outcome = ItemOutcome(
                task.index, task.item, "failed", attempt, task.first_start_ns, at_ns, task.lane,
                error, span_id,
            )  # fmt: skip
            self._keep(outcome, None, [])

    def record_cut_short(self) -> None:
        """The run is being stopped (or a bug ended the loop): every item that was handed out
        and has no reply, or waits for a retry, is recorded ``interrupted``, its span made
        here, as the threads lanes do for theirs. Each was handed out, so each started."""
        now = time.time_ns()
        cut_short = [*self.flying.values(), *self.retries]
        self.flying.clear()
        self.retries.clear()
        for task in sorted(cut_short, key=lambda task: task.index):
            attempt = task.attempt_offset + 1
            span_id = self._driver_item_span(task, attempt, INTERRUPTED, now, None, task.lost)
            outcome = ItemOutcome(
                task.index, task.item, "interrupted", attempt, task.first_start_ns, now,
                task.lane, INTERRUPTED, span_id,
            )  # fmt: skip
            self._keep(outcome, None, [])

    def _keep(self, outcome: ItemOutcome, result: Any, rows: list[SpanRow]) -> None:
        if rows:
            adopt_span_rows(self.batch.run_context.tracer, self.trace_id, rows)
        if outcome.status == "success":
            self.results[outcome.index] = result
        elif self.stop_on_error:
            self.stop = True
        self.outcomes.append(outcome)
        self.batch.notify(outcome, len(self.items))

    def _driver_item_span(
        self,
        task: ItemTask,
        attempts: int,
        error: str,
        end_ns: int,
        place: WorkerPlace | None,
        earlier: list[tuple[int, str, int]] | None = None,
    ) -> int:
        """The item's span when no worker will send one (made here): its last attempt died
        with its worker, or the run stopped while it ran. ``earlier``: the lost attempts to
        note as retry events (by default all but the last, the one that ``error`` ends)."""
        batch = self.batch
        run = batch.run_context
        attributes = dict(batch.item_base_attributes)
        attributes[conv.ATTR_BATCH_INDEX] = task.index
        attributes[conv.ATTR_BATCH_WORKER] = task.lane
        attributes[conv.ATTR_BATCH_ATTEMPTS] = attempts
        if place is not None:
            attributes[conv.ATTR_BATCH_HOST] = place.host
            attributes[conv.ATTR_BATCH_PID] = place.pid
            if place.address is not None:
                attributes[conv.ATTR_BATCH_WORKER_ADDRESS] = place.address
        if run.recording:
            attributes[conv.ATTR_BATCH_ITEM_PREVIEW] = run.sanitizer.preview(task.item)
        span = run.tracer.start_span(
            batch.item_span_name, attributes=attributes, start_time=task.first_start_ns
        )
        for attempt, message, at_ns in task.lost[:-1] if earlier is None else earlier:
            span.add_event(
                conv.EVENT_RETRY,
                {conv.ATTR_RETRY_ATTEMPT: attempt, conv.ATTR_RETRY_ERROR: message},
                timestamp=at_ns,
            )
        span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end_ns)
        return span.get_span_context().span_id


def _with_lost_attempts(
    rows: list[SpanRow], span_id: int, task: ItemTask, attempts: int
) -> list[SpanRow]:
    """The item span of a retried item: started with its first attempt, lost attempts noted."""
    patched = []
    for row in rows:
        if row[1] == span_id:
            name, sid, parent, _start, end, code, message, attributes, events = row
            attributes[conv.ATTR_BATCH_ATTEMPTS] = attempts
            lost_events = tuple(
                (conv.EVENT_RETRY, at_ns, {conv.ATTR_RETRY_ATTEMPT: n, conv.ATTR_RETRY_ERROR: m})
                for n, m, at_ns in task.lost
            )
            row = (name, sid, parent, task.first_start_ns, end, code, message, attributes,
                   lost_events + events)  # fmt: skip
        patched.append(row)
    return patched
