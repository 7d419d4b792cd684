"""``diff``'s model from constructed traces: what is called, what is not, and what is named."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import pflow_trace
from pflow_trace.errors import UsageError
from pflow_trace.observe.llm_usage import summarize_usages
from pflow_trace.report.diff import DiffSettings, RunDiff
from pflow_trace.report.diff_build import build_diff
from pflow_trace.report.diff_gate import parse_rules
from pflow_trace.report.diff_items import match_items
from pflow_trace.tracefile.model import BatchInfo, BatchItem, TraceNode, TraceRun
from pflow_trace.tracefile.readers import read_trace
from trace_factory import batch, make_trace, plain, write_trace

ITEMS = 200


def durations(seed: int, scale: float = 1.0, count: int = ITEMS) -> list[float]:
    """Item times around 5-7 ms with a little noise, times ``scale``."""
    rng = random.Random(seed)
    return [round((5 + rng.random() * 2) * scale, 3) for _ in range(count)]


def trace(
    tmp_path: Path,
    name: str,
    item_ms: list[float],
    *,
    seed: int,
    failures: dict[int, str] | None = None,
    workflow_name: str = "demo",
    items: list[Any] | None = None,
    usage: list[dict[str, Any]] | None = None,
) -> Path:
    document = make_trace(
        [
            plain("prepare", 3.0),
            batch("work", item_ms, failures=failures or {}, items=items),
            plain("write", 2.0),
        ],
        workflow_name=workflow_name,
        seed=seed,
    )
    if usage is not None:
        document["nodes"][1]["llm_usage"] = summarize_usages(usage)  # marks an LLM batch
        for record, call in zip(document["nodes"][1]["batch_items"], usage, strict=True):
            record["llm_usage"] = call
    return write_trace(tmp_path / f"{name}.json", document)


def compare(base: Path, new: Path, *rules: str) -> RunDiff:
    return build_diff([read_trace(base)], [read_trace(new)], rules=parse_rules(rules))


def test_thirty_percent_slower_items_are_called_and_gated(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1)
    new = trace(tmp_path, "new", durations(2, scale=1.3), seed=2)
    result = compare(base, new, "p95:+10%")
    work = next(node for node in result.nodes if node.node_id == "work")
    p95 = work.metric("p95_ms")
    assert p95 is not None and p95.verdict == "slower" and p95.significant
    assert p95.change_relative == pytest.approx(0.3, abs=0.05)
    assert p95.ci_low is not None and p95.ci_low > 0
    assert p95.test == "mann-whitney-u" and p95.p_value < 0.001
    assert result.gate_failed
    assert [(f.node_id, f.metric) for f in result.gate if f.crossed] == [("work", "p95_ms")]
    # the plain nodes did not change and are not called
    prepare = next(node for node in result.nodes if node.node_id == "prepare")
    assert all(not m.regression for m in prepare.metrics)


def test_two_percent_noise_is_not_called(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1)
    new = trace(tmp_path, "new", durations(2, scale=1.02), seed=2)
    result = compare(base, new, "default")
    assert result.regressions() == []
    assert not result.gate_failed
    work = next(node for node in result.nodes if node.node_id == "work")
    assert work.metric("p95_ms").verdict == "no change"


def test_a_significant_change_below_the_minimum_effect_is_no_change(tmp_path: Path) -> None:
    fixed = [5.0] * ITEMS
    base = trace(tmp_path, "base", fixed, seed=1)
    new = trace(tmp_path, "new", [5.3] * ITEMS, seed=2)  # +6 %, +0.3 ms: under 10 % and 1 ms
    work = compare(base, new).nodes[1]
    p50 = work.metric("p50_ms")
    assert p50.p_value < 0.001 and p50.verdict == "no change"
    loose = build_diff(
        [read_trace(base)], [read_trace(new)], DiffSettings(min_relative=0.05, min_duration_ms=0.1)
    )
    assert loose.nodes[1].metric("p50_ms").verdict == "slower"


def test_a_newly_failing_item_is_named_with_its_error(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1)
    new = trace(tmp_path, "new", durations(1), seed=2, failures={17: "HTTP 503 for item 17"})
    work = compare(base, new).nodes[1]
    assert work.item_match == "value"
    assert work.newly_failing_count == 1
    (item,) = work.newly_failing
    assert (item.key, item.base_status, item.new_status) == ("item-17", "success", "failed")
    assert item.error == "HTTP 503 for item 17"
    assert work.newly_succeeding_count == 0


def test_many_new_failures_are_called_more_errors_and_gated(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1, failures={3: "x"})
    failures = {index: "boom" for index in range(0, ITEMS, 5)}
    new = trace(tmp_path, "new", durations(1), seed=2, failures=failures)
    result = compare(base, new, "errors:+0")
    work = result.nodes[1]
    errors = work.metric("error_rate")
    assert errors.test == "fisher-exact" and errors.verdict == "more errors"
    assert errors.change == pytest.approx((40 - 1) / ITEMS)
    assert work.newly_failing_count == 40 and len(work.newly_failing) == 5
    assert result.gate_failed


def test_an_item_that_recovered_is_newly_succeeding(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1, failures={4: "flaky"})
    new = trace(tmp_path, "new", durations(1), seed=2)
    work = compare(base, new).nodes[1]
    assert [item.key for item in work.newly_succeeding] == ["item-4"]


def test_reordered_items_are_matched_by_value(tmp_path: Path) -> None:
    names = [f"doc-{index}" for index in range(ITEMS)]
    base_ms = durations(1)
    base_ms[10] = 50.0  # doc-10 is slow
    new_names = list(reversed(names))
    new_ms = list(reversed(durations(1)))
    new_ms[new_names.index("doc-10")] = 5.0  # ... and no longer
    base = trace(tmp_path, "base", base_ms, seed=1, items=names)
    new = trace(tmp_path, "new", new_ms, seed=2, items=new_names)
    work = compare(base, new).nodes[1]
    assert work.item_match == "value"
    assert work.moved_most[0].key == "doc-10"
    assert work.moved_most[0].change_ms == pytest.approx(-45.0)


def test_duplicate_values_fall_back_to_index(tmp_path: Path) -> None:
    same = ["same"] * ITEMS
    base = trace(tmp_path, "base", durations(1), seed=1, items=same)
    new = trace(tmp_path, "new", durations(1), seed=2, items=same, failures={7: "bad"})
    work = compare(base, new).nodes[1]
    assert work.item_match == "index"
    assert [item.key for item in work.newly_failing] == ["7"]


def test_unequal_item_counts_are_flagged(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1)
    new = trace(tmp_path, "new", durations(2, count=150), seed=2)
    result = compare(base, new)
    work = result.nodes[1]
    assert work.same_item_count is False
    assert (work.base_item_counts, work.new_item_counts) == ([200], [150])
    assert any("different item counts (base 200, new 150)" in w for w in result.warnings)
    assert result.to_dict()["nodes"][1]["same_item_count"] is False


def test_different_workflows_are_flagged(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1, workflow_name="alpha")
    new = trace(tmp_path, "new", durations(1), seed=2, workflow_name="beta")
    result = compare(base, new)
    assert result.same_workflow is False
    assert result.warnings[0].startswith("different workflows: base is alpha, new is beta")


def test_a_node_on_one_side_only_is_said(tmp_path: Path) -> None:
    base = write_trace(tmp_path / "b.json", make_trace([plain("a", 1.0), plain("gone", 1.0)]))
    new = write_trace(tmp_path / "n.json", make_trace([plain("a", 1.0), plain("fresh", 1.0)]))
    result = compare(base, new)
    presence = {node.node_id: node.presence for node in result.nodes}
    assert presence == {"a": "both", "gone": "base only", "fresh": "new only"}
    assert "node 'gone' ran only in base: not compared" in result.warnings


def usage(tokens: int, cost: float) -> dict[str, Any]:
    return {"model": "m", "input_tokens": tokens - 10, "output_tokens": 10, "cost_usd": cost}


def test_costlier_and_more_tokens_are_called(tmp_path: Path) -> None:
    rng = random.Random(4)
    base_calls = [usage(100 + rng.randint(0, 5), 0.001) for _ in range(ITEMS)]
    new_calls = [usage(140 + rng.randint(0, 5), 0.0014) for _ in range(ITEMS)]
    base = trace(tmp_path, "base", durations(1), seed=1, usage=base_calls)
    new = trace(tmp_path, "new", durations(2), seed=2, usage=new_calls)
    result = compare(base, new, "cost:+5%", "node=work:tokens:+10%")
    work = result.nodes[1]
    assert work.metric("tokens_per_call").verdict == "more tokens"
    cost = work.metric("cost_usd")
    assert cost.verdict == "costlier"
    assert cost.base == pytest.approx(0.2) and cost.new == pytest.approx(0.28)
    assert {f.rule for f in result.gate if f.crossed} == {"cost:+5%", "node=work:tokens:+10%"}


def test_several_runs_per_side_are_pooled(tmp_path: Path) -> None:
    base = [trace(tmp_path, f"b{i}", durations(i), seed=i) for i in range(3)]
    new = [trace(tmp_path, f"n{i}", durations(10 + i, 1.5), seed=10 + i) for i in range(3)]
    result = pflow_trace.diff(base, new, fail_on=["node=work:p50:+20%"])
    work = result.nodes[1]
    assert work.metric("p50_ms").base_n == 3 * ITEMS
    wall = work.metric("wall_ms")
    assert wall.base_n == 3 and wall.test == "mann-whitney-u"
    assert result.base.runs == 3 and result.gate_failed


def test_python_api_takes_paths_and_runs(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1), seed=1)
    new = trace(tmp_path, "new", durations(2), seed=2)
    by_path = pflow_trace.diff(base, str(new))
    by_run = pflow_trace.diff(pflow_trace.read_trace(base), [read_trace(new)])
    assert by_path.to_dict()["nodes"] == by_run.to_dict()["nodes"]
    assert "diff" in pflow_trace.__all__ and isinstance(by_path, pflow_trace.RunDiff)
    with pytest.raises(UsageError, match="not a rule"):
        pflow_trace.diff(base, new, fail_on=["p95>10%"])


def test_pooled_matching_agrees_with_the_one_run_path(tmp_path: Path) -> None:
    """Two copies of each run pool to the same means and failures as one run each."""
    names = [f"doc-{index}" for index in range(ITEMS)]
    base = read_trace(trace(tmp_path, "base", durations(1), seed=1, items=names, failures={2: "x"}))
    new = read_trace(
        trace(tmp_path, "new", durations(3, 1.2), seed=3, items=names, failures={5: "HTTP 500"})
    )
    single = build_diff([base], [new]).nodes[1]
    pooled = build_diff([base, base], [new, new]).nodes[1]
    for field in ("item_match", "newly_failing", "newly_succeeding", "moved_most"):
        assert getattr(single, field) == getattr(pooled, field), field
    assert [item.key for item in single.newly_failing] == ["doc-5"]
    assert single.newly_failing[0].error == "HTTP 500"
    assert [item.key for item in single.newly_succeeding] == ["doc-2"]
    assert len(single.moved_most) == DiffSettings().top_items


def test_an_item_failing_in_one_of_two_new_runs_is_newly_failing(tmp_path: Path) -> None:
    base = [read_trace(trace(tmp_path, f"b{i}", durations(i), seed=i)) for i in range(2)]
    new = [
        read_trace(trace(tmp_path, "n0", durations(5), seed=5)),
        read_trace(trace(tmp_path, "n1", durations(6), seed=6, failures={11: "timeout"})),
    ]
    work = build_diff(base, new).nodes[1]
    assert [(item.key, item.error) for item in work.newly_failing] == [("item-11", "timeout")]


def test_a_batch_known_only_from_its_metadata_compares_its_counts(tmp_path: Path) -> None:
    """pflow's JSON keeps no per-item records: rates from the reported counts, no item times."""

    def metadata_only(name: str, failures: dict[int, str], seed: int) -> Path:
        document = make_trace([batch("work", durations(seed), failures=failures)], seed=seed)
        del document["nodes"][0]["batch_items"]
        return write_trace(tmp_path / f"{name}.json", document)

    base = metadata_only("base", {}, 1)
    new = metadata_only("new", {index: "boom" for index in range(0, ITEMS, 4)}, 2)
    (work,) = compare(base, new).nodes
    assert [m.metric for m in work.metrics] == ["wall_ms", "error_rate"]
    errors = work.metric("error_rate")
    assert (errors.base, errors.new, errors.new_n) == (0.0, 0.25, ITEMS)
    assert errors.verdict == "more errors"
    assert work.item_match is None and work.new_item_counts == [ITEMS]


