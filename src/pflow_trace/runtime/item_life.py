"""A batch item's life, owned in one place: its attempts and waits, its span, its record.

Every executor runs items through an :class:`ItemLife`: the ``threads`` lanes in the run's
process (and async lanes, as tasks, through :meth:`ItemLife.run_item_async`), and the
``processes`` and ``dask`` workers (each builds its own from the batch's job).
The driver of those workers asks the same object about an attempt lost with a dead worker and
records, through it, the items no worker will report on. So, whichever process ran an item:

- whether it gets another attempt, and the wait before it, is :class:`RetryPolicy`'s answer
  (:meth:`ItemLife.retry_pause_s`);
- its span is started by :meth:`ItemLife._start_span` and ended by :meth:`ItemLife._finish`,
  with the same attributes, retry events and status on every executor;
- an item a stop cut short is recorded once, as ``interrupted``, by :meth:`ItemLife.cut_short`.

Executors are transports: they hand out items, bring back :class:`ItemOutcome` records (and,
from other processes, span rows) and give them to :class:`ItemRecords`. Each item is timed
once: the same timestamps are its span's start and end, its ``batch_items`` record and the
``batch_metadata`` timing, so every view agrees.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from pflow_trace.engine import BaseNode, RetryPolicy
from pflow_trace.nodes.base import WorkCancelled, current_attempt
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome, ItemStatus, WorkerPlace
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.layers import describe_error
from pflow_trace.runtime.llm_spans import record_llm_call, usage_of, usage_of_failure

#: The ``error`` of an item (and its span's status) when the run was stopped while it ran.
INTERRUPTED = "interrupted"
#: The root key holding the running item's 0-based position, ``${__index__}`` as in pflow.
INDEX_KEY = "__index__"

#: Node types whose outputs may carry the provider's latency (:func:`provider_latency_ns`).
LATENCY_REPORTING_TYPES = frozenset({"http", "llm"})

#: (ns inside the item's attempts, ns waiting between them); None when they were cut short.
Split = tuple[int, int] | None

#: (attempt number, error, time ns) of an attempt that ended without its worker's report (the
#: worker died): a retry event on the item's span, wherever the span is made.
LostAttempt = tuple[int, str, int]


class InFlight:
    """One item running now: what its record needs if a stop takes it over."""

    __slots__ = ("attempt", "index", "item", "preview", "span", "start_ns", "worker")

    def __init__(
        self, index: int, item: Any, worker: int, start_ns: int, span: Span, preview: str | None
    ) -> None:
        self.index = index
        self.item = item
        self.worker = worker
        self.start_ns = start_ns
        self.span = span
        self.preview = preview
        self.attempt = 1


class Flights:
    """The items running on a batch's lanes. Whoever pops an entry (the lane when its item
    ends, or a stop giving up on it) records that item: ``dict.pop`` is atomic, so exactly one
    of them does."""

    __slots__ = ("entries", "interrupted")

    def __init__(self) -> None:
        self.entries: dict[int, InFlight] = {}
        self.interrupted = False  # set when the run is being stopped: no further attempt


class ItemLife:
    """How one batch's items live; one per batch on the driver, one per job on a worker."""

    __slots__ = (
        "alias", "base_attributes", "node_id", "reports_latency", "retry", "run", "span_name",
    )  # fmt: skip

    def __init__(
        self,
        run: RunContext,
        node_id: str,
        node_type: str,
        alias: str,
        retry: RetryPolicy,
        place: WorkerPlace | None = None,
    ) -> None:
        self.run = run
        self.node_id = node_id
        self.alias = alias
        self.retry = retry
        #: Whether the node's outputs may say how long its provider took (docs/spans.md).
        self.reports_latency = node_type in LATENCY_REPORTING_TYPES
        self.span_name = conv.span_name(conv.LAYER_BATCH_ITEM, node_id)
        attributes: dict[str, Any] = {
            conv.ATTR_LAYER: conv.LAYER_BATCH_ITEM,
            conv.ATTR_NODE_ID: node_id,
            conv.ATTR_NODE_TYPE: node_type,
        }
        if place is not None:  # a worker process: where the item ran
            attributes.update(_place_attributes(place))
        self.base_attributes = attributes

    # -- the one retry decision ----------------------------------------------------------------

    def retry_pause_s(self, attempt: int, failure: BaseException | None = None) -> float | None:
        """After failed attempt ``attempt``: the wait before the next, or None (no more).
        A ``failure`` that asks for a wait (an HTTP ``Retry-After``) waits at least that."""
        return self.retry.pause_s(attempt, getattr(failure, "retry_after_s", None))

    # -- running an item -------------------------------------------------------------------------

    def run_item(
        self,
        chain: BaseNode,
        shared: Any,
        index: int,
        item: Any,
        worker: int,
        flights: Flights | None = None,
        on_signal_thread: bool = False,
        lost: Sequence[LostAttempt] = (),
        first_start_ns: int = 0,
    ) -> tuple[ItemOutcome | None, Any, BaseException | None]:
        """Run one item, with every attempt it has, inside one item span.

        Every item that starts gets exactly one record and one span, with the same status:
        ``success``, ``failed`` or ``interrupted``. Returns the outcome (None when a stop took
        the item over and recorded it), what the node wrote on success, and the interrupt that
        cut the item short, for the caller to act on. ``lost``: attempts this item already
        spent on workers that died (the span starts at ``first_start_ns`` and notes them).
        Only the node's work and the waits are interruptible (``on_signal_thread``), so a
        signal never lands between an item's span and its record.
        """
        start_ns = first_start_ns or time.time_ns()
        started = len(lost) + 1
        span, preview, flight, token = self._begin(
            index, item, worker, start_ns, flights, started, lost
        )
        try:
            tried = self._attempts(
                chain, shared, index, item, span, flight, flights, on_signal_thread, len(lost)
            )
        except BaseException as exc:  # a runtime bug: the span says so, and it propagates
            self._abandon(span, token, flights, index, exc)
            raise
        otel_context.detach(token)
        outcome = self._settle(
            span, flights, index, item, worker, start_ns, preview, started, tried
        )
        return outcome, tried[1], tried[3]

    def _begin(
        self,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        flights: Flights | None,
        started: int = 1,
        lost: Sequence[LostAttempt] = (),
    ) -> tuple[Span, str | None, InFlight | None, object]:
        """An item starts, on a thread or as a task: (its span, made current; its preview; its
        entry among the batch's flights, when the lanes keep them; the token to detach)."""
        # A preview costs a JSON dump: only when a real tracer keeps it (span and record).
        preview = self.run.sanitizer.preview(item) if self.run.recording else None
        span = self._start_span(index, worker, start_ns, preview, started, lost)
        flight = None
        if flights is not None:
            flight = flights.entries[index] = InFlight(index, item, worker, start_ns, span, preview)
        return span, preview, flight, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def _abandon(
        span: Span, token: object, flights: Flights | None, index: int, exc: BaseException
    ) -> None:
        """A runtime bug ended the item's attempts: its span says so, and no record is made."""
        if flights is not None:
            flights.entries.pop(index, None)
        span.set_status(Status(StatusCode.ERROR, describe_error(exc)))
        otel_context.detach(token)
        span.end()

    def _attempt_store(self, shared: Any, item: Any, index: int) -> dict[str, Any]:
        """The store one attempt runs on: a fresh shallow copy, so a failed attempt leaves
        nothing behind, with the item under the batch's alias and its index."""
        item_shared = dict(shared)
        item_shared[self.alias] = item
        item_shared[INDEX_KEY] = index
        return item_shared

    def _failed_attempt(
        self, attempt: int, exc: Exception, span: Span, flights: Flights | None
    ) -> tuple[str, dict[str, Any] | None, float | None]:
        """An attempt failed: (its error, redacted; its LLM usage; how long to wait before the
        next attempt, None when there is none). A retry is noted on the item's span."""
        error = self.run.sanitizer.text(describe_error(exc))
        usage = usage_of_failure(exc)
        pause_s = self.retry_pause_s(attempt, exc)
        if pause_s is None or (flights is not None and flights.interrupted):
            return error, usage, None
        self._note_retry(span, attempt, error)
        return error, usage, pause_s

    def _attempts(
        self,
        chain: BaseNode,
        shared: Any,
        index: int,
        item: Any,
        span: Span,
        flight: InFlight | None,
        flights: Flights | None,
        on_signal_thread: bool,
        spent: int,
    ) -> tuple[int, Any, str | None, BaseException | None, dict[str, Any] | None, Split]:
        """The item's attempts: (attempts made, result, error left, interrupt, the
        ``llm_usage`` of the last attempt when the node made an LLM call, and the ns spent in
        attempts and in waits between them). Attempt numbers continue after the ``spent``
        ones a dead worker used, so ``current_attempt`` is true. Each attempt is timed with
        one ``time_ns`` pair: all the attribution costs on the per-item path."""
        result: Any = None
        error: str | None = None
        usage: dict[str, Any] | None = None
        attempt = spent
        attempts_ns = waits_ns = 0
        try:
            while True:
                attempt += 1
                item_shared = self._attempt_store(shared, item, index)
                attempt_token = current_attempt.set(attempt)
                if flight is not None:
                    flight.attempt = attempt
                try:
                    began_ns = time.time_ns()
                    if on_signal_thread:
                        _interruptibly(chain._run, item_shared)
                    else:
                        chain._run(item_shared)
                    attempts_ns += time.time_ns() - began_ns
                    result = item_shared.get(self.node_id)
                    return attempt, result, None, None, usage_of(result), (attempts_ns, waits_ns)
                except Exception as exc:
                    attempts_ns += time.time_ns() - began_ns
                    error, usage, pause_s = self._failed_attempt(attempt, exc, span, flights)
                    if pause_s is None:
                        break
                    waits_ns += _pause(pause_s, on_signal_thread)
                finally:
                    current_attempt.reset(attempt_token)
        except (KeyboardInterrupt, WorkCancelled) as exc:  # stopped: recorded, then re-raised
            return attempt, None, INTERRUPTED, exc, usage, None
        return attempt, result, error, None, usage, (attempts_ns, waits_ns)

    def _settle(
        self,
        span: Span,
        flights: Flights | None,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        preview: str | None,
        started: int,
        tried: tuple[int, Any, str | None, BaseException | None, Any, tuple[int, int] | None],
    ) -> ItemOutcome | None:
        """An item's attempts are over (on a thread or as a task): its status, its LLM call on
        the span, its record. None when a stop took the item over and recorded it already."""
        end_ns = time.time_ns()
        attempt, result, error, interrupt, usage, split = tried
        if flights is not None and flights.entries.pop(index, None) is None:
            return None
        status: ItemStatus = (
            "success" if error is None else "failed" if interrupt is None else "interrupted"
        )
        run = self.run
        if usage is not None and run.recording:
            record_llm_call(span, usage, result, run.sanitizer, run.capture_llm_content)
        provider_ns = provider_latency_ns(result, usage) if self.reports_latency else None
        return self._finish(
            span, index, item, worker, start_ns, end_ns, attempt, status, error, usage, preview,
            None, started, split, provider_ns,
        )  # fmt: skip

    # -- running an item as a task on async lanes -------------------------------------------------

    async def run_item_async(
        self, chain: BaseNode, shared: Any, index: int, item: Any, worker: int, flights: Flights
    ) -> tuple[ItemOutcome | None, Any]:
        """:meth:`run_item` for an item on async lanes (a task on the batch's event loop):
        the same span, attempts, waits and record. The task's own context holds the item's
        span, so items interleaving on one thread never see each other's. A stop cancels the
        task: the attempt or wait it was in ends, and the item is recorded ``interrupted``."""
        start_ns = time.time_ns()
        span, preview, flight, token = self._begin(index, item, worker, start_ns, flights)
        assert flight is not None  # async lanes always keep their flights
        try:
            tried = await self._attempts_async(chain, shared, index, item, span, flight, flights)
        except BaseException as exc:  # a runtime bug: the span says so, and it propagates
            self._abandon(span, token, flights, index, exc)
            raise
        otel_context.detach(token)
        outcome = self._settle(span, flights, index, item, worker, start_ns, preview, 1, tried)
        return (None, None) if outcome is None else (outcome, tried[1])

    async def _attempts_async(
        self,
        chain: Any,
        shared: Any,
        index: int,
        item: Any,
        span: Span,
        flight: InFlight,
        flights: Flights,
    ) -> tuple[int, Any, str | None, BaseException | None, dict[str, Any] | None, Split]:
        """:meth:`_attempts` awaiting the chain's async path; a retry wait is an
        ``asyncio.sleep``, so it holds no thread either."""
        result: Any = None
        error: str | None = None
        usage: dict[str, Any] | None = None
        attempt = 0
        attempts_ns = waits_ns = 0
        try:
            while True:
                attempt += 1
                item_shared = self._attempt_store(shared, item, index)
                attempt_token = current_attempt.set(attempt)
                flight.attempt = attempt
                try:
                    began_ns = time.time_ns()
                    await chain._run_async(item_shared)
                    attempts_ns += time.time_ns() - began_ns
                    result = item_shared.get(self.node_id)
                    return attempt, result, None, None, usage_of(result), (attempts_ns, waits_ns)
                except Exception as exc:
                    attempts_ns += time.time_ns() - began_ns
                    error, usage, pause_s = self._failed_attempt(attempt, exc, span, flights)
                    if pause_s is None:
                        break
                    began_ns = time.time_ns()
                    if pause_s > 0:
                        await asyncio.sleep(pause_s)
                    waits_ns += time.time_ns() - began_ns
                finally:
                    current_attempt.reset(attempt_token)
        except (KeyboardInterrupt, WorkCancelled, asyncio.CancelledError) as exc:
            return attempt, None, INTERRUPTED, exc, usage, None
        return attempt, result, error, None, usage, (attempts_ns, waits_ns)

    # -- the item's span and record --------------------------------------------------------------

    def _start_span(
        self,
        index: int,
        worker: int,
        start_ns: int,
        preview: str | None,
        attempts: int = 1,
        lost: Sequence[LostAttempt] = (),
        extra: dict[str, Any] | None = None,
    ) -> Span:
        """The item's span, started at ``start_ns`` (its record's start) but not made current.

        ``attempts`` is the attempt it starts with (a retried item updates it when it ends);
        ``lost`` attempts become retry events, at the times their workers were found dead.
        """
        attributes = dict(self.base_attributes)
        attributes[conv.ATTR_BATCH_INDEX] = index
        attributes[conv.ATTR_BATCH_WORKER] = worker
        attributes[conv.ATTR_BATCH_ATTEMPTS] = attempts
        if preview is not None:
            attributes[conv.ATTR_BATCH_ITEM_PREVIEW] = preview
        if extra:
            attributes.update(extra)
        span = self.run.tracer.start_span(
            self.span_name,
            attributes=attributes,
            start_time=start_ns,
            record_exception=False,
            set_status_on_exception=False,
        )
        for attempt, error, at_ns in lost:
            self._note_retry(span, attempt, error, at_ns)
        return span

    def _note_retry(self, span: Span, attempt: int, error: str, at_ns: int | None = None) -> None:
        """A failed attempt that another follows: a retry event on the item's span."""
        if self.run.recording:
            span.add_event(
                conv.EVENT_RETRY,
                {conv.ATTR_RETRY_ATTEMPT: attempt, conv.ATTR_RETRY_ERROR: error},
                timestamp=at_ns,
            )

    def _finish(
        self,
        span: Span,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        end_ns: int,
        attempts: int,
        status: ItemStatus,
        error: str | None,
        usage: dict[str, Any] | None = None,
        preview: str | None = None,
        place: WorkerPlace | None = None,
        started_attempts: int = 1,
        split: Split = None,
        provider_ns: int | None = None,
    ) -> ItemOutcome:
        """End the item's span with its attempts, status and time split, and make its record:
        the one place both happen, so the span and the record always agree.
        ``started_attempts``: what the span started with (setting it again would copy its
        attributes)."""
        if self.run.recording:
            if attempts != started_attempts:
                span.set_attribute(conv.ATTR_BATCH_ATTEMPTS, attempts)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            if split is not None:
                _set_split(span, split, provider_ns)
        span.end(end_time=end_ns)
        span_id = span.get_span_context().span_id
        # Positional, in field order: keywords cost about 0.6 µs more per item (measured).
        return ItemOutcome(
            index, item, status, attempts, start_ns, end_ns, worker, error, span_id, usage, place,
            preview, split, provider_ns,
        )  # fmt: skip

    # -- items no running attempt will report on -------------------------------------------------

    def cut_short(self, flight: InFlight, end_ns: int) -> ItemOutcome:
        """Record an item a stop took over while it ran on a lane: ``interrupted``, its span
        ended now."""
        return self._finish(
            flight.span, flight.index, flight.item, flight.worker, flight.start_ns, end_ns,
            flight.attempt, "interrupted", INTERRUPTED, None, flight.preview,
        )  # fmt: skip

    def cut_short_elsewhere(
        self,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        end_ns: int,
        lost: Sequence[LostAttempt],
    ) -> ItemOutcome:
        """Record an item a stop took over while it was out on a worker, or waiting for a
        retry: ``interrupted``, its span made here (``lost``: the attempts it lost before)."""
        return self._unreported(index, item, worker, start_ns, end_ns, "interrupted", INTERRUPTED,
                                lost, len(lost) + 1, lost, None)  # fmt: skip

    def lost_with_worker(
        self,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        end_ns: int,
        lost: Sequence[LostAttempt],
        place: WorkerPlace | None = None,
    ) -> ItemOutcome:
        """Record an item whose last attempt died with its worker: ``failed`` with that
        attempt's error, its span made here (earlier lost attempts are retry events)."""
        attempts, error, _ = lost[-1]
        return self._unreported(index, item, worker, start_ns, end_ns, "failed", error, lost,
                                attempts, lost[:-1], place)  # fmt: skip

    def _unreported(
        self,
        index: int,
        item: Any,
        worker: int,
        start_ns: int,
        end_ns: int,
        status: ItemStatus,
        error: str,
        lost: Sequence[LostAttempt],
        attempts: int,
        retry_events: Sequence[LostAttempt],
        place: WorkerPlace | None,
    ) -> ItemOutcome:
        """An item no worker will report on; the span and record are made on the driver."""
        preview = self.run.sanitizer.preview(item) if self.run.recording else None
        extra = _place_attributes(place) if place is not None else None
        span = self._start_span(index, worker, start_ns, preview, attempts, retry_events, extra)
        return self._finish(
            span, index, item, worker, start_ns, end_ns, attempts, status, error, None, preview,
            place, attempts,
        )  # fmt: skip


