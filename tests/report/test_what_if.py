"""``show --what-if``: the lane scheduler, the prediction's arithmetic, and bad settings.

Predictions are checked on traces with chosen item durations, so the expected wall times are
worked out by hand; how close they come to real runs is measured in
``benchmarks/bench_what_if.py`` (a timed comparison has no place in the test suite).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pflow_trace.cli.main import cli
from pflow_trace.errors import UsageError
from pflow_trace.report.what_if import WhatIf, lane_finish_ms, parse_what_if, predict_run
from pflow_trace.tracefile.model import BatchInfo, BatchItem, TraceNode, TraceRun


def test_lanes_take_items_in_index_order_as_they_free() -> None:
    # Two lanes: A takes the 10; B takes the 1, then a 5 at 1 and the other 5 at 6: ends at 11.
    assert lane_finish_ms([10, 1, 5, 5], 2) == 11
    assert lane_finish_ms([10, 1, 5, 5], 1) == 21
    assert lane_finish_ms([10, 1, 5, 5], 8) == 10
    assert lane_finish_ms([], 3) == 0


def batch_run(durations_ms: list[float], lanes: int, wall_ms: float, **item: object) -> TraceRun:
    """A run of one plain node (5 ms) and one batch whose items took ``durations_ms``."""
    items = [
        BatchItem(index, index, "success", duration, worker=index % lanes, **item)  # type: ignore[arg-type]
        for index, duration in enumerate(durations_ms)
    ]
    batch = BatchInfo(count=len(items), parallel=lanes > 1, max_concurrent=lanes, items=items)
    nodes = [
        TraceNode("load", "echo", True, 5.0),
        TraceNode("each", "echo", True, wall_ms, batch=batch),
    ]
    return TraceRun("t.json", "pflow-trace", "1.2.0", "w", "success", duration_ms=wall_ms + 5.0,
                    nodes=nodes)  # fmt: skip


def test_the_recorded_settings_predict_what_was_recorded() -> None:
    run = batch_run([10.0] * 8, lanes=2, wall_ms=43.0)  # 40 ms of items + 3 ms of the batch's own
    prediction = predict_run(run, WhatIf(max_concurrent=2))
    (batch,) = prediction.batches
    assert batch.predicted_wall_ms == pytest.approx(43.0)
    assert prediction.predicted_ms == pytest.approx(48.0)


def test_more_lanes_shorten_the_batch_and_the_run_by_the_same_amount() -> None:
    run = batch_run([10.0] * 8, lanes=2, wall_ms=43.0)
    prediction = predict_run(run, WhatIf(max_concurrent=4))
    assert prediction.batches[0].predicted_wall_ms == pytest.approx(23.0)
    assert prediction.predicted_ms == pytest.approx(28.0)
    sequential = predict_run(run, WhatIf(parallel=False))
    assert sequential.batches[0].lanes == 1
    assert sequential.batches[0].predicted_wall_ms == pytest.approx(83.0)


def test_a_lanes_gap_between_items_is_part_of_each_items_cost() -> None:
    # Each item after the first on its lane waited 2 ms for it: that cost goes with every item.
    run = batch_run([10.0] * 4, lanes=1, wall_ms=46.0, time_us=(2000, 10000, 0, 0))
    prediction = predict_run(run, WhatIf(max_concurrent=2, parallel=True))
    # 4 items x 12 ms on 1 lane = 48 ms -> the batch's own time is -2 ms; 2 lanes: 24 - 2.
    assert prediction.batches[0].predicted_wall_ms == pytest.approx(22.0)


def test_rate_limited_failures_make_the_prediction_doubtful() -> None:
    run = batch_run([10.0] * 4, lanes=2, wall_ms=20.0)
    run.nodes[1].batch.items[2].error = "HTTP 429 Too Many Requests"  # type: ignore[union-attr]
    prediction = predict_run(run, WhatIf(max_concurrent=4))
    assert any("rate limit" in doubt for doubt in prediction.doubts)
    assert not predict_run(batch_run([10.0] * 4, 2, 20.0), WhatIf(max_concurrent=4)).doubts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_concurrent=8", WhatIf(8, None)),
        ("parallel=false", WhatIf(None, False)),
        ("max_concurrent=3, parallel=TRUE", WhatIf(3, True)),
    ],
)
def test_settings_parse(text: str, expected: WhatIf) -> None:
    assert parse_what_if(text) == expected


@pytest.mark.parametrize(
    "text", ["max_concurrent=0", "max_concurrent=x", "parallel=maybe", "lanes=3", "max_concurrent"]
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError):
        parse_what_if(text)
    result = CliRunner().invoke(cli, ["show", str(tmp_path / "none.json"), "--what-if", text])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--what-if" in result.stderr


def test_show_what_if_on_a_real_trace_prints_the_prediction_and_the_assumption(
    tmp_path: Path,
) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "name": "w",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "batch": {"items": [1, 2, 3, 4], "parallel": True, "max_concurrent": 2},
                "params": {"value": "${item}"},
            }
        ],
    }
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    trace = tmp_path / "run.trace.json"
    assert CliRunner().invoke(cli, ["run", str(path), "--trace-file", str(trace)]).exit_code == 0
    text = CliRunner().invoke(cli, ["show", str(trace), "--what-if", "max_concurrent=4"])
    assert text.exit_code == 0, text.output
    assert "batch each (4 items)" in text.output and "on 4 lanes" in text.output
    assert "whatever the number of lanes" in text.output
    shown = CliRunner().invoke(cli, ["show", str(trace), "--what-if", "parallel=false", "--json"])
    (prediction,) = json.loads(shown.stdout)["what_if"]
    assert prediction["batches"][0]["lanes"] == 1
    assert prediction["predicted_ms"] > 0
