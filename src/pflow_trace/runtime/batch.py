"""The Batch layer: runs the inner chain once per item, on the executor the batch names.

It sits outside Namespaced so each item's alias lands at the root of that item's store, where
``${item}`` resolves. The layer owns the batch as a whole: resolving the items, the batch span
and its counts, the node's output and whether the node failed. Each item's life (attempts,
waits, span, record) belongs to :class:`~pflow_trace.runtime.item_life.ItemLife`; where items
run belongs to the executor (:mod:`pflow_trace.runtime.executors`), which hands every outcome
to :class:`~pflow_trace.runtime.item_life.ItemRecords`.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from pflow_trace.engine import RetryPolicy
from pflow_trace.errors import TemplateError
from pflow_trace.ir.templates import (
    Reference,
    compile_value,
    json_list_or_value,
    resolve_param,
)
from pflow_trace.nodes.base import NodeFailure, async_path_for, has_async_path
from pflow_trace.nodes.output_capture import proxies_held
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome
from pflow_trace.runtime import interrupts
from pflow_trace.runtime.batch_keys import item_keys
from pflow_trace.runtime.batch_output import build_batch_output
from pflow_trace.runtime.context import current_execution
from pflow_trace.runtime.executors.threads import ThreadsExecutor
from pflow_trace.runtime.item_life import BatchWork, ItemExecutor, ItemLife, ItemRecords
from pflow_trace.runtime.layers import LayerWrapper, innermost
from pflow_trace.runtime.pilot import PilotDeclined
from pflow_trace.runtime.resume import NodeVisit, current_visit

ErrorHandling = Literal["fail_fast", "continue"]

#: The longest ``Retry-After`` an item's next attempt waits for; asking more fails the item.
MAX_RETRY_AFTER_S = 60.0

#: Where items run when the run names no executors (a run context made by hand).
_THREADS = ThreadsExecutor()


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """A node's ``batch`` block with its defaults applied."""

    items: Any
    alias: str = "item"
    parallel: bool = False
    max_concurrent: int = 10
    max_retries: int = 1
    retry_wait: float = 0.0
    error_handling: ErrorHandling = "fail_fast"
    #: Where items run: threads (this process), processes or dask (runtime/executors).
    executor: str = "threads"
    #: The ``key`` template naming each item (runtime/batch_keys.py); None: items have no key.
    key: str | None = None

    @classmethod
    def from_ir(cls, block: dict[str, Any], executor: str = "threads") -> BatchConfig:
        return cls(
            items=block["items"],
            alias=block.get("as", "item"),
            parallel=bool(block.get("parallel", False)),
            max_concurrent=int(block.get("max_concurrent", 10)),
            max_retries=int(block.get("max_retries", 1)),
            retry_wait=float(block.get("retry_wait", 0)),
            error_handling=block.get("error_handling", "fail_fast"),
            executor=executor,
            key=block.get("key"),
        )

    @property
    def execution_mode(self) -> str:
        return "parallel" if self.parallel else "sequential"

    @property
    def retry(self) -> RetryPolicy:
        """``max_retries`` attempts in all, ``retry_wait`` seconds apart, or longer when a
        failure asks (``Retry-After``); one that asks for more than a minute is not retried."""
        return RetryPolicy(self.max_retries, self.retry_wait, max_asked_s=MAX_RETRY_AFTER_S)


_TYPE_NAMES = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}


