"""A generated 100,000-item trace: correct numbers, and a cost close to ``json.load``'s."""

from __future__ import annotations

import gc
import json
import tracemalloc
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pflow_trace.report.stats import build_summary
from pflow_trace.report.terminal import render_text
from pflow_trace.tracefile.readers import read_trace
from trace_factory import large_trace, write_trace

#: A generated 100,000-item trace.
pytestmark = pytest.mark.slow

ITEMS = 100_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    trace = large_trace(ITEMS)
    path = write_trace(tmp_path_factory.mktemp("large") / "large.json", trace)
    return path, trace


def direct_percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def test_large_trace_numbers(large: tuple[Path, dict[str, Any]]) -> None:
    path, trace = large
    raw_items = trace["nodes"][1]["batch_items"]
    item_ms = [item["duration_ms"] for item in raw_items]
    failed = [item for item in raw_items if item["status"] == "failed"]
    summary = build_summary([read_trace(path)], top=5)
    batch = summary.runs[0].nodes[1].batch
    assert batch is not None
    assert batch.count == ITEMS and batch.item_records == ITEMS and not batch.partial
    assert batch.error_count == len(failed) and batch.success_count == ITEMS - len(failed)
    assert batch.retries_used == sum(item["attempts"] - 1 for item in raw_items)
    assert batch.timing.total_items_ms == pytest.approx(sum(item_ms))
    assert batch.timing.p50_item_ms == pytest.approx(direct_percentile(item_ms, 50))
    assert batch.timing.p95_item_ms == pytest.approx(direct_percentile(item_ms, 95))
    assert (batch.timing.min_item_ms, batch.timing.max_item_ms) == (min(item_ms), max(item_ms))
    expected = sorted(range(ITEMS), key=lambda i: (-item_ms[i], i))[:5]
    assert [slow.index for slow in batch.slowest] == expected
    assert batch.effective_parallelism == pytest.approx(
        sum(item_ms) / trace["nodes"][1]["duration_ms"]
    )
    assert 7.5 < batch.effective_parallelism <= 8.0
    # "error kind 0/1/2" differ only by a number: one group, shown with its first message.
    assert [(group.shape, group.message) for group in batch.errors] == [
        ("error kind <n>", "error kind 0")
    ]
    assert sum(group.count for group in batch.errors) == len(failed)

    schema_text = resources.files("pflow_trace.report").joinpath("schemas/show.schema.json")
    jsonschema.validate(json.loads(summary.to_json()), json.loads(schema_text.read_text()))
    assert "batch crunch" in render_text(summary)


def _json_load(path: Path) -> None:
    with open(path, encoding="utf-8") as stream:
        json.load(stream)


def _show(path: Path) -> None:
    summary = build_summary([read_trace(path)])
    summary.to_json()
    render_text(summary)


def _peak(action: Any, path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_large_trace_memory_matches_json_load(large: tuple[Path, dict[str, Any]]) -> None:
    path, _ = large
    assert _peak(_show, path) <= 2.0 * _peak(_json_load, path)
