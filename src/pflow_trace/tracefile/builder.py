"""The trace-file view of a run: pflow trace format 1.2.0 plus our documented extensions.

An observer of the run's facts (:mod:`pflow_trace.observe.facts`). It snapshots the store
before and after each node, turns batch item outcomes into ``batch_items`` records and, when the
run ends, hands the finished document to the writer. Everything passes through the run's
:class:`~pflow_trace.observe.sanitize.Sanitizer`, so secrets and huge values never reach the file.

A store key that names a secret (an input ``api_key``, a node ``get_token``) is hidden whole at
the root, as at any depth, and its value is learned so it is hidden by value everywhere else.
A value learned after some events were recorded is hidden in them when the document is built.

Snapshots stay linear in the run's size: each value is sanitized once (cached by identity), and
an event shows only the namespaces that matter to its node (its own and the ones its templates
read) besides inputs and run-wide keys; ``mutations`` still compares every key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pflow_trace.observe.facts import ItemOutcome, NodeExecution, RunObserver, RunRecord
from pflow_trace.observe.llm_usage import UsageTotals, summarize_usages
from pflow_trace.observe.redaction import REDACTED, Redactor
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.text import hex_span_id, hex_trace_id
from pflow_trace.tracefile.item_records import batch_items
from pflow_trace.tracefile.spantable import SpanRecorder
from pflow_trace.tracefile.spantable_format import (
    COL_ATTRIBUTES,
    COL_EVENTS,
    COL_STATUS_MESSAGE,
    COLUMNS,
)
from pflow_trace.tracefile.spool import Spool, TextBlocks
from pflow_trace.version import __version__

FORMAT_VERSION = "1.2.0"
GENERATOR = f"pflow-trace {__version__}"


def iso_time(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat()


class _Snapshot:
    """A store snapshot: the raw identities (for mutations) and the sanitized view (for JSON)."""

    __slots__ = ("identities", "view")

    def __init__(self, identities: dict[str, int], view: dict[str, Any]) -> None:
        self.identities = identities
        self.view = view


class TraceDocumentBuilder(RunObserver):
    """A :class:`~pflow_trace.observe.facts.RunObserver` that builds the trace document."""

    def __init__(
        self,
        sanitizer: Sanitizer,
        service_name: str = "pflow-trace",
        spans: SpanRecorder | None = None,
        namespaces: frozenset[str] = frozenset(),
        spool: Spool | None = None,
    ) -> None:
        self.sanitizer = sanitizer
        #: Where ``batch_items`` records wait for the writer (in memory when None).
        self.spool = spool
        #: The workflow's node ids: the store keys that are node namespaces.
        self.namespaces = namespaces
        self.service_name = service_name
        self.spans = spans
        self.run: RunRecord | None = None
        self.events: list[dict[str, Any]] = []
        self.document: dict[str, Any] | None = None
        # key -> (raw value kept alive, its sanitized form): each value is sanitized once
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        #: The redactor's version when the run started: a later one means values were learned.
        self._redactor_version = sanitizer.redactor.version
        #: Every LLM call of the run so far, for the document's ``llm_summary``.
        self._llm_totals = UsageTotals()
        #: The run this one resumes (``resumed_from``), and the items it reused and re-ran.
        self.resumed_from: dict[str, Any] | None = None
        self._resume_counts = {"items": 0, "reused": 0, "rerun": 0, "ok": 0, "failed": 0}
        #: Closes the run's checkpoint and says what the trace records of it (id, hash, size).
        self.checkpoint: Callable[[], dict[str, Any] | None] | None = None

    # -- snapshots -----------------------------------------------------------------------------

    def _snapshot(self, shared: Mapping[str, Any], execution: NodeExecution) -> _Snapshot:
        """Identities of every key (for ``mutations``); sanitized values of the keys shown.

        Shown: inputs and run-wide keys, the node's own namespace, and the namespaces its
        templates read. Other nodes' namespaces are left out, which keeps the file linear in
        the number of nodes; each is in full in the ``shared_after`` of the node that wrote it.
        """
        identities: dict[str, int] = {}
        view: dict[str, Any] = {}
        cache = self._cache
        hidden = self.namespaces
        own, reads = execution.node_id, execution.reads
        redactor = self.sanitizer.redactor
        for key, value in shared.items():
            identities[key] = id(value)
            if key in hidden and key != own and key not in reads:
                continue
            cached = cache.get(key)
            if cached is not None and cached[0] is value:
                view[key] = cached[1]
                continue
            if redactor.is_secret_root_key(key):
                redactor.learn_hidden(value)
                sanitized: Any = REDACTED
            else:
                sanitized = self.sanitizer.value(value)
            cache[key] = (value, sanitized)  # the raw value is kept so its id stays unique
            view[key] = sanitized
        return _Snapshot(identities, view)

    @staticmethod
    def _mutations(before: _Snapshot, after: _Snapshot) -> dict[str, list[str]]:
        old, new = before.identities, after.identities
        return {
            "added": sorted(key for key in new if key not in old),
            "removed": sorted(key for key in old if key not in new),
            "modified": sorted(key for key in new if key in old and new[key] != old[key]),
        }

    # -- observer protocol ---------------------------------------------------------------------

    def run_started(self, run: RunRecord) -> None:
        self.run = run
        if self.spans is not None:
            self.spans.start(run.start_ns)

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        execution.observer_state = self._snapshot(shared, execution)

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        return None

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        before: _Snapshot = execution.observer_state
        after = self._snapshot(shared, execution)
        execution.observer_state = None
        run_start = self.run.start_ns if self.run is not None else execution.start_ns
        event: dict[str, Any] = {
            "node_id": execution.node_id,
            "node_type": execution.node_type,
            "duration_ms": round(execution.duration_ms, 3),
            "success": execution.success,
            "shared_before": before.view,
            "shared_after": after.view,
            "mutations": self._mutations(before, after),
            "timestamp": iso_time(execution.end_ns),
            "start_offset_ms": round((execution.start_ns - run_start) / 1e6, 3),
            "span_id": hex_span_id(execution.span_id),
            "template_resolutions": self._template_resolutions(execution),
        }
        if execution.error is not None:
            event["error"] = execution.error
        if execution.call_path:  # a node of a sub-workflow, attributed to its callers
            event["call_path"] = list(execution.call_path)
            event["caller_span_id"] = hex_span_id(execution.caller_span_id)
        if execution.sub_workflows:  # a ``workflow`` step: the files it ran
            event["sub_workflows"] = list(execution.sub_workflows)
        if execution.files:  # params read from files: which, by path and hash
            event["files"] = [dict(ref) for ref in execution.files]
        if execution.attempts:  # a node with a ``retry`` block
            event["attempts"] = execution.attempts
            event["retries"] = list(execution.retries)
        if execution.loop_iterations is not None:
            event["loop"] = self._loop(execution, run_start)
        if execution.batch_items is not None:
            event["batch_items"], time_us = self._batch_items(execution)
            if time_us is not None:
                event["batch_time_us"] = time_us
            if self.resumed_from is not None:
                self._count_resumed(execution.batch_items)
        if execution.pilot is not None:
            event["pilot"] = execution.pilot
        llm_usage = self._llm_usage(execution)
        if llm_usage is not None:
            event["llm_usage"] = llm_usage
        with self._lock:
            self.events.append(event)

    def _loop(self, execution: NodeExecution, run_start: int) -> dict[str, Any]:
        """A loop node's passes: how many, what ended the loop, and each pass's outcome."""
        records = []
        for one in execution.loop_iterations or []:
            record: dict[str, Any] = {
                "iteration": one.number,
                "status": one.status,
                "duration_ms": round(one.duration_ms, 3),
                "start_offset_ms": round((one.start_ns - run_start) / 1e6, 3),
                "error": one.error,
                "span_id": hex_span_id(one.span_id),
            }
            if one.llm_usage is not None:
                record["llm_usage"] = self.sanitizer.value(one.llm_usage)
            records.append(record)
        return {
            "iterations": len(records),
            "stopped": execution.loop_stopped,
            "keyword": execution.loop_keyword,
            "passes": records,
        }

    def _llm_usage(self, execution: NodeExecution) -> dict[str, Any] | None:
        """A node's LLM usage: its own call, or the totals over its batch's or loop's calls.

        Each call is also counted into the run's ``llm_summary`` here, once.
        """
        usages = execution.llm_calls()
        with self._lock:
            for usage in usages:
                self._llm_totals.add(usage)
        if execution.makes_many_calls:
            return summarize_usages(usages)
        if not execution.llm_usage:
            return None
        call: dict[str, Any] = self.sanitizer.value(execution.llm_usage)
        return call

    def _template_resolutions(self, execution: NodeExecution) -> dict[str, Any]:
        """``{param: {template, resolved}}``; a param named like a secret keeps the shape."""
        value = self.sanitizer.value
        is_secret_key = self.sanitizer.redactor.is_secret_key
        resolutions: dict[str, Any] = {}
        for param, resolution in execution.template_resolutions.items():
            if is_secret_key(param):
                resolutions[param] = {"template": REDACTED, "resolved": REDACTED}
            else:
                resolutions[param] = {
                    "template": value(resolution.get("template"), 1),
                    "resolved": value(resolution.get("resolved"), 1),
                }
        return resolutions

    def _batch_items(self, execution: NodeExecution) -> tuple[TextBlocks, dict[str, int] | None]:
        """The ``batch_items`` records and the batch's time split (``batch_time_us``)."""
        sanitizer = self.sanitizer
        return batch_items(
            execution.batch_items or (),
            execution.batch_item_keys,
            sanitizer.preview,
            sanitizer.value,
            self.spool,
        )

    def _count_resumed(self, outcomes: list[ItemOutcome]) -> None:
        """Tally a resumed run's items: reused, and re-run (ok or failed)."""
        counts = self._resume_counts
        reused = sum(1 for outcome in outcomes if outcome.reused_ms is not None)
        with self._lock:
            counts["items"] += len(outcomes)
            counts["reused"] += reused
            counts["rerun"] += len(outcomes) - reused
            ok = sum(1 for outcome in outcomes if outcome.status == "success")
            counts["ok"] += ok - reused
            counts["failed"] += sum(1 for outcome in outcomes if outcome.status == "failed")

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        self.run = run
        self.document = self.build()

    # -- the document --------------------------------------------------------------------------

    def finished_document(self) -> dict[str, Any] | None:
        """The document to write when the run ends however it ends; None if it never started."""
        if self.document is not None:
            return self.document
        return self.build() if self.run is not None else None

    def build(self) -> dict[str, Any]:
        """The trace document as it stands (also mid-run, for an interrupted or crashed run)."""
        run = self.run
        if run is None:
            raise RuntimeError("the run has not started")
        end_ns = run.end_ns or time.time_ns()
        with self._lock:
            events = list(self.events)
            llm_summary = self._llm_totals.as_dict() if self._llm_totals.calls else None
        otel: dict[str, Any] = {
            "trace_id": hex_trace_id(run.trace_id),
            "span_id": hex_span_id(run.span_id),
            "parent_span_id": hex_span_id(run.parent_span_id),
            "service_name": self.service_name,
            "start_time_unix_nano": run.start_ns,
        }
        if self.spans is not None:
            otel["spans"] = self.spans.table(run.start_ns)
        error = run.error
        redactor = self.sanitizer.redactor
        if redactor.version != self._redactor_version:
            events, error = _hide_late_secrets(redactor, events, otel), redactor.text(error or "")
        document = {
            "format_version": FORMAT_VERSION,
            "generator": GENERATOR,
            "execution_id": run.execution_id,
            "workflow_name": run.workflow_name,
            "start_time": iso_time(run.start_ns),
            "end_time": iso_time(end_ns),
            "duration_ms": round((end_ns - run.start_ns) / 1e6, 3),
            "final_status": run.status if run.status != "running" else "interrupted",
            "nodes_executed": len(events),
            "nodes_failed": sum(1 for event in events if not event["success"]),
            "error": error or None,
            "failed_node": run.failed_node,
            "otel": otel,
            "nodes": events,
        }
        if run.warnings:
            document["warnings"] = [redactor.text(warning) for warning in run.warnings]
        if llm_summary is not None:
            document["llm_summary"] = llm_summary
        self._add_resume_blocks(document)
        return document

    def _add_resume_blocks(self, document: dict[str, Any]) -> None:
        """``checkpoint`` (id, sha256, bytes: never its path), ``resumed_from`` and the
        resumed run's item counts (``resume``)."""
        recorded = self.checkpoint() if self.checkpoint is not None else None
        if recorded is not None:
            document["checkpoint"] = recorded
        if self.resumed_from is not None:
            document["resumed_from"] = self.resumed_from
            with self._lock:
                document["resume"] = dict(self._resume_counts)


