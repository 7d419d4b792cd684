"""The facts a run emits, and the observer protocol that receives them.

This is the one stream every view is built from: the trace file, the terminal status lines
and the JSON result all read these records; spans carry the same timings because the wrappers
start and end them with the very timestamps stored here. Nothing else keeps its own books.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: ``interrupted``: the item was running when the run was stopped (Ctrl-C, SIGTERM, SIGHUP).
ItemStatus = Literal["success", "failed", "interrupted"]
RunStatus = Literal["running", "success", "degraded", "failed", "interrupted"]


@dataclass(slots=True)
class RunRecord:
    """The run as a whole: identity, timing, trace ids and how it ended."""

    execution_id: str
    workflow_name: str
    start_ns: int
    end_ns: int = 0
    status: RunStatus = "running"
    error: str | None = None
    failed_node: str | None = None
    trace_id: int = 0
    span_id: int = 0
    parent_span_id: int = 0
    #: What a finished run reports without failing: batches that went on past failed items,
    #: routed failures, declared outputs left null. Set before observers hear the run end.
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Where an item ran when it left the run's process: host, process id, Dask worker."""

    host: str
    pid: int
    #: The Dask worker's address; None on the local process pool.
    address: str | None = None


@dataclass(slots=True)
class ItemOutcome:
    """One batch item: what ran, how often, how long, where, and how it ended."""

    index: int
    item: Any
    status: ItemStatus
    attempts: int
    start_ns: int
    end_ns: int
    worker: int
    error: str | None = None
    span_id: int = 0
    #: The ``llm_usage`` the item's node returned (an LLM call); None for any other node.
    llm_usage: dict[str, Any] | None = None
    #: The worker process it ran on; None for the run's own threads.
    place: WorkerPlace | None = None
    #: The item's preview as its span carries it (made once, for the span and the trace
    #: file's record); None when no recording span made one.
    preview: str | None = None
    #: Where the item's span went: (time inside its attempts, time waiting between them), in
    #: ns; the rest of the span is the runtime's own overhead. None when no attempt reported
    #: (an item lost with its worker or cut short by a stop).
    split_ns: tuple[int, int] | None = None
    #: The provider's own latency as the node reported it (the ``http`` node's
    #: ``response_time``; an ``llm_usage`` ``duration_ms``), in ns; None when not known.
    provider_ns: int | None = None
    #: A resumed run took this item's result from the run it resumes instead of running it:
    #: its duration there (ms). None for an item that ran.
    reused_ms: float | None = None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(slots=True)
class LoopIteration:
    """One pass of a node's ``loop`` block: its number (1-based), timing and how it ended."""

    number: int
    start_ns: int
    end_ns: int
    status: Literal["success", "failed"]
    error: str | None = None
    span_id: int = 0
    #: The ``llm_usage`` the pass's node returned (an LLM call); None for any other node.
    llm_usage: dict[str, Any] | None = None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(slots=True)
