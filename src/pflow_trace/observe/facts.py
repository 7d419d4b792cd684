"""The facts a run emits, and the observer protocol that receives them.

This is the one stream every view is built from: the trace file, the terminal status lines
and the JSON result all read these records; spans carry the same timings because the wrappers
start and end them with the very timestamps stored here. Nothing else keeps its own books.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ItemStatus = Literal["success", "failed"]
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

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


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
    #: the observer's own data for this execution (e.g. the trace sink's snapshot).
    observer_state: Any = None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


class RunObserver(Protocol):
    """Receives the run's facts as they happen. Every method must be cheap and thread-safe."""

    def run_started(self, run: RunRecord) -> None: ...

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None: ...

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None: ...

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None: ...

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None: ...


class Observers:
    """Fans one stream out to several observers (the trace sink, the terminal display)."""

    __slots__ = ("observers",)

    def __init__(self, observers: list[RunObserver]) -> None:
        self.observers = observers

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
        for observer in self.observers:
            observer.item_finished(node_id, outcome, total)
