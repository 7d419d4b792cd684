"""Resuming in the runtime: what a node execution leaves in the checkpoint, and which of an
earlier run's results it takes instead of running again.

One :class:`RunMemory` per run sits on the run context. The Instrumented layer asks it for a
:class:`NodeVisit` as each node execution starts (the n-th execution of a node is visit n, so
a loop's executions line up with the earlier run's), and the Batch layer finds that visit in
:data:`current_visit`. A visit is reused only when what the node read (the root names its
templates reference, hashed) is what it read before, so a node downstream of anything that
ran again runs again too; an unchanged input gives the same result without paying for it.
The file itself is ``tracefile/checkpoint.py``'s; here it is only a sink with three calls.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from pflow_trace.errors import ResumeError
from pflow_trace.ir.templates import (
    Interpolation,
    Reference,
    UnresolvedTemplate,
    lookup,
)
from pflow_trace.runtime.item_life import INTERRUPTED

#: What an earlier run's item was when it did not succeed; items it never reached have none.
NOT_STARTED = "not started"


class CheckpointSink(Protocol):
    """Where a run's results go as they are made (``tracefile.checkpoint.CheckpointWriter``)."""

    def started(self, node_id: str, visit: int, reads_sha256: str) -> None: ...

    def node_done(self, node_id: str, visit: int, action: str | None, value: Any) -> None: ...

    def item_done(self, node_id: str, visit: int, index: int, ms: float, value: Any) -> None: ...


def fingerprint(value: Any) -> str:
    """A sha256 of ``value`` as canonical JSON (keys sorted), to notice that it changed.

    Values JSON cannot hold hash by their ``repr``: enough to tell a change."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class ReusePlan:
    """An earlier run's results, and which of them this run may take.

    ``reads``, ``nodes`` and ``items`` are keyed by (node id, visit), as the checkpoint holds
    them; ``item_statuses`` is how the earlier trace recorded each item that did not succeed.
    """

    reads: dict[tuple[str, int], str]
    nodes: dict[tuple[str, int], tuple[str | None, Any]]
    items: dict[tuple[str, int], dict[int, tuple[float, Any]]]
    item_statuses: dict[tuple[str, int], dict[int, str]] = field(default_factory=dict)
    #: Nodes that run whatever was recorded (``--rerun``, or a definition that changed).
    rerun_nodes: frozenset[str] = frozenset()
    #: ``--items``: only these indices run again (among those that need it).
    only_items: frozenset[int] | None = None
    #: ``--failed-only`` / ``--interrupted-only``: only items that ended so run again.
    only_statuses: frozenset[str] | None = None


class NodeVisit:
    """One node execution of a run that keeps a checkpoint, resumes, or both."""

    __slots__ = ("batch", "node_id", "plan", "reads_sha256", "sink", "visit")

    def __init__(
        self,
        node_id: str,
        visit: int,
        reads_sha256: str,
        sink: CheckpointSink | None,
        plan: ReusePlan | None,
        batch: bool,
    ) -> None:
        self.node_id = node_id
        self.visit = visit
        self.reads_sha256 = reads_sha256
        self.sink = sink
        self.batch = batch
        key = (node_id, visit)
        reusable = (
            plan is not None
            and node_id not in plan.rerun_nodes
            and plan.reads.get(key) == reads_sha256
        )
        self.plan = plan if reusable else None
        if sink is not None:
            sink.started(node_id, visit, reads_sha256)

    @property
    def key(self) -> tuple[str, int]:
        return (self.node_id, self.visit)

    def reused_node(self) -> tuple[str | None, Any] | None:
        """(action, namespace) the earlier run left, when this execution may take them."""
        if self.plan is None or self.batch:
            return None
        return self.plan.nodes.get(self.key)

    def node_done(self, action: str | None, namespace: Any) -> None:
        if self.sink is not None and not self.batch:
            self.sink.node_done(self.node_id, self.visit, action, namespace)

    def reused_items(self, count: int) -> dict[int, tuple[float, Any]]:
        """index -> (original duration ms, result) of the items this batch may take."""
        if self.plan is None:
            return {}
        recorded = self.plan.items.get(self.key, {})
        return {index: kept for index, kept in recorded.items() if index < count}

    def items_to_run(self, count: int, reused: Mapping[int, Any]) -> list[int] | None:
        """The indices that run, in order; None when every item runs (nothing is reused)."""
        plan = self.plan
        if plan is None:
            return None
        statuses = plan.item_statuses.get(self.key, {})
        return [
            index
            for index in range(count)
            if index not in reused
            and (plan.only_items is None or index in plan.only_items)
            and (
                plan.only_statuses is None
                or statuses.get(index, NOT_STARTED) in (*plan.only_statuses, "success")
            )
        ]

    def item_keeper(self) -> Callable[[int, float, Any], None] | None:
        """What a batch calls with each item that succeeded, ``(index, ms, result)``: the
        sink's ``item_done`` with this visit bound (no call of ours in between, per item);
        None when nothing keeps items."""
        if self.sink is None:
            return None
        return partial(self.sink.item_done, self.node_id, self.visit)


class RunMemory:
    """A run's checkpoint sink and reuse plan, and how often each node has run so far."""

    __slots__ = ("plan", "sink", "visits")

    def __init__(self, sink: CheckpointSink | None, plan: ReusePlan | None) -> None:
        self.sink = sink
        self.plan = plan
        self.visits: dict[str, int] = {}

    def begin(
        self,
        node_id: str,
        templates: tuple[Reference, ...],
        shared: Mapping[str, Any],
        batch: bool,
    ) -> NodeVisit:
        visit = self.visits[node_id] = self.visits.get(node_id, 0) + 1
        read = [(reference.text, _value_read(reference, shared)) for reference in templates]
        return NodeVisit(node_id, visit, fingerprint(read), self.sink, self.plan, batch)