class BatchNode(LayerWrapper):
    layer = conv.LAYER_BATCH
    #: Each item's work and the wait for lanes are the batch's interruptible regions.
    handles_interrupts = True

    def __init__(self, inner: Any, node_id: str, node_type: str, run: Any, config: BatchConfig):
        super().__init__(inner, node_id, node_type, run)
        self.config = config
        # The schema allows blanks around a whole-value ``${...}``; keep it whole (a list).
        items = config.items.strip() if isinstance(config.items, str) else config.items
        self.compiled_items = compile_value(items)
        self.compiled_key = compile_value(config.key) if config.key is not None else None
        self.life = ItemLife(run, node_id, node_type, config.alias, config.retry)
        #: Whether the node type declares an async path: a parallel batch then runs on async lanes.
        self.async_path = has_async_path(type(innermost(inner)))

    def resolve_items(self, shared: Any) -> list[Any]:
        items = json_list_or_value(
            resolve_param(self.node_id, "batch.items", self.compiled_items, shared)
        )
        if not isinstance(items, list):
            source = self.compiled_items.text if isinstance(self.compiled_items, Reference) else ""
            got = "null" if items is None else _TYPE_NAMES.get(type(items), type(items).__name__)
            raise NodeFailure(
                f"batch.items {source} must resolve to a list, got {got}".replace("  ", " ")
            )
        return items

    def executor(self) -> ItemExecutor:
        executors = self.run_context.executors
        if executors is None:
            return _THREADS
        node = innermost(self.inner)
        # After ``prepare``: whether these params have an async path (an ``llm`` model with an
        # async implementation) is known once the node type's library is loaded.
        async_path = self.async_path and async_path_for(type(node), node.params)
        return executors.for_batch(self.config.executor, self.config.parallel, async_path)

    def _run(self, shared: Any) -> str | None:
        # Before the batch's clock: a model or library loaded here is no item's time.
        if self.config.executor == "threads":  # other executors prepare on each worker
            self.inner.prepare()
        span, token = self.start_span()
        failure: BaseException | None = None
        try:
            items = self.resolve_items(shared)
            if span.is_recording():
                span.set_attributes(self._batch_attributes(len(items)))
            output = self._run_items(shared, items)
            if span.is_recording():
                span.set_attribute(conv.ATTR_BATCH_SUCCESS_COUNT, output["success_count"])
                span.set_attribute(conv.ATTR_BATCH_ERROR_COUNT, output["error_count"])
            self._check(output)
            return None
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self.end_span(
                span,
                token,
                failure,
                record_exception=isinstance(failure, (TemplateError, NodeFailure)),
            )

    def _batch_attributes(self, count: int) -> dict[str, Any]:
        config = self.config
        return {
            conv.ATTR_BATCH_SIZE: count,
            conv.ATTR_BATCH_PARALLEL: config.parallel,
            conv.ATTR_BATCH_MAX_CONCURRENT: config.max_concurrent if config.parallel else 1,
            conv.ATTR_BATCH_EXECUTION_MODE: config.execution_mode,
            conv.ATTR_BATCH_ERROR_HANDLING: config.error_handling,
        }

    def _run_items(self, shared: Any, items: list[Any]) -> dict[str, Any]:
        """Hand the items to the executor; the output is stored whatever happens (an
        interrupted run keeps every record made so far)."""
        config = self.config
        outcomes: list[ItemOutcome] = []
        execution = current_execution.get()
        if execution is not None:
            execution.batch_items = outcomes  # filled live: an interrupted run keeps them
            if self.compiled_key is not None:
                redactor = self.run_context.sanitizer.redactor
                execution.batch_item_keys = item_keys(
                    self.compiled_key, config.alias, items, shared, redactor
                )
        records = ItemRecords(len(items), outcomes, config.error_handling == "fail_fast")
        visit = current_visit.get()
        records.notify = self._notify(records, visit)
        to_run = self._reuse_items(items, records, visit) if visit is not None else None
        work = BatchWork(
            self.life, self.inner, shared, items, records, config.parallel, config.max_concurrent,
            to_run,
        )  # fmt: skip
        try:
            with self._streams_held():
                rest = self._run_pilot(work, visit)
                if rest is not None:
                    self.executor().run_items(rest)
        finally:
            outcomes.sort(key=lambda outcome: outcome.index)
            output = shared[self.node_id] = build_batch_output(
                config, items, outcomes, records.results
            )
        return output

    def _run_pilot(self, work: BatchWork, visit: NodeVisit | None) -> BatchWork | None:
        """``--pilot K`` (``runtime/pilot.py``): run K random items of those to run, hand the
        projection of the others to the plan's ``confirm``, and return the work left (None: a
        failure under ``fail_fast`` already stopped the batch). Without a pilot, or with no
        more than K items, the work is returned untouched."""
        pilot = self.run_context.pilot
        if pilot is None:
            return work
        candidates = list(work.to_run)
        if len(candidates) <= pilot.k:
            return work
        chosen = pilot.choose(self.node_id, visit.visit if visit is not None else 1, candidates)
        self.executor().run_items(replace(work, indices=chosen))
        if work.records.stop.is_set():
            return None
        picked = set(chosen)
        outcomes = [outcome for outcome in work.records.outcomes if outcome.index in picked]
        projection = pilot.project(self.node_id, chosen, outcomes, len(candidates), work.lanes)
        execution = current_execution.get()
        if execution is not None:
            execution.pilot = projection.as_dict()
        interrupts.enter_interruptible()  # Ctrl-C at the question stops the run
        try:
            go_on = pilot.confirm(projection)
        finally:
            interrupts.leave_interruptible()
        if not go_on:
            raise PilotDeclined(self.node_id)
        return replace(work, indices=[index for index in candidates if index not in picked])

    def _streams_held(self) -> AbstractContextManager[None]:
        """For a node whose calls catch the standard streams, run on threads: the stream
        proxies stay installed for the whole batch, not installed and removed per item.
        Other executors' workers run in other processes: nothing to hold here."""
        node = self.inner
        while isinstance(node, LayerWrapper):
            node = node.inner
        if self.config.executor == "threads" and getattr(node, "captures_output", False):
            return proxies_held()
        return nullcontext()

    def _check(self, output: dict[str, Any]) -> None:
        """Fail the node as pflow-cli 0.16 does: at the first failed item under ``fail_fast``;
        under ``continue`` only when no item succeeded."""
        errors = output["errors"]
        if not output["error_count"]:
            return
        first = errors[0]
        if self.config.error_handling == "fail_fast":
            raise NodeFailure(f"item {first['index']} failed: {first['error']}")
        if output["success_count"] == 0:
            raise NodeFailure(
                f"all {output['error_count']} items failed; item {first['index']}: {first['error']}"
            )

    def _reuse_items(
        self, items: list[Any], records: ItemRecords, visit: NodeVisit
    ) -> list[int] | None:
        """Resuming: record the items the earlier run finished as ``reused`` (no span, no
        cost, their original duration kept apart); return the indices still to run (None:
        all). Items a ``--items`` / ``--failed-only`` choice leaves out are not run: a warning
        says how many."""
        reused = visit.reused_items(len(items))
        now = time.time_ns()
        for index in sorted(reused):
            duration_ms, result = reused[index]
            records.keep(
                ItemOutcome(index, items[index], "success", 0, now, now, 0, reused_ms=duration_ms),
                result,
            )
        to_run = visit.items_to_run(len(items), reused)
        if to_run is not None and len(reused) + len(to_run) < len(items):
            left_out = len(items) - len(reused) - len(to_run)
            self.run_context.recovered.append(
                f"batch '{self.node_id}': {left_out} of {len(items)} items left out of the resume"
            )
        return to_run

    def _notify(self, records: ItemRecords, visit: NodeVisit | None) -> Any:
        """What hears of each finished item: the observer, and the checkpoint (successes)."""
        observer = self.run_context.observer
        item_done = visit.item_keeper() if visit is not None else None
        node_id, results = self.node_id, records.results
        if item_done is None:
            return None if observer is None else partial(observer.item_finished, node_id)

        def notify(outcome: ItemOutcome, count: int) -> None:
            if outcome.status == "success":
                reused_ms = outcome.reused_ms
                took_ms = (
                    (outcome.end_ns - outcome.start_ns) / 1e6 if reused_ms is None else reused_ms
                )  # ``duration_ms`` inline: a property call per item
                item_done(outcome.index, took_ms, results[outcome.index])
            if observer is not None:
                observer.item_finished(node_id, outcome, count)

        return notify
