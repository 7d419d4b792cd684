"""What ``show`` prints, decided once: a summary laid out as a list of blocks.

Both drawings in :mod:`pflow_trace.report.terminal` (``rich`` tables and plain text) draw
these blocks and decide nothing themselves, so the two cannot drift apart. The JSON rendering
is ``ShowSummary.to_json`` and needs no layout at all.
"""

from __future__ import annotations

from datetime import datetime

from pflow_trace.report.blocks import Block, Cell, Fields, Heading, Note, Table
from pflow_trace.report.llm_layout import llm_blocks
from pflow_trace.report.summary import (
    BatchSummary,
    ItemTiming,
    LoopSummary,
    NodeSummary,
    RunSummary,
    ShowSummary,
    WorkflowAggregate,
)
from pflow_trace.report.time_layout import time_split_fields
from pflow_trace.text import format_duration_ms

#: Shown for a value the trace does not hold.
UNKNOWN = "-"

_STATUS_STYLES = {
    "success": "ok",
    "degraded": "warn",
    "interrupted": "warn",
    "unfinished": "warn",
    "failed": "bad",
}


# -- formatting ----------------------------------------------------------------------------------


def fmt_pct(fraction: float | None) -> str:
    """A fraction as a percentage with one decimal: 0.5 -> ``50.0%``."""
    return UNKNOWN if fraction is None else f"{fraction * 100:.1f}%"


def fmt_time(iso: str | None) -> str:
    """An ISO 8601 time to the millisecond, with its UTC offset when it has one."""
    if not iso:
        return UNKNOWN
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    text = moment.strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d}"
    offset = moment.utcoffset()
    if offset is None:
        return text
    return text + (" UTC" if not offset else moment.strftime(" %z"))


def _status(status: str | None) -> Cell:
    """A status coloured by how it ended; a status we do not know is a warning."""
    text = status or "unknown"
    return (text, _STATUS_STYLES.get(text, "warn"))


