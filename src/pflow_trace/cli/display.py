"""The terminal view of a running workflow: one status line per node as it finishes.

An observer of the run's facts like the trace file is. On a terminal a long batch also shows a
transient progress bar; when output is piped only the plain lines are written.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

import click

from pflow_trace.observe.facts import ItemOutcome, NodeExecution, RunObserver, RunRecord
from pflow_trace.observe.llm_usage import call_cost, summarize_usages
from pflow_trace.report.summary import node_status
from pflow_trace.text import format_duration_ms, one_line, terminal_safe

#: Failed items listed under a batch node's status line before "+N more".
MAX_ERRORS_SHOWN = 5
#: An item error is cut to this many characters on its status line; the trace keeps it whole.
MAX_ERROR_CHARS = 160
#: A batch still running this long after it started gets a progress bar (on a terminal).
PROGRESS_AFTER_S = 0.5
#: A node's status -> the mark and colour of its line; a batch with failed items is never ✓.
STATUS_MARKS = {
    "success": ("✓", "green"),
    "degraded": ("!", "yellow"),
    "failed": ("✗", "red"),
    "unfinished": ("✗", "red"),
}


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


def item_counts(execution: NodeExecution) -> tuple[int | None, int | None]:
    """(items that succeeded, items that failed) of a batch node; (None, None) for another."""
    items = execution.batch_items
    if items is None:
        return None, None
    statuses = [item.status for item in items]
    return statuses.count("success"), statuses.count("failed")


def execution_status(execution: NodeExecution) -> str:
    """The finished node's status by the rule ``show`` and the report follow."""
    ok, failed = item_counts(execution)
    return node_status(True, execution.success, ok, failed)


def batch_line(execution: NodeExecution) -> str | None:
    """``8/10 items ok, 2 failed`` for a batch node, None for any other node."""
    ok, failed = item_counts(execution)
    if ok is None or execution.batch_items is None:
        return None
    text = f"{ok}/{len(execution.batch_items)} items ok"
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
    """A node's LLM calls added up: its own call, or its batch items' or loop passes' calls."""
    return summarize_usages(execution.llm_calls())


def error_lines(execution: NodeExecution) -> list[str]:
    """The first failed items by index, one line each, then how many more there were.

    A batch can fail thousands of items; the trace keeps them all, the terminal a handful.
    """
    failed = [item for item in execution.batch_items or () if item.status == "failed"]
    failed.sort(key=lambda item: item.index)
    lines = [
        f"item {item.index}: {terminal_safe(one_line(item.error, MAX_ERROR_CHARS))}"
        for item in failed[:MAX_ERRORS_SHOWN]
    ]
    if len(failed) > MAX_ERRORS_SHOWN:
        lines.append(f"+{len(failed) - MAX_ERRORS_SHOWN} more")
    return lines


class BatchProgress:
    """The running batch as its progress line tells it: items done and failed, the time since
    it started, and the LLM spend of the items done so far (priced calls, and calls without a
    price, which are never counted as $0)."""

    __slots__ = ("calls", "done", "failed", "node_id", "spent_usd", "started_s", "total",
                 "unpriced")  # fmt: skip

    def __init__(self, node_id: str, started_s: float) -> None:
        self.node_id = node_id
        self.started_s = started_s
        self.done = 0
        self.failed = 0
        self.total: int | None = None
        self.calls = 0
        self.unpriced = 0
        self.spent_usd = 0.0

    def count(self, outcome: ItemOutcome, total: int) -> None:
        self.done += 1
        self.total = total
        self.failed += outcome.status == "failed"
        usage = outcome.llm_usage
        if usage:
            self.calls += 1
            cost = call_cost(usage)
            if cost is None:
                self.unpriced += 1
            else:
                self.spent_usd += cost

    def text(self, now_s: float) -> str:
        """``2 failed · ETA 14 s · LLM $0.0120 so far, ~$0.0400 projected``: the parts that
        apply. ETA and projection assume the items left take what the done ones took."""
        parts = [f"{self.failed} failed"] if self.failed else []
        total, done = self.total, self.done
        if total is not None and done:
            left_s = (now_s - self.started_s) / done * (total - done)
            parts.append(f"ETA {format_duration_ms(left_s * 1000)}")
        if self.calls:
            from pflow_trace.report.llm_layout import PRICE_UNKNOWN, fmt_usd

            spend = f"LLM {fmt_usd(self.spent_usd)} so far"
            if total is not None and self.spent_usd:
                spend += f", ~{fmt_usd(self.spent_usd / done * total)} projected"
            if self.unpriced:
                spend += f" (+ {self.unpriced} call(s) {PRICE_UNKNOWN})"
            parts.append(spend)
        return " · ".join(parts)


class RunTally(RunObserver):
    """Counts node executions from the facts: a loop that ran 7 nodes counts 7, as ``show``."""

    def __init__(self) -> None:
        self.executions = 0
        self.failed = 0

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self.executions += 1
        self.failed += execution_status(execution) == "failed"


