"""A batch's parallel side: lanes (threads) that take items in turn, and how they stop.

Split from :mod:`pflow_trace.runtime.batch` (mixed into ``BatchNode``) because stopping
parallel work is a subject of its own: a signal reaches only the calling thread, so it must
cancel the lanes' work, give items in flight a moment, and record every item still running as
``interrupted`` itself, exactly once, whichever of it and the lane gets there first.
"""

from __future__ import annotations

import contextvars
import copy
import itertools
import threading
import time
from typing import Any

from pflow_trace.nodes.base import cancel_running_work
from pflow_trace.observe.facts import ItemOutcome
from pflow_trace.runtime import interrupts

#: After Ctrl-C, how long in-flight items get to finish once their work has been cancelled.
INTERRUPT_GRACE_S = 2.0
#: The ``error`` of an item (and the span status) when the run was stopped while it ran.
INTERRUPTED = "interrupted"


class Lanes:
    """What the lanes of one parallel batch share; every member is safe to use from any lane."""

    __slots__ = (
        "_lock",
        "all_done",
        "count",
        "errors",
        "in_flight",
        "interrupted",
        "next_index",
        "running",
        "stop",
    )

    def __init__(self, count: int, running: int) -> None:
        self.count = count  # items in the batch
        self.running = running  # lanes not yet finished
        self.stop = threading.Event()  # set: no lane takes another item
        self.all_done = threading.Event()  # set by the last lane to finish
        self.next_index = itertools.count()  # next() on a count is atomic under the GIL
        self.errors: list[BaseException] = []  # runtime bugs on lanes, re-raised by the caller
        #: index -> [span, start_ns, worker, item, attempt] of each item running now. Whoever
        #: pops an entry (the lane when the item ends, or the interrupted caller giving up on
        #: it) records that item: dict.pop is atomic, so exactly one of them does.
        self.in_flight: dict[int, list[Any]] = {}
        self.interrupted = False  # set by the caller when the run is being stopped
        self._lock = threading.Lock()

    def lane_finished(self) -> None:
        with self._lock:
            self.running -= 1
            if self.running == 0:
                self.all_done.set()


class ParallelItems:
    """The parallel half of ``BatchNode``; it uses the batch's ``run_item`` and ``notify``."""

    config: Any
    inner: Any
    node_id: str
    run_context: Any
    run_item: Any
    notify: Any
    _end_item_span: Any

    def run_parallel(
        self, shared: Any, items: list[Any], outcomes: list[ItemOutcome], results: list[Any]
    ) -> None:
        """Run items on ``max_concurrent`` lanes: threads that each take the next item in turn.

        Exactly that many threads exist, so no more items can be in flight; each owns a deep
        copy of the inner chain and runs in a copy of the batch span's context. Lanes record
        their own outcomes (list appends are atomic), so the main thread only waits.
        """
        lanes = Lanes(count=len(items), running=min(self.config.max_concurrent, len(items)))
        parent_context = contextvars.copy_context()
        threads = [
            threading.Thread(
                target=parent_context.copy().run,
                args=(self._run_lane, lanes, number, shared, items, outcomes, results),
                name=f"pflow-{self.node_id}-{number}",
                daemon=True,  # an interrupted run must not wait for a stuck item to exit
            )
            for number in range(lanes.running)
        ]
        on_signal_thread = interrupts.on_handler_thread()
        try:
            for thread in threads:
                thread.start()
            if on_signal_thread:
                interrupts.enter_interruptible()
                try:
                    lanes.all_done.wait()
                finally:
                    interrupts.leave_interruptible()
            else:
                lanes.all_done.wait()
        except BaseException:
            self._stop_lanes(lanes, outcomes)
            raise
        if lanes.errors:
            raise lanes.errors[0]

    def _stop_lanes(self, lanes: Lanes, outcomes: list[ItemOutcome]) -> None:
        """The run is being stopped: cancel the lanes' work and record every item in flight.

        A signal reaches only this thread. Lanes take no more items, child processes are
        killed, and items still running get a moment to end on their own (so their spans close
        inside the batch span). Whatever is still running after that (code that cannot be
        cancelled) is recorded here as ``interrupted``, its span ended now.
        """
        lanes.interrupted = True
        lanes.stop.set()
        cancel_running_work()
        lanes.all_done.wait(INTERRUPT_GRACE_S)
        count, recording = lanes.count, self.run_context.recording
        for index in list(lanes.in_flight):
            flight = lanes.in_flight.pop(index, None)
            if flight is None:
                continue  # its lane recorded it meanwhile
            span, start_ns, worker, item, attempt = flight
            end_ns = time.time_ns()
            self._end_item_span(span, None, attempt, INTERRUPTED, end_ns, recording)
            span_id = span.get_span_context().span_id
            outcome = ItemOutcome(
                index, item, "interrupted", attempt, start_ns, end_ns, worker, INTERRUPTED, span_id
            )
            outcomes.append(outcome)
            self.notify(outcome, count)

    def _run_lane(
        self,
        lanes: Lanes,
        number: int,
        shared: Any,
        items: list[Any],
        outcomes: list[ItemOutcome],
        results: list[Any],
    ) -> None:
        """One lane's loop: take the next index, run that item, record it; until none is left."""
        stop, next_index, count = lanes.stop, lanes.next_index, lanes.count
        stop_on_error = self.config.error_handling == "fail_fast"
        try:
            chain = copy.deepcopy(self.inner, {id(self.run_context): self.run_context})
            while not stop.is_set():
                index = next(next_index)
                if index >= count:
                    break
                outcome, result, interrupt = self.run_item(
                    chain, shared, index, items[index], number, outcomes, lanes
                )
                if outcome is None:
                    break  # the interrupted caller took this item over
                if outcome.status == "success":
                    results[index] = result
                elif stop_on_error or interrupt is not None:
                    stop.set()  # before anything else: no lane may take another item
                self.notify(outcome, count)
        except BaseException as exc:  # a runtime bug: re-raised on the calling thread
            lanes.errors.append(exc)
            stop.set()
        finally:
            lanes.lane_finished()