def read_templates(*compiled_sources: Any) -> tuple[Reference, ...]:
    """The ``${...}`` templates in a node's compiled params (and ``batch.items``), each once.

    What a node depends on is what these resolve to, not the whole namespaces they name: a
    batch's ``batch_metadata.timing`` changes every run, its ``results`` need not. Sources come
    compiled (a batch's items already are: compiling them again would take an escaped
    ``$${...}`` for a template), and plain values in a list are skipped without a call each:
    an inline ``batch.items`` list can hold a million of them."""
    found: dict[str, Reference] = {}

    def walk(compiled: Any) -> None:
        if isinstance(compiled, Reference):
            found.setdefault(compiled.text, compiled)
        elif isinstance(compiled, Interpolation):
            for part in compiled.parts:
                walk(part)
        elif isinstance(compiled, dict):
            for value in compiled.values():
                walk(value)
        elif isinstance(compiled, list):
            for value in compiled:
                if value.__class__ not in _PLAIN_VALUES:
                    walk(value)

    for source in compiled_sources:
        walk(source)
    return tuple(found[text] for text in sorted(found))


#: Values that hold no template, whatever they are inside a compiled list.
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})


def _value_read(reference: Reference, shared: Mapping[str, Any]) -> Any:
    """What ``reference`` resolves to now; a marker when it does not (an item alias)."""
    try:
        return lookup(reference, shared)
    except (UnresolvedTemplate, LookupError, TypeError, ValueError):
        return "\u0000unresolved"


#: The visit of the node whose chain runs on this thread (set by the Instrumented layer).
current_visit: contextvars.ContextVar[NodeVisit | None] = contextvars.ContextVar(
    "pflow_trace_current_visit", default=None
)


@dataclass(frozen=True)
class ResumeRequest:
    """``resume TRACE`` / ``run --resume TRACE`` and the flags that narrow or force it."""

    trace: str
    #: Resume although the workflow or its inputs changed (nodes that changed run again).
    force: bool = False
    #: Nodes that run again whatever was recorded (``--rerun``, like pflow's ``--only``).
    rerun: tuple[str, ...] = ()
    #: ``--items``: only these item indices run again.
    items: tuple[int, ...] | None = None
    failed_only: bool = False
    interrupted_only: bool = False

    def only_statuses(self) -> frozenset[str] | None:
        chosen: set[str] = set()
        if self.failed_only:
            chosen.add("failed")
        if self.interrupted_only:
            chosen.update((INTERRUPTED, NOT_STARTED))
        return frozenset(chosen) or None


def changed_nodes(old: Mapping[str, Any], new: Mapping[str, Any]) -> frozenset[str]:
    """Ids of ``new``'s nodes whose definition differs from ``old``'s (or that are new)."""
    before = {node.get("id"): node for node in old.get("nodes") or () if isinstance(node, dict)}
    return frozenset(node["id"] for node in new["nodes"] if before.get(node["id"]) != node)


def plan_resume(
    request: ResumeRequest,
    checkpoint: Any,
    item_statuses: dict[tuple[str, int], dict[int, str]],
    workflow: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> ReusePlan:
    """What this run may reuse from ``checkpoint`` (read from the trace ``request`` names).

    A workflow or inputs that changed refuse the resume (:class:`ResumeError`, one line)
    unless ``request.force``; forced, the nodes whose definition changed run again, and so does
    whatever reads something that came out different."""
    header = checkpoint.header
    rerun = set(request.rerun)
    unknown = sorted(rerun - {node["id"] for node in workflow["nodes"]})
    if unknown:
        raise ResumeError(f"--rerun: no node '{unknown[0]}' in the workflow")
    if fingerprint(workflow) != header.get("workflow_sha256"):
        if not request.force:
            raise ResumeError(
                f"{request.trace}: the workflow changed since that run; reusing its results "
                "could be wrong (--force resumes anyway, re-running the changed nodes)"
            )
        rerun |= changed_nodes(header.get("workflow") or {}, workflow)
    if fingerprint(dict(inputs)) != header.get("inputs_sha256") and not request.force:
        raise ResumeError(
            f"{request.trace}: the inputs differ from that run's; reusing its results could be "
            "wrong (--force resumes anyway)"
        )
    return ReusePlan(
        reads=checkpoint.reads,
        nodes=checkpoint.nodes,
        items=checkpoint.items,
        item_statuses=item_statuses,
        rerun_nodes=frozenset(rerun),
        only_items=frozenset(request.items) if request.items is not None else None,
        only_statuses=request.only_statuses(),
    )