def plain_document(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its spooled lists (span rows, ``batch_items``) as plain lists, as read
    back from the file."""
    otel = document.get("otel", {})
    table = otel.get("spans")
    if isinstance(table, dict) and isinstance(table.get("rows"), TextBlocks):
        otel = {**otel, "spans": {**table, "rows": table["rows"].decoded()}}
    nodes = [
        {**event, "batch_items": event["batch_items"].decoded()}
        if isinstance(event.get("batch_items"), TextBlocks)
        else event
        for event in document.get("nodes", [])
    ]
    return {**document, "otel": otel, "nodes": nodes}


#: The parts of a node event that hold run values (everything else is ids, times and counts).
_EVENT_VALUES = ("shared_before", "shared_after", "template_resolutions", "error", "retries")
#: The span-table columns that hold text from the run: status message, attributes, events.
_ROW_VALUES = tuple(
    COLUMNS.index(column) for column in (COL_STATUS_MESSAGE, COL_ATTRIBUTES, COL_EVENTS)
)


def _hide_late_secrets(
    redactor: Redactor, events: list[dict[str, Any]], otel: dict[str, Any]
) -> list[dict[str, Any]]:
    """Hide values learned mid-run in what was recorded before they were learned.

    Only the fields that hold run values are rewritten, so ids, times and the document's own
    keys are never touched. ``otel``'s span rows are rewritten in place.
    """
    strings = redactor.strings
    rewritten = []
    for event in events:
        event = {**event, **{key: strings(event[key]) for key in _EVENT_VALUES if key in event}}
        items = event.get("batch_items")
        if isinstance(items, TextBlocks):
            event["batch_items"] = items.rewritten(lambda item: _hide_in_item(item, strings))
        rewritten.append(event)
    table = otel.get("spans", {})
    rows = table.get("rows")
    if isinstance(rows, TextBlocks):
        table["rows"] = rows.rewritten(lambda row: _hide_in_row(row, strings))
    return rewritten


def _hide_in_item(item: dict[str, Any], strings: Any) -> dict[str, Any]:
    """One ``batch_items`` record with its preview, key and error hidden where they hold
    secrets."""
    hidden = {**item, "item": strings(item["item"]), "error": strings(item["error"])}
    if "key" in item:
        hidden["key"] = strings(item["key"])
    return hidden


def _hide_in_row(row: list[Any], strings: Any) -> list[Any]:
    """One span row with the run values in it (status message, attributes, events) hidden."""
    row = list(row)
    for column in _ROW_VALUES:
        row[column] = strings(row[column])
    return row
