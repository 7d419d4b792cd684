"""The ``threads`` executor (the default): items run in the run's own process.

A sequential batch runs its items one after another on the calling thread. A parallel batch
runs them on ``max_concurrent`` *lanes*: threads that each take the next item in turn, each
with its own deep copy of the chain, in a copy of the batch span's context (so item spans are
children of the batch span on any thread). Every item goes through the batch's
:class:`~pflow_trace.runtime.item_life.ItemLife` exactly as on a worker process.

Stopping is the one subject of its own here: a signal reaches only the calling thread, so it
cancels the lanes' work, gives items in flight a moment, and has every item still running
recorded as ``interrupted`` (by ``ItemLife.cut_short``), exactly once, whichever of it and the
lane gets there first.
"""

from __future__ import annotations

import contextvars
import copy
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from pflow_trace.nodes.base import cancel_running_work
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.item_life import BatchWork, Flights

#: After Ctrl-C, how long in-flight items get to finish once their work has been cancelled.
INTERRUPT_GRACE_S = 2.0


class ThreadsExecutor:
    name = "threads"

    def run_items(self, work: BatchWork) -> None:
        if work.parallel:
            trace.get_current_span().set_attribute(conv.ATTR_BATCH_LANES, "threads")
        if work.lanes > 1:
            _Lanes(work).run()
        else:
            _run_sequential(work)

    def close(self) -> None:
        return None


def _run_sequential(work: BatchWork) -> None:
    """Items in order on this thread; a stop or a ``fail_fast`` failure ends the loop."""
    life, records, chain, shared = work.life, work.records, work.chain, work.shared
    on_signal_thread = interrupts.on_handler_thread()
    items = work.items
    for index in work.to_run:
        outcome, result, interrupt = life.run_item(
            chain, shared, index, items[index], 0, None, on_signal_thread
        )
        assert outcome is not None  # only a stop on another thread can take an item over
        records.keep(outcome, result)
        if interrupt is not None:
            raise interrupt
        if records.stop.is_set():
            break


def lane_thread(
    parent_context: contextvars.Context,
    target: Callable[..., None],
    args: tuple[Any, ...],
    name: str,
) -> threading.Thread:
    """A thread for a batch's lanes, in its own copy of the batch's context (so its spans are
    the batch span's children), a daemon: an interrupted run must not wait for a stuck item."""
    return threading.Thread(
        target=parent_context.copy().run, args=(target, *args), name=f"pflow-{name}", daemon=True
    )


def run_lane_threads(
    threads: list[threading.Thread],
    all_done: threading.Event,
    stop: Callable[[], None],
    errors: list[BaseException],
) -> None:
    """Start the lanes' threads and wait until ``all_done``: a signal meanwhile calls ``stop``
    (which records the items in flight) and goes on up; a lane's runtime bug, kept in
    ``errors``, is raised here, on the calling thread."""
    try:
        for thread in threads:
            thread.start()
        interrupts.wait_for(all_done)
    except BaseException:
        stop()
        raise
    if errors:
        raise errors[0]


class _Lanes:
    """One parallel batch's lanes and what they share; every member is safe from any lane."""

    def __init__(self, work: BatchWork) -> None:
        self.work = work
        self.to_run = work.to_run
        self.count = len(self.to_run)
        self.running = work.lanes  # lanes not yet finished
        self.all_done = threading.Event()  # set by the last lane to finish
        self.next_index = itertools.count()  # next() on a count is atomic under the GIL
        self.errors: list[BaseException] = []  # runtime bugs on lanes, re-raised by the caller
        self.flights = Flights()
        self._lock = threading.Lock()

    def run(self) -> None:
        """Start exactly ``lanes`` threads (so no more items can be in flight) and wait. Lanes
        record their own outcomes, so this thread only waits, or stops them."""
        parent_context = contextvars.copy_context()
        threads = [
            lane_thread(parent_context, self._lane, (number,), f"{self.work.life.node_id}-{number}")
            for number in range(self.running)
        ]
        run_lane_threads(threads, self.all_done, self._stop, self.errors)

    def _lane(self, number: int) -> None:
        """One lane's loop: take the next index, run that item, record it; until none is left."""
        work = self.work
        life, records, shared, items = work.life, work.records, work.shared, work.items
        stop, next_index, count, flights = records.stop, self.next_index, self.count, self.flights
        to_run = self.to_run
        try:
            chain = copy.deepcopy(work.chain, {id(life.run): life.run})
            while not stop.is_set():
                position = next(next_index)
                if position >= count:
                    break
                index = to_run[position]
                outcome, result, _ = life.run_item(
                    chain, shared, index, items[index], number, flights
                )
                if outcome is None:
                    break  # the stopping caller took this item over
                records.keep(outcome, result)
        except BaseException as exc:  # a runtime bug: re-raised on the calling thread
            self.errors.append(exc)
            stop.set()
        finally:
            with self._lock:
                self.running -= 1
                if self.running == 0:
                    self.all_done.set()

    def _stop(self) -> None:
        """The run is being stopped: cancel the lanes' work and record every item in flight.

        Lanes take no more items, child processes are killed, and items still running get a
        moment to end on their own (so their spans close inside the batch span). Whatever is
        still running after that (code that cannot be cancelled) is cut short here.
        """
        work, flights = self.work, self.flights
        flights.interrupted = True
        work.records.stop.set()
        cancel_running_work()
        self.all_done.wait(INTERRUPT_GRACE_S)
        for index in list(flights.entries):
            flight = flights.entries.pop(index, None)
            if flight is not None:  # else its lane recorded it meanwhile
                work.records.keep(work.life.cut_short(flight, time.time_ns()))
