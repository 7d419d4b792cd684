"""The terminal view of a running workflow: one status line per node as it finishes.

An observer of the run's facts like the trace file is. On a terminal a long batch also shows a
transient progress bar; when output is piped only the plain lines are written.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

import click

from pflow_trace.observe.facts import ItemOutcome, NodeExecution, RunRecord
from pflow_trace.observe.llm_usage import summarize_usages
from pflow_trace.text import format_duration_ms, one_line

#: Failed items listed under a batch node's status line before "+N more".
MAX_ERRORS_SHOWN = 5
#: An item error is cut to this many characters on its status line; the trace keeps it whole.
MAX_ERROR_CHARS = 160
#: Batches with fewer items finish too fast for a progress bar to be worth drawing.
PROGRESS_MIN_ITEMS = 20


def silence_stdout() -> None:
    """The reader of our stdout went away (``| head``): send the rest to /dev/null.

    The run itself goes on, its trace is written and its exit code stays its own; without
    this, every later print and the interpreter's final flush would raise BrokenPipeError.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def batch_line(execution: NodeExecution) -> str | None:
    """``8/10 items ok, 2 failed`` for a batch node, None for any other node."""
    items = execution.batch_items
    if items is None:
        return None
    ok = sum(1 for item in items if item.status == "success")
    failed = sum(1 for item in items if item.status == "failed")
    text = f"{ok}/{len(items)} items ok"
    return f"{text}, {failed} failed" if failed else text


def llm_text(totals: Mapping[str, Any] | None) -> str | None:
    """``305 tokens, $0.0012`` (or ``price unknown``) for LLM calls; None when there were none."""
    if not totals:
        return None
    from pflow_trace.report.llm_layout import PRICE_UNKNOWN, fmt_tokens, fmt_usd

    cost = totals.get("cost_usd")
    if cost is None and totals.get("known_cost_usd"):
        cost_text = f"{fmt_usd(totals['known_cost_usd'])} + {PRICE_UNKNOWN}"
    else:
        cost_text = fmt_usd(cost)
    return f"{fmt_tokens(totals.get('total_tokens') or 0)} tokens, {cost_text}"


def node_llm_totals(execution: NodeExecution) -> dict[str, Any] | None:
    """A node's LLM calls added up: its own call, or its batch items' calls."""
    if execution.batch_items is not None:
        return summarize_usages(item.llm_usage for item in execution.batch_items)
    return summarize_usages([execution.llm_usage])


def error_lines(execution: NodeExecution) -> list[str]:
    """The first failed items by index, one line each, then how many more there were.

    A batch can fail thousands of items; the trace keeps them all, the terminal a handful.
    """
    failed = [item for item in execution.batch_items or () if item.status == "failed"]
    failed.sort(key=lambda item: item.index)
    lines = [
        f"item {item.index}: {one_line(item.error, MAX_ERROR_CHARS)}"
        for item in failed[:MAX_ERRORS_SHOWN]
    ]
    if len(failed) > MAX_ERRORS_SHOWN:
        lines.append(f"+{len(failed) - MAX_ERRORS_SHOWN} more")
    return lines


class NodeStatusDisplay:
    """Prints ``✓ work  8/10 items ok, 2 failed  1.24 s`` lines; a RunObserver."""

    def __init__(self, stream: TextIO, is_terminal: bool) -> None:
        self.stream = stream
        self.is_terminal = is_terminal
        #: Characters the node id column is padded to, so the details line up.
        self.id_width = 12
        #: Set once the reader of the stream went away; nothing more is written.
        self.closed = False
        self._progress: Any = None
        self._task: Any = None
        # Parallel lanes report items from their own threads.
        self._lock = threading.Lock()

    def set_width(self, node_ids: list[str]) -> None:
        """Pad node ids to the longest one of the workflow, known before the run starts."""
        self.id_width = max([len(node_id) for node_id in node_ids] + [4])

    def _echo(self, text: str, style: str | None = None) -> None:
        """Write one line, coloured on a terminal; a closed pipe stops output, not the run."""
        if self.closed:
            return
        if self.is_terminal and style:
            text = click.style(text, fg=style)
        try:
            click.echo(text, file=self.stream)
        except BrokenPipeError:
            self.closed = True
            silence_stdout()

    def run_started(self, run: RunRecord) -> None:
        """Nothing to show yet: the first line appears when the first node finishes."""
        return None

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        """Take down a bar left by an interrupted batch before the run's outcome is printed."""
        self._stop_progress()

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        """Nothing to show: a node's line is printed once, when it finishes."""
        return None

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        """Advance the progress bar of a long batch; only on a terminal, where it is erased."""
        if not self.is_terminal or total < PROGRESS_MIN_ITEMS:
            return
        with self._lock:
            self._advance(node_id, total)

    def _advance(self, node_id: str, total: int) -> None:
        """Start the bar on the batch's first item (rich imported only then), then step it."""
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                f"  {node_id}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(node_id, total=total)
        self._progress.advance(self._task)

    def _stop_progress(self) -> None:
        """Remove the bar before a status line is printed where it was."""
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        """The node's status line: green, yellow when items failed but it went on, red."""
        self._stop_progress()
        mark = "✓" if execution.success else "✗"
        detail = batch_line(execution) or execution.node_type
        line = (
            f"{mark} {execution.node_id:<{self.id_width}}  {detail:<28}  "
            f"{format_duration_ms(execution.duration_ms):>8}"
        )
        llm = llm_text(node_llm_totals(execution))
        if llm is not None:
            line += f"  {llm}"
        degraded = execution.success and any(
            item.status == "failed" for item in execution.batch_items or ()
        )
        self._echo(
            line.rstrip(), "red" if not execution.success else "yellow" if degraded else "green"
        )
        for text in error_lines(execution):
            self._echo(f"    {text}", "red")
        if not execution.success and execution.error and not execution.batch_items:
            self._echo(f"    {execution.error}", "red")
        elif not execution.success and execution.error:
            self._echo(f"    node failed: {execution.error}", "red")
