"""Helpers for the executor tests: workflows built from ``code`` and ``echo`` nodes (which every
worker process can import), a traced run that keeps the exported spans and the trace document,
and the span tree reduced to its shape so runs on different executors can be compared.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace import api
from pflow_trace.api import TracedRun, TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings


def batch_workflow(
    code: str,
    items: list[Any],
    executor: str | None = None,
    inputs: dict[str, Any] | None = None,
    **batch: Any,
) -> dict[str, Any]:
    """A two-node workflow: a ``code`` batch over ``items`` and an ``echo`` that reads it."""
    block: dict[str, Any] = {"items": items, "parallel": True, "max_concurrent": 2, **batch}
    if executor is not None:
        block["executor"] = executor
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "executors",
            "nodes": [
                {
                    "id": "work",
                    "type": "code",
                    "params": {"code": code, "inputs": {"x": "${item}", **(inputs or {})}},
                    "batch": block,
                },
                {"id": "after", "type": "echo", "params": {"count": "${work.success_count}"}},
            ],
            "outputs": {"results": "${work.results}", "errors": "${work.errors}"},
        }
    )


def run_traced(
    workflow: dict[str, Any],
    trace_file: Path,
    executor: str = "threads",
    scheduler: str | None = None,
    async_lanes: bool = True,
) -> tuple[TracedRun, list[ReadableSpan], dict[str, Any]]:
    """Run with an in-memory exporter next to the trace file: (outcome, spans, document).
    ``async_lanes`` False keeps batches of node types with an async path on threads."""
    exporter = InMemorySpanExporter()
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(trace_file),
        join_env_trace_context=False,
        extra_processors=[SimpleSpanProcessor(exporter)],
        executor=executor,
        scheduler=scheduler,
        async_lanes=async_lanes,
    )
    outcome = api.run(workflow, {}, options)
    document = json.loads(trace_file.read_text(encoding="utf-8"))
    return outcome, list(exporter.get_finished_spans()), document


def shape(spans: Iterable[ReadableSpan]) -> list[Any]:
    """The tree as nested (name, status, attempts, retry events, children), items by index."""
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        children[span.parent.span_id if span.parent else None].append(span)

    def build(span: ReadableSpan) -> tuple[Any, ...]:
        kids = sorted(
            children[span.context.span_id],
            key=lambda s: (s.attributes.get(conv.ATTR_BATCH_INDEX, -1), s.start_time),
        )
        retries = sum(1 for event in span.events if event.name == conv.EVENT_RETRY)
        return (
            span.name,
            span.status.status_code.name,
            span.attributes.get(conv.ATTR_BATCH_ATTEMPTS),
            retries,
            [build(kid) for kid in kids],
        )

    return [build(root) for root in children[None]]


def item_spans(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    found = [s for s in spans if s.attributes.get(conv.ATTR_LAYER) == conv.LAYER_BATCH_ITEM]
    return sorted(found, key=lambda s: s.attributes[conv.ATTR_BATCH_INDEX])


def batch_items(document: dict[str, Any], node_id: str = "work") -> list[dict[str, Any]]:
    for event in document["nodes"]:
        if event["node_id"] == node_id:
            return list(event.get("batch_items") or [])
    raise AssertionError(f"no event for {node_id}")


def table_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace file's span table as one dict per span (kind name and attributes merged)."""
    table = document["otel"]["spans"]
    rows = []
    for raw in table["rows"]:
        row = dict(zip(table["columns"], raw, strict=True))
        kind = table["kinds"][row["kind"]]
        row["name"] = kind["name"]
        row["attributes"] = {**kind["attributes"], **(row["attributes"] or {})}
        rows.append(row)
    return rows