class NodeExecution:
    """One execution of one node, filled in by the wrapper layers as it runs."""

    node_id: str
    node_type: str
    #: The root names this node's templates read (inputs, other nodes' namespaces).
    reads: frozenset[str] = frozenset()
    start_ns: int = 0
    end_ns: int = 0
    success: bool = False
    error: str | None = None
    span_id: int = 0
    #: param -> {"template": source, "resolved": value}; for a batch, the first item's.
    template_resolutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: set by the batch layer; None for a node without ``batch``.
    batch_items: list[ItemOutcome] | None = None
    #: each item's ``batch.key`` by index (None where it did not resolve); set by the batch
    #: layer when the node's batch has a key, else None.
    batch_item_keys: list[str | None] | None = None
    #: the ``llm_usage`` a node that is not a batch returned (one LLM call); None otherwise.
    #: A batch's calls are on its items.
    llm_usage: dict[str, Any] | None = None
    #: a node with a ``retry`` block: how many attempts it made, and why each failed one failed
    #: (``{"attempt", "error"}``, redacted). 0 for a node without one.
    attempts: int = 0
    retries: list[dict[str, Any]] = field(default_factory=list)
    #: a node with a ``loop`` block: each pass in order, and what ended the loop
    #: (``condition``, ``max_iterations``, ``failed``), and the condition's keyword (``while``
    #: or ``until``); None for a node without one.
    loop_iterations: list[LoopIteration] | None = None
    loop_stopped: str | None = None
    loop_keyword: str | None = None
    #: the observer's own data for this execution (e.g. the trace sink's snapshot).
    observer_state: Any = None
    #: ``--pilot``: the batch's pilot (seed, item indices, projection), as a plain dict.
    pilot: dict[str, Any] | None = None
    #: A node of a sub-workflow: the ids of the ``workflow`` steps that called it, outermost
    #: first, and the node span of the innermost one. Empty and 0 at the top level.
    call_path: tuple[str, ...] = ()
    caller_span_id: int = 0
    #: A ``workflow`` step: each workflow file it ran, ``{"path", "sha256"}``, once each.
    sub_workflows: list[dict[str, str]] = field(default_factory=list)
    #: Each param read from a file, ``{"param", "path", "sha256", "bytes"}`` (path as written).
    files: tuple[dict[str, Any], ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def makes_many_calls(self) -> bool:
        """A batch or a loop: its LLM calls are its items' or passes', not one of its own."""
        return self.batch_items is not None or self.loop_iterations is not None

    def llm_calls(self) -> list[dict[str, Any] | None]:
        """The usage of every LLM call this execution made: its batch items', its loop
        passes', or its own (None where a part made no call)."""
        if self.batch_items is not None:
            return [outcome.llm_usage for outcome in self.batch_items]
        if self.loop_iterations is not None:
            return [one.llm_usage for one in self.loop_iterations]
        return [self.llm_usage]


class RunObserver:
    """Receives the run's facts as they happen; every method is a no-op until overridden.

    Subclass it and override only what you need. Every method must be cheap and thread-safe:
    ``item_finished`` is called from the batch lanes while they run.
    """

    __slots__ = ()

    def run_started(self, run: RunRecord) -> None:
        """The root span has started; ``run`` has its ids and start time."""

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        """The run ended (also when it failed or was interrupted)."""

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        """A node's chain is about to run; ``shared`` is the store before it."""

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        """A node's chain has returned or raised; ``shared`` is the store after it."""

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        """One batch item of ``total`` ended (success, failure after its retries, or cut short)."""


FactKind = Literal["run_started", "run_finished", "node_started", "node_finished", "item_finished"]


class InMemoryObserver(RunObserver):
    """Keeps every fact in arrival order: the test seam for anything that reads the stream.

    ``facts`` holds ``(kind, fact)`` pairs, where ``fact`` is the :class:`RunRecord`,
    :class:`NodeExecution` or ``(node_id, ItemOutcome, total)`` the runtime emitted. The store
    passed alongside is not kept (it is the live store and changes after the call).
    """

    def __init__(self) -> None:
        self.facts: list[tuple[FactKind, Any]] = []
        self._lock = threading.Lock()

    def _keep(self, kind: FactKind, fact: Any) -> None:
        with self._lock:
            self.facts.append((kind, fact))

    def run_started(self, run: RunRecord) -> None:
        self._keep("run_started", run)

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        self._keep("run_finished", run)

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self._keep("node_started", execution)

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self._keep("node_finished", execution)

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        self._keep("item_finished", (node_id, outcome, total))

    def of_kind(self, kind: FactKind) -> list[Any]:
        """The facts of one kind, in the order they arrived."""
        return [fact for fact_kind, fact in self.facts if fact_kind == kind]

    @property
    def executions(self) -> list[NodeExecution]:
        """Every finished node execution, in finishing order."""
        return self.of_kind("node_finished")


class Observers(RunObserver):
    """Fans one stream out to several observers (the trace sink, the terminal display)."""

    __slots__ = ("item_observers", "observers")

    def __init__(self, observers: list[RunObserver]) -> None:
        self.observers = observers
        #: Those that hear of items: a call per item to a no-op (the checkpoint, which hears of
        #: items from the batch itself) costs every item of every batch.
        self.item_observers = [
            observer
            for observer in observers
            if type(observer).item_finished is not RunObserver.item_finished
        ]

    def run_started(self, run: RunRecord) -> None:
        for observer in self.observers:
            observer.run_started(run)

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer.run_finished(run, shared)

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer.node_started(execution, shared)

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer.node_finished(execution, shared)

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        for observer in self.item_observers:
            observer.item_finished(node_id, outcome, total)
