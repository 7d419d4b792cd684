"""The terminal status lines: batch summaries, capped item errors, durations."""

from __future__ import annotations

import io

import click
import pytest

from pflow_trace.cli.display import (
    MAX_ERROR_CHARS,
    BatchProgress,
    NodeStatusDisplay,
    RunTally,
    batch_line,
    error_lines,
)
from pflow_trace.observe.facts import ItemOutcome, NodeExecution
from pflow_trace.text import format_duration_ms


def outcome(index: int, error: str | None = None) -> ItemOutcome:
    status = "failed" if error else "success"
    return ItemOutcome(index, index, status, 1, 0, 1_000_000, 0, error)  # type: ignore[arg-type]


def test_batch_line_counts_ok_and_failed_items() -> None:
    execution = NodeExecution("work", "echo")
    assert batch_line(execution) is None  # not a batch
    execution.batch_items = [outcome(0), outcome(1, "boom"), outcome(2)]
    assert batch_line(execution) == "2/3 items ok, 1 failed"
    execution.batch_items = [outcome(0)]
    assert batch_line(execution) == "1/1 items ok"


def test_errors_are_in_index_order_capped_at_five_then_counted() -> None:
    execution = NodeExecution("work", "echo")
    execution.batch_items = [outcome(i, f"bad {i}") for i in (7, 1, 3, 0, 9, 4, 8)]
    assert error_lines(execution) == [
        "item 0: bad 0",
        "item 1: bad 1",
        "item 3: bad 3",
        "item 4: bad 4",
        "item 7: bad 7",
        "+2 more",
    ]


def test_an_error_is_one_line_and_cut_with_an_ellipsis() -> None:
    execution = NodeExecution("work", "echo")
    long = "x" * (MAX_ERROR_CHARS + 50)
    execution.batch_items = [outcome(0, "first\n  second\tthird"), outcome(1, long)]
    folded, cut = error_lines(execution)
    assert folded == "item 0: first | second third"
    cut_error = cut.removeprefix("item 1: ")
    assert len(cut_error) == MAX_ERROR_CHARS and cut_error.endswith("…")


def test_durations_read_naturally() -> None:
    assert format_duration_ms(0.25) == "0.25 ms"
    assert format_duration_ms(12.4) == "12.4 ms"
    assert format_duration_ms(1500) == "1.50 s"
    assert format_duration_ms(125_000) == "2m 05.0s"


def _status_line(execution: NodeExecution) -> str:
    """The first line the run display prints for ``execution``, with its colour codes."""
    stream = io.StringIO()
    display = NodeStatusDisplay(stream, is_terminal=False, color=True)
    display.node_finished(execution, {})
    return stream.getvalue().splitlines()[0]


@pytest.mark.parametrize(
    ("errors", "success", "mark", "colour"),
    [
        ([None, None], True, "✓", "green"),
        (["boom", None], True, "!", "yellow"),  # some items failed, the node went on
        (["boom", "bang"], True, "✗", "red"),  # no item succeeded: never a green tick
        (["boom", "bang"], False, "✗", "red"),
    ],
)
def test_a_batch_line_is_marked_by_how_its_items_ended(
    errors: list[str | None], success: bool, mark: str, colour: str
) -> None:
    execution = NodeExecution("fetch", "http", success=success)
    execution.batch_items = [outcome(i, error) for i, error in enumerate(errors)]
    line = _status_line(execution)
    assert click.unstyle(line).startswith(f"{mark} fetch")
    assert line.startswith(click.style("x", fg=colour)[:5])


def test_the_tally_counts_a_batch_whose_items_all_failed_as_failed() -> None:
    tally = RunTally()
    all_failed = NodeExecution("fetch", "http", success=True)
    all_failed.batch_items = [outcome(0, "boom"), outcome(1, "bang")]
    some_failed = NodeExecution("parse", "code", success=True)
    some_failed.batch_items = [outcome(0, "boom"), outcome(1)]
    for execution in (all_failed, some_failed, NodeExecution("after", "echo", success=True)):
        tally.node_finished(execution, {})
    assert (tally.executions, tally.failed) == (3, 1)


# -- the progress line of a running batch ---------------------------------------------------------


def llm_outcome(index: int, cost_usd: float | None, status: str = "success") -> ItemOutcome:
    usage = {"model": "m", "input_tokens": 10, "output_tokens": 5, "cost_usd": cost_usd}
    return ItemOutcome(index, index, status, 1, 0, 1, 0, None, 0, usage)  # type: ignore[arg-type]


def test_progress_counts_failures_and_gives_an_eta_from_the_items_done() -> None:
    progress = BatchProgress("work", started_s=100.0)
    assert progress.text(100.5) == ""  # nothing done: nothing to tell yet
    progress.count(outcome(0), 10)
    progress.count(outcome(1, "boom"), 10)
    # 2 items in 4 s: the 8 left take 16 s more.
    assert progress.text(104.0) == "1 failed · ETA 16.00 s"


def test_progress_shows_llm_spend_so_far_and_projected() -> None:
    progress = BatchProgress("ask", started_s=0.0)
    progress.count(llm_outcome(0, 0.01), 4)
    progress.count(llm_outcome(1, 0.03), 4)
    assert progress.text(2.0) == "ETA 2.00 s · LLM $0.0400 so far, ~$0.0800 projected"


def test_progress_never_shows_an_unpriced_call_as_free() -> None:
    progress = BatchProgress("ask", started_s=0.0)
    progress.count(llm_outcome(0, None), 4)
    text = progress.text(1.0)
    assert "LLM $0.00 so far (+ 1 call(s) price unknown)" in text
    assert "projected" not in text