class NodeStatusDisplay:
    """Prints ``! work  8/10 items ok, 2 failed  1.24 s`` lines; a RunObserver.

    The mark and colour follow the node's status (:data:`STATUS_MARKS`): ``✓`` green for a
    success, ``!`` yellow for a batch that went on past failed items, ``✗`` red for a failed
    node and for a batch none of whose items succeeded.

    On a terminal a batch still running after :data:`PROGRESS_AFTER_S` gets a transient
    progress bar, whatever its size; it is drawn from then on, not from the first finished item.
    """

    def __init__(self, stream: TextIO, is_terminal: bool, color: bool | None = None) -> None:
        self.stream = stream
        self.is_terminal = is_terminal
        self.color = is_terminal if color is None else color
        #: Characters the node id column is padded to, so the details line up.
        self.id_width = 12
        #: Ids of the nodes that have a ``batch`` block: the ones a bar can be drawn for.
        self.batch_ids: frozenset[str] = frozenset()
        #: Set once the reader of the stream went away; nothing more is written.
        self.closed = False
        self._progress: Any = None
        self._task: Any = None
        self._timer: threading.Timer | None = None
        #: The running batch: what its progress line tells.
        self._batch: BatchProgress | None = None
        # Parallel lanes report items from their own threads; the timer runs on its own too.
        self._lock = threading.Lock()

    def set_nodes(self, nodes: list[dict[str, Any]]) -> None:
        """Learn the node ids (to pad them) and which nodes are batches, before the run."""
        self.set_width([str(node["id"]) for node in nodes])
        self.batch_ids = frozenset(str(node["id"]) for node in nodes if "batch" in node)

    def set_width(self, node_ids: list[str]) -> None:
        """Pad node ids to the longest one of the workflow, known before the run starts."""
        self.id_width = max([len(terminal_safe(node_id)) for node_id in node_ids] + [4])

    def _echo(self, text: str, style: str | None = None) -> None:
        """Write one line, coloured on a terminal; a closed pipe stops output, not the run."""
        if self.closed:
            return
        if self.color and style:
            text = click.style(text, fg=style)
        try:
            click.echo(text, file=self.stream, color=self.color)
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
        """For a batch on a terminal: arm the timer that draws its bar if it runs long."""
        if not self.is_terminal or execution.node_id not in self.batch_ids or self.closed:
            return
        with self._lock:
            self._batch = BatchProgress(execution.node_id, time.monotonic())
            self._timer = threading.Timer(PROGRESS_AFTER_S, self._start_progress)
            self._timer.daemon = True
            self._timer.start()

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        """Count the item; step the bar when it is drawn."""
        with self._lock:
            batch = self._batch
            if batch is None or batch.node_id != node_id:
                return
            batch.count(outcome, total)
            if self._progress is not None:
                self._progress.update(
                    self._task,
                    total=total,
                    completed=batch.done,
                    status=batch.text(time.monotonic()),
                )

    def _start_progress(self) -> None:
        """Draw the bar of the batch still running (rich imported only now)."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with self._lock:
            if self._batch is None or self._progress is not None or self.closed:
                return
            batch = self._batch
            node_id = batch.node_id
            self._progress = Progress(
                f"  {terminal_safe(node_id)}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}", markup=False),
                console=Console(file=self.stream, force_terminal=True, no_color=not self.color),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                node_id,
                total=batch.total,
                completed=batch.done,
                status=batch.text(time.monotonic()),
            )

    def pause(self) -> None:
        """Take the bar down (and a timer not yet fired) while a question is asked on the
        terminal (``run --pilot``); the batch's counts are kept."""
        with self._lock:
            self._take_down()

    def _take_down(self) -> None:
        """Cancel a timer not yet fired and stop the bar (the lock held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def resume(self) -> None:
        """After the question: the bar comes back if the batch runs on long enough."""
        with self._lock:
            if self._batch is None or self.closed or not self.is_terminal:
                return
            self._timer = threading.Timer(PROGRESS_AFTER_S, self._start_progress)
            self._timer.daemon = True
            self._timer.start()

    def _stop_progress(self) -> None:
        """Remove the bar (and a timer not yet fired) before a status line is printed."""
        with self._lock:
            self._batch = None
            self._take_down()

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        """The node's status line, marked and coloured by its status, then its item errors."""
        self._stop_progress()
        mark, colour = STATUS_MARKS[execution_status(execution)]
        detail = batch_line(execution) or terminal_safe(execution.node_type)
        # A sub-workflow's node finishes before its caller: its line names the caller.
        name = " > ".join([*execution.call_path, execution.node_id])
        line = (
            f"{mark} {terminal_safe(name):<{self.id_width}}  {detail:<28}  "
            f"{format_duration_ms(execution.duration_ms):>8}"
        )
        llm = llm_text(node_llm_totals(execution))
        if llm is not None:
            line += f"  {llm}"
        self._echo(line.rstrip(), colour)
        for text in error_lines(execution):
            self._echo(f"    {text}", "red")
        error = terminal_safe(execution.error) if execution.error else None
        if not execution.success and error and not execution.batch_items:
            self._echo(f"    {error}", "red")
        elif not execution.success and error:
            self._echo(f"    node failed: {error}", "red")
