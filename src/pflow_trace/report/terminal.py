"""Render a :class:`~pflow_trace.report.summary.ShowSummary` for people.

The summary is first laid out as a short list of blocks (headings, key/value fields, tables,
notes) by one function, ``layout``; two small back ends then draw those blocks: ``rich``
tables with colour for a terminal, plain aligned text otherwise (piped, redirected, tests).
What is shown is decided once, in ``layout``, so the two drawings cannot drift apart; the
JSON rendering is ``ShowSummary.to_json`` and needs no layout at all.

``rich`` is imported only when a terminal drawing is asked for, to keep ``show | less`` and
``--json`` start-up cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

from pflow_trace.report.summary import (
    BatchSummary,
    NodeSummary,
    RunSummary,
    ShowSummary,
    WorkflowAggregate,
)

#: A table cell or field value: text, or (text, style name). Style names: ok, warn, bad, dim,
#: title, batch.
Cell = str | tuple[str, str]
UNKNOWN = "-"

_STATUS_STYLES = {
    "success": "ok",
    "degraded": "warn",
    "interrupted": "warn",
    "unfinished": "warn",
    "failed": "bad",
}
_RICH_STYLES = {
    "ok": "green",
    "warn": "yellow",
    "bad": "bold red",
    "dim": "dim",
    "title": "bold",
    "batch": "cyan",
}


@dataclass(slots=True)
class Heading:
    text: str
    style: str = "title"


@dataclass(slots=True)
class Fields:
    rows: list[tuple[str, Cell]]


@dataclass(slots=True)
class Table:
    #: (header, "left" | "right")
    columns: list[tuple[str, str]]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str | None = None


@dataclass(slots=True)
class Note:
    text: str
    style: str = "dim"


Block = Heading | Fields | Table | Note


# -- formatting ----------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    """Milliseconds for people: 0.53 ms, 207.3 ms, 1.24 s, 2m 03.4s."""
    if value is None:
        return UNKNOWN
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{int(minutes)}m {seconds:04.1f}s"


def fmt_pct(fraction: float | None) -> str:
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
    text = status or "unknown"
    return (text, _STATUS_STYLES.get(text, "warn"))


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# -- layout: what is shown, once for both back ends ------------------------------------------


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


def _run_blocks(run: RunSummary) -> list[Block]:
    fields: list[tuple[str, Cell]] = [
        ("status", _status(run.final_status)),
        ("started", fmt_time(run.start_time)),
        ("duration", fmt_ms(run.duration_ms)),
        ("nodes", f"{run.nodes_run} run, {run.nodes_failed} failed"),
    ]
    if run.trace_id:
        fields.append(("trace id", run.trace_id))
    if run.execution_id:
        fields.append(("execution", run.execution_id))
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
        if node.batch is not None:
            blocks.extend(_batch_blocks(node, node.batch))
        elif node.error and node.status == "failed":
            blocks.append(Note(f"{node.node_id} failed: {_first_line(node.error)}", "bad"))
    return blocks


def _nodes_table(nodes: list[NodeSummary]) -> Table:
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
                node.node_id,
                node.node_type,
                _status(node.status),
                fmt_ms(node.duration_ms),
                fmt_pct(node.share),
                marker,
            ]
        )
    return table


def _batch_blocks(node: NodeSummary, batch: BatchSummary) -> list[Block]:
    mode = batch.execution_mode or "unknown mode"
    if batch.parallel and batch.max_concurrent is not None:
        mode += f", max_concurrent {batch.max_concurrent}"
    items = f"{batch.count}"
    parts = [
        f"{UNKNOWN if batch.success_count is None else batch.success_count} ok",
        f"{UNKNOWN if batch.error_count is None else batch.error_count} failed",
    ]
    if batch.skipped_count:
        parts.append(f"{batch.skipped_count} skipped")
    items += " (" + ", ".join(parts) + ")"
    if batch.partial:
        items += f"; {batch.item_records} recorded"
    retries = UNKNOWN if batch.retries_used is None else str(batch.retries_used)
    if batch.max_retries is not None:
        retries += f" (max_retries {batch.max_retries})"
    timing = batch.timing
    source = " (as reported in batch_metadata)" if batch.timing_source == "batch_metadata" else ""
    fields: list[tuple[str, Cell]] = [
        ("items", (items, "warn" if batch.error_count else "ok")),
        ("mode", mode),
        ("retries used", retries),
        (
            "item time",
            f"total {fmt_ms(timing.total_items_ms)}, avg {fmt_ms(timing.avg_item_ms)}, "
            f"min {fmt_ms(timing.min_item_ms)}, max {fmt_ms(timing.max_item_ms)}{source}",
        ),
        ("percentiles", f"p50 {fmt_ms(timing.p50_item_ms)}, p95 {fmt_ms(timing.p95_item_ms)}"),
        ("wall time", fmt_ms(batch.wall_ms)),
        ("parallelism", _parallelism(batch)),
    ]
    blocks: list[Block] = [Heading(f"batch {node.node_id}", "batch"), Fields(fields)]
    if batch.slowest:
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
                    UNKNOWN if slow.index is None else str(slow.index),
                    slow.item,
                    fmt_ms(slow.duration_ms),
                    _status(slow.status),
                    UNKNOWN if slow.attempts is None else str(slow.attempts),
                ]
            )
        blocks.append(table)
    if batch.errors:
        table = Table([("count", "right"), ("first", "right"), ("error", "left")], title="errors")
        for group in batch.errors:
            first = UNKNOWN if group.first_index is None else str(group.first_index)
            table.rows.append([str(group.count), first, (_first_line(group.message), "bad")])
        if batch.errors_more:
            table.rows.append(["", "", (f"+{batch.errors_more} more", "dim")])
        blocks.append(table)
    for sentence in batch.unknown:
        blocks.append(Note(f"not known: {sentence}"))
    return blocks


def _parallelism(batch: BatchSummary) -> str:
    if batch.effective_parallelism is None:
        return UNKNOWN
    text = f"{batch.effective_parallelism:.2f}x effective"
    if batch.efficiency is not None:
        text += f", {fmt_pct(batch.efficiency)} of max_concurrent {batch.max_concurrent}"
    elif not batch.parallel:
        text += " (sequential: at most 1)"
    return text


def _runs_table(runs: list[RunSummary]) -> Table:
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
                fmt_ms(run.duration_ms),
                str(run.nodes_run),
                str(run.nodes_failed),
                (run.source, "dim"),
            ]
        )
    return table


def _workflow_blocks(workflow: WorkflowAggregate) -> list[Block]:
    statuses = ", ".join(f"{status} {count}" for status, count in workflow.status_counts.items())
    fields: list[tuple[str, Cell]] = [
        ("runs", f"{workflow.runs} ({statuses})"),
        ("failure rate", fmt_pct(workflow.failure_rate)),
        (
            "duration",
            f"p50 {fmt_ms(workflow.duration_p50_ms)}, p95 {fmt_ms(workflow.duration_p95_ms)}, "
            f"max {fmt_ms(workflow.duration_max_ms)}",
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
                fmt_ms(node.duration_p50_ms),
                fmt_ms(node.duration_p95_ms),
                fmt_ms(node.duration_max_ms),
                fmt_ms(batch.p50_item_ms) if batch else "",
                fmt_ms(batch.p95_item_ms) if batch else "",
            ]
        )
    return [Heading(f"workflow {workflow.workflow_name} across runs"), Fields(fields), table]


# -- back ends ----------------------------------------------------------------------------------


def render_text(
    summary: ShowSummary, *, terminal: bool = False, color: bool = True, width: int | None = None
) -> str:
    """Draw the summary: rich tables on a terminal, plain aligned text otherwise."""
    blocks = layout(summary)
    if terminal:
        return _draw_rich(blocks, color=color, width=width)
    return _draw_plain(blocks)


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _draw_plain(blocks: list[Block]) -> str:
    lines: list[str] = []
    previous: Block | None = None
    for block in blocks:
        if isinstance(block, Heading):
            if lines:
                lines.append("")
            lines.append(block.text)
        elif isinstance(block, Fields):
            width = max(len(key) for key, _ in block.rows)
            lines.extend(f"  {key.ljust(width)}  {_text(value)}" for key, value in block.rows)
        elif isinstance(block, Table):
            lines.append("")
            if block.title:
                lines.append(f"  {block.title}:")
            lines.extend(_plain_table(block))
        else:
            if previous is not None and isinstance(previous, Table):
                lines.append("")
            lines.append(f"  {block.text}")
        previous = block
    return "\n".join(lines) + "\n"


def _plain_table(table: Table) -> list[str]:
    header = [name for name, _ in table.columns]
    rows = [[_text(cell) for cell in row] for row in table.rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [
            value.rjust(widths[i]) if table.columns[i][1] == "right" else value.ljust(widths[i])
            for i, value in enumerate(row)
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def _draw_rich(blocks: list[Block], *, color: bool, width: int | None) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        width=width,
    )

    def styled(cell: Cell) -> Text:
        if isinstance(cell, str):
            return Text(cell)
        return Text(cell[0], style=_RICH_STYLES.get(cell[1], ""))

    for position, block in enumerate(blocks):
        if isinstance(block, Heading):
            if position:
                console.print()
            console.print(Text(block.text, style=_RICH_STYLES.get(block.style, "bold")))
        elif isinstance(block, Fields):
            grid = RichTable.grid(padding=(0, 2))
            grid.add_column(style="dim")
            grid.add_column()
            for key, value in block.rows:
                grid.add_row(Text("  " + key), styled(value))
            console.print(grid)
        elif isinstance(block, Table):
            table = RichTable(
                box=box.SIMPLE_HEAD,
                title=block.title,
                title_justify="left",
                title_style="bold" if color else "",
                show_edge=False,
                pad_edge=True,
            )
            for name, align in block.columns:
                table.add_column(name, justify="right" if align == "right" else "left")
            for row in block.rows:
                table.add_row(*(styled(cell) for cell in row))
            console.print(table)
        else:
            console.print(Text("  " + block.text, style=_RICH_STYLES.get(block.style, "")))
    return buffer.getvalue()