def test_a_tail_percentile_of_a_small_batch_is_untested(tmp_path: Path) -> None:
    base = trace(tmp_path, "base", durations(1, count=60), seed=1)
    new = trace(tmp_path, "new", durations(2, scale=1.5, count=60), seed=2)
    work = compare(base, new, "p95:+10%").nodes[1]
    verdicts = {m.metric: (m.verdict, m.test) for m in work.metrics}
    assert verdicts["p50_ms"] == ("slower", "mann-whitney-u")
    assert verdicts["p95_ms"] == ("untested", None)  # 60 items: 3 beyond the p95, not 5
    assert verdicts["p99_ms"] == ("untested", None)


def test_a_a_pairs_from_one_distribution_do_not_fail_the_default_gate() -> None:
    """Where the tests' assumption holds (items drawn alike), the gate stays quiet: 50 pairs of
    1,000 items from one skewed distribution, with a few failures each."""

    def run(rng: random.Random) -> TraceRun:
        items = [
            BatchItem(
                index,
                f"i{index}",
                "failed" if rng.random() < 0.02 else "success",
                rng.lognormvariate(1.5, 0.5),
                attempts=1,
            )
            for index in range(1_000)
        ]
        node = TraceNode("work", "shell", True, 100.0, batch=BatchInfo(count=1_000, items=items))
        return TraceRun("mem", "pflow-trace", "1.2.0", "demo", "success", nodes=[node])

    rng = random.Random(2024)
    rules = parse_rules(["default"])
    failures = sum(build_diff([run(rng)], [run(rng)], rules=rules).gate_failed for _ in range(50))
    assert failures == 0


def test_items_that_did_not_finish_have_no_movement() -> None:
    base = [BatchItem(i, f"k{i}", "success", 5.0) for i in range(4)]
    new = [BatchItem(0, "k0", "interrupted", 500.0), BatchItem(1, "k1", "skipped", None)]
    new += [BatchItem(2, "k2", "success", 9.0), BatchItem(3, "k3", "success", 6.0)]
    movement = match_items([base], [new], top=5)
    assert [(c.key, c.change_ms) for c in movement.moved_most] == [("k2", 4.0), ("k3", 1.0)]
    assert movement.newly_failing == []
