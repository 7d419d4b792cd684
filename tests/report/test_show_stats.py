"""Statistics and the summary: percentiles against a direct computation, batches, aggregates."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE, PFLOW_SAMPLES
from pflow_trace.report.batch_stats import PREVIEW_CHARS, group_errors, summarize_batch
from pflow_trace.report.percentiles import percentile, percentiles
from pflow_trace.report.stats import build_summary, summarize_run
from pflow_trace.text import preview
from pflow_trace.tracefile.model import BatchInfo, BatchItem
from pflow_trace.tracefile.readers import read_trace
from trace_factory import (
    batch,
    continue_with_failures_trace,
    failed_trace,
    interrupted_trace,
    make_trace,
    parallel_trace,
    plain,
    sequential_trace,
    write_trace,
)


def direct_percentile(values: list[float], p: float) -> float:
    """The linear-interpolation definition written out the long way, for comparison."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    below = math.floor(position)
    above = math.ceil(position)
    if below == above:
        return ordered[below]
    return ordered[below] * (above - position) + ordered[above] * (position - below)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 10, 19, 20, 21, 100, 1001])
def test_percentile_matches_direct_computation(size: int) -> None:
    values = [random.Random(size * 31 + i).uniform(0, 1000) for i in range(size)]
    ordered = sorted(values)
    for p in (0, 1, 5, 25, 50, 75, 90, 95, 99, 100):
        assert percentile(ordered, p) == pytest.approx(direct_percentile(values, p), rel=1e-12)


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    values = [random.Random(7 + i).expovariate(0.01) for i in range(997)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # cuts[k-1] is p_k
    ordered = sorted(values)
    assert percentile(ordered, 50) == pytest.approx(cuts[49], rel=1e-12)
    assert percentile(ordered, 95) == pytest.approx(cuts[94], rel=1e-12)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentiles([3.0, 1.0, 2.0], (50, 95)) == [2.0, pytest.approx(2.9)]
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_preview_is_one_short_line_and_keeps_falsy_items() -> None:
    assert preview(0, PREVIEW_CHARS) == "0"
    assert preview("", PREVIEW_CHARS) == ""
    assert preview(None, PREVIEW_CHARS) == "null"
    assert preview({"a": [1, 2]}, PREVIEW_CHARS) == '{"a": [1, 2]}'
    assert preview("line one\nline two", PREVIEW_CHARS) == "line one\\nline two"
    long = preview("x" * 500, PREVIEW_CHARS)
    assert len(long) == 60 and long.endswith("…")


def _summary_of(tmp_path: Path, trace: dict, top: int = 5):
    return summarize_run(read_trace(write_trace(tmp_path / "t.json", trace)), top=top)


def test_sequential_batch(tmp_path: Path) -> None:
    run = _summary_of(tmp_path, sequential_trace())
    assert run.final_status == "success" and run.nodes_run == 3 and run.nodes_failed == 0
    assert run.trace_id is not None
    node = run.nodes[1]
    assert node.status == "success"
    assert node.share == pytest.approx(node.duration_ms / run.duration_ms)
    summary = node.batch
    assert summary is not None
    assert (summary.count, summary.success_count, summary.error_count) == (4, 4, 0)
    assert summary.execution_mode == "sequential" and summary.max_concurrent is None
    assert summary.retries_used == 0
    assert summary.timing_source == "items"
    assert summary.timing.total_items_ms == pytest.approx(100.0)
    assert summary.timing.avg_item_ms == pytest.approx(25.0)
    assert (summary.timing.min_item_ms, summary.timing.max_item_ms) == (10.0, 40.0)
    assert summary.timing.p50_item_ms == pytest.approx(25.0)
    assert summary.timing.p95_item_ms == pytest.approx(direct_percentile([10, 30, 20, 40], 95))
    assert summary.wall_ms == pytest.approx(100.5)  # the items back to back, plus overhead
    assert summary.effective_parallelism == pytest.approx(100.0 / 100.5)
    assert summary.efficiency is None
    assert [slow.index for slow in summary.slowest] == [3, 1, 2, 0]
    assert summary.errors == [] and summary.unknown == []


def test_parallel_batch_parallelism_efficiency_and_retries(tmp_path: Path) -> None:
    trace = parallel_trace()
    run = _summary_of(tmp_path, trace, top=3)
    summary = run.nodes[1].batch
    assert summary is not None
    durations = trace["nodes"][1]["batch_items"]
    item_ms = [item["duration_ms"] for item in durations]
    wall = trace["nodes"][1]["duration_ms"]
    assert summary.wall_ms == wall
    assert summary.effective_parallelism == pytest.approx(sum(item_ms) / wall)
    assert 3.0 < summary.effective_parallelism <= 4.0
    assert summary.efficiency == pytest.approx(summary.effective_parallelism / 4)
    assert summary.retries_used == 1 + 2  # attempts 2 and 3 on two items
    assert summary.timing.p50_item_ms == pytest.approx(direct_percentile(item_ms, 50))
    assert summary.timing.p95_item_ms == pytest.approx(direct_percentile(item_ms, 95))
    assert len(summary.slowest) == 3
    expected = sorted(range(len(item_ms)), key=lambda i: (-item_ms[i], i))[:3]
    assert [slow.index for slow in summary.slowest] == expected
    assert summary.slowest[0].duration_ms == max(item_ms)
    assert summary.slowest[0].worker is not None and summary.slowest[0].attempts is not None


def test_continue_with_failures_groups_errors_with_more(tmp_path: Path) -> None:
    run = _summary_of(tmp_path, continue_with_failures_trace())
    assert run.final_status == "degraded"
    node = run.nodes[0]
    assert node.status == "degraded" and node.success is True
    summary = node.batch
    assert summary is not None
    assert (summary.count, summary.success_count, summary.error_count) == (16, 5, 11)
    groups = [
        (group.shape, group.message, group.count, group.first_index) for group in summary.errors
    ]
    # "odd failure 10" ... "odd failure 15" differ only by a number: one group of six, with
    # the first as its example; identical messages keep the message as their shape.
    assert groups == [
        ("odd failure <n>", "odd failure 10", 6, 10),
        ("HTTP 503: service unavailable", "HTTP 503: service unavailable", 3, 1),
        ("timeout after 5s", "timeout after 5s", 1, 2),
        ("HTTP 404: not found", "HTTP 404: not found", 1, 9),
    ]
    assert summary.errors_more == 0
    assert sum(group.count for group in summary.errors) == 11


def test_group_errors_counts_and_caps() -> None:
    failures = [("b", 1), ("a", 0), ("b\n", 2), (None, 3), ("c", 4)]
    groups, more = group_errors(failures, 2)
    # Most frequent first; equal counts keep the order they first appeared in.
    assert [(g.message, g.count, g.first_index) for g in groups] == [("b", 2, 1), ("a", 1, 0)]
    assert more == 2
    groups, more = group_errors([(None, 7)], 5)
    assert [(g.message, g.count) for g in groups] == [("(no error message)", 1)] and more == 0
    assert group_errors([], 5) == ([], 0)


def test_failed_run(tmp_path: Path) -> None:
    run = _summary_of(tmp_path, failed_trace())
    assert run.final_status == "failed" and run.failed_node == "convert"
    assert [node.status for node in run.nodes] == ["success", "failed"]
    summary = run.nodes[1].batch
    assert summary is not None
    assert summary.count == 4 and summary.item_records == 2 and summary.partial is True
    assert summary.errors[0].message == "cannot convert 'b'"
    assert any("2 of 4 items" in sentence for sentence in summary.unknown)


def test_interrupted_run(tmp_path: Path) -> None:
    run = _summary_of(tmp_path, interrupted_trace())
    assert run.final_status == "interrupted"
    summary = run.nodes[-1].batch
    assert summary is not None
    assert summary.partial and summary.item_records == 3 and summary.count == 10
    assert summary.timing.total_items_ms == pytest.approx(150.0)


def test_interrupted_batch_without_total(tmp_path: Path) -> None:
    trace = interrupted_trace()
    del trace["nodes"][-1]["shared_after"]["slow"]
    summary = _summary_of(tmp_path, trace).nodes[-1].batch
    assert summary is not None
    assert summary.count == 3 and summary.partial
    assert summary.execution_mode is None and summary.efficiency is None
    assert any("total is not in the trace" in sentence for sentence in summary.unknown)


def test_metadata_only_batch_says_what_cannot_be_known() -> None:
    run = summarize_run(read_trace(PFLOW_JSON_SAMPLE))
    work = run.nodes[1].batch
    assert work is not None
    assert work.timing_source == "batch_metadata"
    assert work.timing.total_items_ms == pytest.approx(827.01)
    assert work.timing.p50_item_ms is None and work.timing.p95_item_ms is None
    assert work.slowest == [] and work.retries_used is None and work.item_records == 0
    assert work.effective_parallelism == pytest.approx(827.01 / 209.72)
    assert work.efficiency == pytest.approx(827.01 / 209.72 / 4)
    assert work.unknown and "batch_metadata" in work.unknown[0]
    fail_some = run.nodes[2].batch
    assert fail_some is not None
    assert [(g.message, g.count, g.first_index) for g in fail_some.errors] == [
        ("Command failed with exit code 3: bad", 4, 0)
    ]


def test_jsonl_sample_items_give_percentiles() -> None:
    run = summarize_run(read_trace(PFLOW_JSONL_SAMPLE), top=2)
    work = run.nodes[1].batch
    assert work is not None and work.timing_source == "items"
    item_ms = [101.97, 102.04, 102.35, 102.19, 101.79, 101.58, 101.27, 101.87]
    assert work.timing.p50_item_ms == pytest.approx(direct_percentile(item_ms, 50))
    assert work.timing.p95_item_ms == pytest.approx(direct_percentile(item_ms, 95))
    assert work.timing.total_items_ms == pytest.approx(sum(item_ms))
    assert [slow.index for slow in work.slowest] == [1, 3]
    assert work.retries_used is None


def test_skipped_items_are_counted_but_not_timed() -> None:
    items = [
        BatchItem(0, "a", "success", 5.0, attempts=1),
        BatchItem(1, "b", "failed", 7.0, "boom", attempts=2),
        BatchItem(2, "c", "skipped", 0.0, attempts=0),
    ]
    summary = summarize_batch(BatchInfo(items=items), wall_ms=12.0)
    assert summary.skipped_count == 1
    assert summary.timing.total_items_ms == 12.0 and summary.timing.min_item_ms == 5.0
    assert summary.retries_used == 1
    assert (summary.success_count, summary.error_count) == (1, 1)


def test_top_zero_lists_no_items(tmp_path: Path) -> None:
    summary = _summary_of(tmp_path, parallel_trace(), top=0).nodes[1].batch
    assert summary is not None and summary.slowest == []


def test_aggregate_over_runs(tmp_path: Path) -> None:
    runs = []
    for seed, (durations, fail) in enumerate(
        [([10.0, 20.0], False), ([30.0, 40.0], False), ([50.0, 60.0], True)], start=1
    ):
        nodes = [plain("a", 5.0 * seed), batch("b", durations), plain("c", 1.0, success=not fail)]
        trace = make_trace(nodes, workflow_name="agg", seed=seed)
        runs.append(read_trace(write_trace(tmp_path / f"{seed}.json", trace)))
    runs.append(read_trace(write_trace(tmp_path / "other.json", sequential_trace())))
    summary = build_summary(runs)
    assert summary.aggregate is not None and summary.aggregate.runs == 4
    workflows = {w.workflow_name: w for w in summary.aggregate.workflows}
    assert set(workflows) == {"agg", "sequential"}
    agg = workflows["agg"]
    assert agg.runs == 3 and agg.failed_runs == 1
    assert agg.failure_rate == pytest.approx(1 / 3)
    assert agg.status_counts == {"success": 2, "failed": 1}
    run_ms = [run.duration_ms for run in runs[:3]]
    assert agg.duration_p50_ms == pytest.approx(direct_percentile(run_ms, 50))
    assert agg.duration_p95_ms == pytest.approx(direct_percentile(run_ms, 95))
    assert agg.duration_max_ms == max(run_ms)
    nodes = {node.node_id: node for node in agg.nodes}
    assert [node.node_id for node in agg.nodes] == ["a", "b", "c"]
    assert nodes["a"].duration_p50_ms == pytest.approx(10.0)
    assert nodes["c"].failures == 1 and nodes["c"].failure_rate == pytest.approx(1 / 3)
    pooled = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert nodes["b"].batch is not None
    assert nodes["b"].batch.items == 6 and nodes["b"].batch.runs_with_items == 3
    assert nodes["b"].batch.p50_item_ms == pytest.approx(direct_percentile(pooled, 50))
    assert nodes["b"].batch.p95_item_ms == pytest.approx(direct_percentile(pooled, 95))
    assert nodes["a"].batch is None


def test_single_run_has_no_aggregate(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "t.json", sequential_trace()))
    assert build_summary([run]).aggregate is None


def test_aggregate_mixes_formats() -> None:
    runs = [read_trace(sample) for sample in PFLOW_SAMPLES]
    aggregate = build_summary(runs).aggregate
    assert aggregate is not None
    (workflow,) = aggregate.workflows
    work = next(node for node in workflow.nodes if node.node_id == "work")
    # Only the JSON-lines run recorded per-item times.
    assert work.batch is not None and work.batch.runs_with_items == 1 and work.batch.items == 8
