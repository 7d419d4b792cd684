"""The report's comparison is ``diff``'s model: newest run first, counts, significance, warnings,
and a history of every run. Read here from the page's data block, as the script reads it."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import trace_factory as tf
from pflow_trace.report.compare import compare_runs
from pflow_trace.report.html import DATA_ELEMENT_ID, render_report
from pflow_trace.tracefile.readers import read_trace

ITEMS = 200


def embedded_data(html: str) -> dict[str, Any]:
    """The page's data block, parsed as its script parses it."""
    pattern = rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>'
    match = re.search(pattern, html, re.S)
    assert match, "no data block"
    return json.loads(match.group(1))


def durations(seed: int, scale: float = 1.0, count: int = ITEMS) -> list[float]:
    """Item times around 5-7 ms with a little noise, times ``scale``."""
    rng = random.Random(seed)
    return [round((5 + rng.random() * 2) * scale, 3) for _ in range(count)]


def run(tmp_path: Path, seed: int, item_ms: list[float], hour: int, name: str = "w") -> Any:
    trace = tf.make_trace(
        [tf.plain("prepare", 3.0), tf.batch("work", item_ms)],
        workflow_name=name,
        seed=seed,
        start=tf.DEFAULT_START.replace(hour=hour),
    )
    return read_trace(tf.write_trace(tmp_path / f"run-{seed}.json", trace))


def work_of(comparison: dict[str, Any]) -> dict[str, Any]:
    return next(node for node in comparison["diff"]["nodes"] if node["node_id"] == "work")


def verdicts(node: dict[str, Any]) -> dict[str, str]:
    return {metric["metric"]: metric["verdict"] for metric in node["metrics"]}


def test_noise_is_not_called_slower(tmp_path: Path) -> None:
    """2.8 ms -> 3.1 ms items (+10 %, under the 1 ms minimum effect) and +2 % noise: no call."""
    runs = [
        run(tmp_path, 1, durations(1, scale=0.45), hour=20),
        run(tmp_path, 2, durations(2, scale=0.50), hour=21),
    ]
    (comparison,) = embedded_data(render_report(runs))["comparisons"]
    called = {m: v for m, v in verdicts(work_of(comparison)).items() if v != "no change"}
    assert "slower" not in called.values(), called
    quiet = [run(tmp_path, 3, durations(3), hour=20), run(tmp_path, 4, durations(4, 1.02), hour=21)]
    (comparison,) = embedded_data(render_report(quiet))["comparisons"]
    assert not any(m["regression"] for node in comparison["diff"]["nodes"] for m in node["metrics"])


def test_thirty_percent_slower_is_called_newest_first(tmp_path: Path) -> None:
    """Given in any order, the newest run is compared with the one before it (not the oldest)."""
    oldest = run(tmp_path, 1, durations(1, scale=1.3), hour=19)  # slow long ago: not the base
    before = run(tmp_path, 2, durations(2), hour=20)
    newest = run(tmp_path, 3, durations(3, scale=1.3), hour=21)
    (comparison,) = compare_runs([before, newest, oldest])
    assert comparison.runs == [1, 0, 2]  # positions in the order given, newest first
    assert (comparison.new_run, comparison.base_run) == (1, 0)
    work = next(node for node in comparison.diff.nodes if node.node_id == "work")
    p95 = work.metric("p95_ms")
    assert p95 is not None and p95.verdict == "slower" and p95.significant
    assert 0.2 < (p95.change_relative or 0) < 0.4
    assert work.base_item_counts == [ITEMS] and work.new_item_counts == [ITEMS]


def test_unequal_runs_are_warned_and_workflows_kept_apart(tmp_path: Path) -> None:
    runs = [
        run(tmp_path, 1, durations(1), hour=20),
        run(tmp_path, 2, durations(2, count=150), hour=21),
        run(tmp_path, 3, durations(3), hour=22, name="other"),
    ]
    (comparison,) = embedded_data(render_report(runs))["comparisons"]
    assert comparison["workflow_name"] == "w" and comparison["runs"] == [1, 0]
    assert any("different item counts" in warning for warning in comparison["diff"]["warnings"])
    assert work_of(comparison)["same_item_count"] is False


def test_history_has_one_point_per_run(tmp_path: Path) -> None:
    scales = [1.0, 1.0, 1.0, 1.3, 1.3]
    runs = [run(tmp_path, at, durations(at, s), hour=10 + at) for at, s in enumerate(scales)]
    (comparison,) = embedded_data(render_report(runs))["comparisons"]
    history = comparison["history"]
    assert len(history["runs"]) == 5
    work = next(node for node in history["nodes"] if node["node_id"] == "work")
    assert len(work["p95_ms"]) == 5 and None not in work["p95_ms"]
    assert work["p95_ms"][3] > 1.2 * work["p95_ms"][2]
    started = next(step for step in work["steps"] if step["metric"] == "p95_ms")
    assert (started["run"], started["verdict"]) == (3, "slower")