def _first_line(text: str, limit: int = 100) -> str:
    """The first line of an error, cut to ``limit``: the table shows a hint, the trace the rest."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _count(value: int | None) -> str:
    """A count, or ``-`` when the trace does not hold it."""
    return UNKNOWN if value is None else str(value)


# -- one run -------------------------------------------------------------------------------------


def layout(summary: ShowSummary) -> list[Block]:
    """The blocks to draw: one run in full, or several runs as a list plus the aggregate."""
    if len(summary.runs) == 1:
        return _run_blocks(summary.runs[0])
    blocks: list[Block] = [Heading(f"{len(summary.runs)} runs"), _runs_table(summary.runs)]
    if summary.aggregate is not None:
        for workflow in summary.aggregate.workflows:
            blocks.extend(_workflow_blocks(workflow))
    blocks.append(Note("Pass one trace file to see its nodes and batches in full."))
    return blocks


def resume_line(counts: dict[str, int]) -> str:
    """``5,000 items: 4,980 reused, 20 re-run: 18 ok, 2 failed``."""
    return (
        f"{counts['items']:,} items: {counts['reused']:,} reused, {counts['rerun']:,} re-run: "
        f"{counts['ok']:,} ok, {counts['failed']:,} failed"
    )


def _run_blocks(run: RunSummary) -> list[Block]:
    """One run: its fields, the nodes table, then each batch node and each failed node."""
    fields: list[tuple[str, Cell]] = [
        ("status", _status(run.final_status)),
        ("started", fmt_time(run.start_time)),
        ("duration", format_duration_ms(run.duration_ms)),
        ("nodes", f"{run.nodes_run} run, {run.nodes_failed} failed"),
    ]
    if run.trace_id:
        fields.append(("trace id", run.trace_id))
    if run.execution_id:
        fields.append(("execution", run.execution_id))
    if run.resume is not None:
        fields.append(("resumed", resume_line(run.resume)))
    if run.error:
        where = f" (node {run.failed_node})" if run.failed_node else ""
        fields.append(("error", (_first_line(run.error) + where, "bad")))
    version = f" {run.format_version}" if run.format_version else ""
    fields.append(("file", (f"{run.source} ({run.format}{version})", "dim")))
    blocks: list[Block] = [
        Heading(f"workflow {run.workflow_name or '(unnamed)'}"),
        Fields(fields),
        _nodes_table(run.nodes),
    ]
    for node in run.nodes:
        if node.loop is not None:
            blocks.append(Note(_loop_text(node.node_id, node.loop)))
        if node.batch is not None:
            blocks.extend(_batch_blocks(node, node.batch))
        elif node.error and node.status == "failed":
            blocks.append(Note(f"{node.node_id} failed: {_first_line(node.error)}", "bad"))
    if run.llm is not None:
        blocks.extend(llm_blocks(run.llm))
    return blocks


def _loop_text(node_id: str, loop: LoopSummary) -> str:
    """``grow loop: 3 passes, stopped by until`` (one line per loop node)."""
    passes = f"{loop.iterations} pass" + ("" if loop.iterations == 1 else "es")
    return f"{node_id} loop: {passes}, stopped by {loop.stopped_by()}"


def _nodes_table(nodes: list[NodeSummary]) -> Table:
    """One row per node in run order, batch nodes marked."""
    table = Table(
        [
            ("#", "right"),
            ("node", "left"),
            ("type", "left"),
            ("status", "left"),
            ("duration", "right"),
            ("share", "right"),
            ("", "left"),
        ]
    )
    for node in nodes:
        marker: Cell = ("batch", "batch") if node.batch is not None else ""
        table.rows.append(
            [
                str(node.order),
                "  " * len(node.call_path) + ("└ " if node.call_path else "") + node.node_id,
                node.node_type,
                _status(node.status),
                format_duration_ms(node.duration_ms),
                fmt_pct(node.share),
                marker,
            ]
        )
    return table


# -- one batch node ------------------------------------------------------------------------------


def _batch_blocks(node: NodeSummary, batch: BatchSummary) -> list[Block]:
    """A batch node: its fields, the slowest items, the error groups, what is not known."""
    blocks: list[Block] = [
        Heading(f"batch {node.node_id}", "batch"),
        _batch_fields(batch, node.status),
    ]
    if batch.time_split is not None:
        blocks += [Note("where the time went", "title"), time_split_fields(batch.time_split)]
    if batch.workers:
        blocks.append(_workers_table(batch))
    if batch.slowest:
        blocks.append(_slowest_table(batch))
    if batch.errors:
        blocks.append(_errors_table(batch))
    blocks.extend(Note(f"not known: {sentence}") for sentence in batch.unknown)
    return blocks


def _batch_fields(batch: BatchSummary, status: str) -> Fields:
    """Items (coloured as the node's status), mode, retries, item time, percentiles, wall time
    and parallelism."""
    timing = batch.timing
    items_style = "warn" if batch.error_count else "ok"
    if status == "failed" and batch.error_count:
        items_style = "bad"
    return Fields(
        [
            ("items", (_items_text(batch), items_style)),
            ("mode", _mode_text(batch)),
            ("retries used", _retries_text(batch)),
            ("item time", _item_time_text(timing, batch.timing_source)),
            (
                "percentiles",
                f"p50 {format_duration_ms(timing.p50_item_ms)}, "
                f"p95 {format_duration_ms(timing.p95_item_ms)}",
            ),
            ("wall time", format_duration_ms(batch.wall_ms)),
            ("parallelism", _parallelism_text(batch)),
        ]
    )


def _items_text(batch: BatchSummary) -> str:
    """``10 (6 ok, 2 failed, 1 interrupted, 1 skipped); 9 recorded``; the last ones only when
    they apply."""
    parts = [f"{_count(batch.success_count)} ok", f"{_count(batch.error_count)} failed"]
    if batch.interrupted_count:
        parts.append(f"{batch.interrupted_count} interrupted")
    if batch.skipped_count:
        parts.append(f"{batch.skipped_count} skipped")
    text = f"{batch.count} (" + ", ".join(parts) + ")"
    if batch.partial:
        text += f"; {batch.item_records} recorded"
    return text


def _mode_text(batch: BatchSummary) -> str:
    """The execution mode, with its concurrency cap for a parallel batch."""
    mode = batch.execution_mode or "unknown mode"
    if batch.parallel and batch.max_concurrent is not None:
        mode += f", max_concurrent {batch.max_concurrent}"
    return mode


def _retries_text(batch: BatchSummary) -> str:
    """Retries used, next to the most the batch allowed."""
    retries = _count(batch.retries_used)
    if batch.max_retries is not None:
        retries += f" (max_retries {batch.max_retries})"
    return retries


def _item_time_text(timing: ItemTiming, timing_source: str | None) -> str:
    """Total, average and extreme item time, saying when it is as reported, not measured."""
    source = " (as reported in batch_metadata)" if timing_source == "batch_metadata" else ""
    return (
        f"total {format_duration_ms(timing.total_items_ms)}, "
        f"avg {format_duration_ms(timing.avg_item_ms)}, "
        f"min {format_duration_ms(timing.min_item_ms)}, "
        f"max {format_duration_ms(timing.max_item_ms)}{source}"
    )


def _parallelism_text(batch: BatchSummary) -> str:
    """Effective parallelism, and how much of ``max_concurrent`` it used."""
    if batch.effective_parallelism is None:
        return UNKNOWN
    text = f"{batch.effective_parallelism:.2f}x effective"
    if batch.efficiency is not None:
        text += f", {fmt_pct(batch.efficiency)} of max_concurrent {batch.max_concurrent}"
    elif not batch.parallel:
        text += " (sequential: at most 1)"
    return text


def _workers_table(batch: BatchSummary) -> Table:
    """Where the items ran when they left the run's process: one row per worker process."""
    table = Table(
        [("worker", "left"), ("items", "right"), ("failed", "right"), ("busy", "right")],
        title=f"by worker ({len(batch.workers)})",
    )
    for share in batch.workers:
        table.rows.append(
            [share.worker, str(share.items), str(share.failed), format_duration_ms(share.busy_ms)]
        )
    return table


def _slowest_table(batch: BatchSummary) -> Table:
    """The ``--top`` slowest items, longest first."""
    table = Table(
        [
            ("index", "right"),
            ("item", "left"),
            ("duration", "right"),
            ("status", "left"),
            ("attempts", "right"),
        ],
        title=f"slowest {len(batch.slowest)}",
    )
    for slow in batch.slowest:
        table.rows.append(
            [
                _count(slow.index),
                slow.item,
                format_duration_ms(slow.duration_ms),
                _status(slow.status),
                _count(slow.attempts),
            ]
        )
    return table


def _errors_table(batch: BatchSummary) -> Table:
    """Error groups, most frequent first, then how many groups were left out.

    A group of several messages shows its shape (``bad value <n>``), then one real message of
    it as the example, so a reader sees both what they share and what one looked like.
    """
    table = Table([("count", "right"), ("first", "right"), ("error", "left")], title="errors")
    for group in batch.errors:
        varied = bool(group.shape) and group.shape != group.message
        shown = group.shape if varied else group.message
        first = _count(group.first_index)
        table.rows.append([str(group.count), first, (_first_line(shown), "bad")])
        if varied:
            table.rows.append(["", "", (f"e.g. {_first_line(group.message)}", "dim")])
    if batch.errors_more:
        table.rows.append(["", "", (f"+{batch.errors_more} more", "dim")])
    return table


# -- many runs -----------------------------------------------------------------------------------


def _runs_table(runs: list[RunSummary]) -> Table:
    """One row per run, in the order the files were given."""
    table = Table(
        [
            ("#", "right"),
            ("workflow", "left"),
            ("status", "left"),
            ("started", "left"),
            ("duration", "right"),
            ("nodes", "right"),
            ("failed", "right"),
            ("file", "left"),
        ]
    )
    for number, run in enumerate(runs, start=1):
        table.rows.append(
            [
                str(number),
                run.workflow_name or "(unnamed)",
                _status(run.final_status),
                fmt_time(run.start_time),
                format_duration_ms(run.duration_ms),
                str(run.nodes_run),
                str(run.nodes_failed),
                (run.source, "dim"),
            ]
        )
    return table


def _workflow_blocks(workflow: WorkflowAggregate) -> list[Block]:
    """One workflow across runs: outcomes, run time percentiles, and each node's numbers."""
    statuses = ", ".join(f"{status} {count}" for status, count in workflow.status_counts.items())
    fields: list[tuple[str, Cell]] = [
        ("runs", f"{workflow.runs} ({statuses})"),
        ("failure rate", fmt_pct(workflow.failure_rate)),
        (
            "duration",
            f"p50 {format_duration_ms(workflow.duration_p50_ms)}, "
            f"p95 {format_duration_ms(workflow.duration_p95_ms)}, "
            f"max {format_duration_ms(workflow.duration_max_ms)}",
        ),
    ]
    table = Table(
        [
            ("node", "left"),
            ("type", "left"),
            ("runs", "right"),
            ("fail rate", "right"),
            ("p50", "right"),
            ("p95", "right"),
            ("max", "right"),
            ("item p50", "right"),
            ("item p95", "right"),
        ]
    )
    for node in workflow.nodes:
        batch = node.batch
        table.rows.append(
            [
                node.node_id,
                node.node_type,
                str(node.runs),
                fmt_pct(node.failure_rate),
                format_duration_ms(node.duration_p50_ms),
                format_duration_ms(node.duration_p95_ms),
                format_duration_ms(node.duration_max_ms),
                format_duration_ms(batch.p50_item_ms) if batch else "",
                format_duration_ms(batch.p95_item_ms) if batch else "",
            ]
        )
    return [Heading(f"workflow {workflow.workflow_name} across runs"), Fields(fields), table]
