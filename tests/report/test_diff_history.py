"""``history``'s model: series per node, gaps where a node did not run, the step that started."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.report.history import (
    SPARK_GAP,
    build_history,
    pick_workflow,
    render_history_text,
    sparkline,
)
from pflow_trace.tracefile.readers import read_trace
from trace_factory import DEFAULT_START, batch, make_trace, plain, write_trace


def test_sparkline_scales_between_the_extremes_and_shows_gaps() -> None:
    assert sparkline([1.0, 2.0, None, 8.0]) == f"▁▂{SPARK_GAP}█"
    assert sparkline([3.0, 3.0]) == "▁▁"
    assert sparkline([None, None]) == SPARK_GAP * 2


def runs(tmp_path: Path) -> list[Path]:
    paths = []
    rng = random.Random(3)
    for number in range(4):
        scale = 2.0 if number >= 2 else 1.0
        nodes = [batch("work", [round((5 + rng.random()) * scale, 3) for _ in range(100)])]
        if number != 1:
            nodes.insert(0, plain("sometimes", 2.0))
        document = make_trace(
            nodes, seed=number, start=DEFAULT_START + timedelta(minutes=10 - number)
        )
        paths.append(write_trace(tmp_path / f"r{number}.json", document))
    return paths


def test_history_orders_by_start_time_and_finds_the_step(tmp_path: Path) -> None:
    paths = runs(tmp_path)
    ordered = pick_workflow([read_trace(path) for path in paths], None)
    assert [run.source for run in ordered] == [str(path) for path in reversed(paths)]
    history = build_history(ordered)
    work = next(node for node in history.nodes if node.node_id == "work")
    # oldest first: r3, r2 (slow), r1, r0 (fast): faster from position 2
    step = work.first_step("p95_ms")
    assert step is not None and (step.run, step.verdict) == (2, "faster")
    sometimes = next(node for node in history.nodes if node.node_id == "sometimes")
    assert sometimes.wall_ms[2] is None and sometimes.wall_ms[0] == 2.0
    text = render_history_text(history)
    assert f"faster from run 3 ({paths[1]})" in text


def test_pick_workflow_names_what_there_is(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "a.json", make_trace([plain("a", 1.0)])))
    with pytest.raises(UsageError, match=r"no runs of workflow 'x' \(found: demo\)"):
        pick_workflow([run], "x")