def provider_latency_ns(result: Any, usage: dict[str, Any] | None) -> int | None:
    """How long the provider took, as the node's outputs say: the ``http`` node's
    ``response_time`` (seconds), an ``llm_usage`` ``duration_ms``; None when they do not."""
    seconds: Any = None
    if usage is not None:
        milliseconds = usage.get("duration_ms")
        if milliseconds.__class__ in (int, float):
            seconds = milliseconds / 1000
    elif result.__class__ is dict:
        seconds = result.get("response_time")
    if seconds.__class__ not in (int, float) or not 0 <= seconds < 1e7:
        return None
    return int(seconds * 1e9)


def _set_split(span: Span, split: tuple[int, int], provider_ns: int | None) -> None:
    """The item span's time split as attributes, in whole microseconds. Each attribute costs
    every item about a microsecond (set, then encoded in the span table), so a span carries
    only what its duration cannot give: the attempts, the retry wait only when there was one
    (absent is 0), and the overhead not at all (the span's duration minus the two)."""
    attempts_ns, waits_ns = split
    span.set_attribute(conv.ATTR_BATCH_TIME_ATTEMPTS_US, attempts_ns // 1000)
    if waits_ns:
        span.set_attribute(conv.ATTR_BATCH_TIME_RETRY_WAIT_US, waits_ns // 1000)
    if provider_ns is not None:
        span.set_attribute(conv.ATTR_BATCH_TIME_PROVIDER_US, provider_ns // 1000)


def _place_attributes(place: WorkerPlace) -> dict[str, Any]:
    attributes: dict[str, Any] = {conv.ATTR_BATCH_HOST: place.host, conv.ATTR_BATCH_PID: place.pid}
    if place.address is not None:
        attributes[conv.ATTR_BATCH_WORKER_ADDRESS] = place.address
    return attributes


def _pause(pause_s: float, on_signal_thread: bool) -> int:
    """A retry wait (the signal may stop it on the signal's thread); the ns it took."""
    began_ns = time.time_ns()
    if pause_s > 0 and on_signal_thread:
        _interruptibly(time.sleep, pause_s)
    elif pause_s > 0:
        time.sleep(pause_s)
    return time.time_ns() - began_ns


def _interruptibly(work: Callable[..., Any], *args: Any) -> None:
    """The node's work or a retry wait: the one place a signal may stop a sequential item."""
    interrupts.enter_interruptible()
    try:
        work(*args)
    finally:
        interrupts.leave_interruptible()


class ItemRecords:
    """Where every executor hands a batch's outcomes: the record list (in finishing order),
    the results (in item order), the observer, and the stop that ``fail_fast`` or a
    stopped item sets. Safe from any lane: appends and index stores are atomic."""

    __slots__ = ("count", "notify", "outcomes", "results", "stop", "stop_on_error")

    def __init__(
        self,
        count: int,
        outcomes: list[ItemOutcome],
        stop_on_error: bool,
        notify: Callable[[ItemOutcome, int], None] | None = None,
    ) -> None:
        self.count = count
        self.outcomes = outcomes
        self.results: list[Any] = [None] * count
        self.stop_on_error = stop_on_error
        self.stop = threading.Event()  # set: no further item is handed out
        self.notify = notify

    def keep(self, outcome: ItemOutcome, result: Any = None) -> None:
        """Record one finished item; a failure under ``fail_fast``, or a stopped item, stops
        the batch before anyone hears of it, so no lane takes another item meanwhile."""
        status = outcome.status
        if status == "success":
            self.results[outcome.index] = result
        elif status == "interrupted" or self.stop_on_error:
            self.stop.set()
        self.outcomes.append(outcome)
        if self.notify is not None:
            self.notify(outcome, self.count)


@dataclass(frozen=True, slots=True)
class BatchWork:
    """What a batch hands its executor: how items live, the chain each runs through (Namespaced
    -> TemplateAware -> node), the store they start from, the items and where records go."""

    life: ItemLife
    chain: BaseNode
    shared: Any
    items: list[Any]
    records: ItemRecords
    parallel: bool
    max_concurrent: int
    #: The indices to run, in order, when not every item runs (a resumed run reuses the rest).
    indices: Sequence[int] | None = None

    @property
    def to_run(self) -> Sequence[int]:
        """The indices executors hand out, in order."""
        return range(len(self.items)) if self.indices is None else self.indices

    @property
    def lanes(self) -> int:
        """How many items may be in flight at once."""
        return min(self.max_concurrent if self.parallel else 1, len(self.to_run))


class ItemExecutor(Protocol):
    """Runs a batch's items somewhere (a transport): every item through ``work.life``, every
    outcome into ``work.records``."""

    name: str

    def run_items(self, work: BatchWork) -> None: ...

    def close(self) -> None: ...
