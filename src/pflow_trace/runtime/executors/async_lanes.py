"""Async lanes: a parallel batch's items as tasks on one event loop, in one thread.

A node type that declares an async path (``exec_async``, e.g. ``http``) spends an item
waiting for another service. On thread lanes each waiting item holds a thread, and a hundred
threads contend for the interpreter lock; here a waiting item is a suspended task, so
``max_concurrent`` items (up to
:data:`~pflow_trace.ir.executor_choice.MAX_ASYNC_IN_FLIGHT`) can wait at once for the price of
one thread. The batch chooses these lanes by itself (:meth:`ExecutorSet.for_batch`) and its
span says so (``pflow.batch.lanes``).

It is a transport, as every executor is: ``max_concurrent`` lane coroutines, each with its
own copy of the chain, take the next item in turn and run it through the batch's
:class:`~pflow_trace.runtime.item_life.ItemLife` (``run_item_async``: the same span,
attempts, waits and record as on threads), then hand the outcome to ``ItemRecords``. Lane
numbers are the ``worker`` numbers threads record. What the items share for the batch (the
``http`` node's connection pool, the ``llm`` node's async clients) lives in
:class:`~pflow_trace.nodes.base.AsyncLanes` and is closed on the loop when the batch ends.

Stopping is as on threads: a signal reaches the calling thread, which waits for the loop; it
stops handing out items, cancels every task (the attempt or retry wait in progress ends and
the item is recorded ``interrupted`` by its lane), gives them a moment, and records whatever
is still running as ``interrupted`` itself (``ItemLife.cut_short``), exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import threading
import time

from opentelemetry import trace

from pflow_trace.nodes.base import AsyncLanes, cancel_running_work, current_async_lanes
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.executors.threads import lane_thread, run_lane_threads
from pflow_trace.runtime.item_life import BatchWork, Flights

#: After Ctrl-C, how long in-flight items get to finish once their tasks have been cancelled.
INTERRUPT_GRACE_S = 2.0


class AsyncLanesExecutor:
    name = "async"

    def run_items(self, work: BatchWork) -> None:
        trace.get_current_span().set_attribute(conv.ATTR_BATCH_LANES, "async")
        if work.to_run:
            _Loop(work).run()

    def close(self) -> None:
        return None


class _Loop:
    """One batch's event loop, its thread and its lane tasks."""

    def __init__(self, work: BatchWork) -> None:
        self.work = work
        self.flights = Flights()
        self.all_done = threading.Event()  # set when the loop's thread is finished
        self.errors: list[BaseException] = []  # runtime bugs on lanes, re-raised by the caller
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.next_position = 0

    def run(self) -> None:
        """Run the loop on its own thread and wait; lanes record their own outcomes, so this
        thread only waits, or stops them."""
        thread = lane_thread(
            contextvars.copy_context(), self._thread, (), f"{self.work.life.node_id}-async"
        )
        run_lane_threads([thread], self.all_done, self._stop, self.errors)

    def _thread(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # a runtime bug: re-raised on the calling thread
            self.errors.append(exc)
        finally:
            loop.close()
            self.all_done.set()

    async def _main(self) -> None:
        lanes = AsyncLanes(self.work.lanes)
        current_async_lanes.set(lanes)  # the tasks made below inherit it
        self.tasks = [asyncio.create_task(self._lane(number)) for number in range(lanes.in_flight)]
        try:
            await asyncio.wait(self.tasks)
        finally:
            for close in lanes.closers:
                with contextlib.suppress(Exception):
                    await close()

    async def _lane(self, number: int) -> None:
        """One lane's loop: take the next index, run that item, record it; until none is left."""
        work = self.work
        life, records, shared, items = work.life, work.records, work.shared, work.items
        stop, flights, to_run = records.stop, self.flights, work.to_run
        count = len(to_run)
        try:
            chain = copy.deepcopy(work.chain, {id(life.run): life.run})
            while not stop.is_set() and self.next_position < count:
                index = to_run[self.next_position]
                self.next_position += 1  # one thread: no other lane runs between these lines
                outcome, result = await life.run_item_async(
                    chain, shared, index, items[index], number, flights
                )
                if outcome is None:
                    break  # the stopping caller took this item over
                records.keep(outcome, result)
        except asyncio.CancelledError:
            return  # cancelled between items: nothing of its own to record
        except BaseException as exc:  # a runtime bug: re-raised on the calling thread
            self.errors.append(exc)
            stop.set()

    def _cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _stop(self) -> None:
        """The run is being stopped: cancel the lanes' tasks and record every item in flight.

        Lanes take no more items, child processes are killed, and every task is cancelled, so
        the attempt or wait it was in ends and its lane records the item. Whatever is still
        running after a moment (a call that ignores cancellation) is cut short here.
        """
        work, flights = self.work, self.flights
        flights.interrupted = True
        work.records.stop.set()
        cancel_running_work()
        loop = self.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(self._cancel_tasks)
        self.all_done.wait(INTERRUPT_GRACE_S)
        for index in list(flights.entries):
            flight = flights.entries.pop(index, None)
            if flight is not None:  # else its lane recorded it meanwhile
                work.records.keep(work.life.cut_short(flight, time.time_ns()))
